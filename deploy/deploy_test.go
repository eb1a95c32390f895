// Package deploy_test checks the files under deploy/: the Prometheus rules and their unit
// tests, the example Prometheus and Alertmanager configurations, the Grafana dashboard and
// the Kubernetes PrometheusRule. It runs promtool and amtool (Debian packages prometheus and
// prometheus-alertmanager) and sends nothing over the network.
package deploy_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/reachd/reachd/probe"
)

var update = flag.Bool("update", false, "rewrite kubernetes/prometheusrule.yaml from prometheus/reachd-rules.yml")

// tool returns the path of a command the test needs. Without it the test fails under CI
// (the CI variable is set) and is skipped, loudly, elsewhere.
func tool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s not found: install the Debian package %s (.ci/run does)", name, pkg)
	}
	t.Skipf("SKIPPED: %s not found; install the Debian package %s to check deploy/ (CI fails here)", name, pkg)
	return ""
}

func run(t *testing.T, dir, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
}

func TestPromtool(t *testing.T) {
	// The compose stack mounts reachd-rules.yml next to its own prometheus.yml.
	compose := t.TempDir()
	for src, dst := range map[string]string{
		"compose/prometheus.yml":      "prometheus.yml",
		"prometheus/reachd-rules.yml": "reachd-rules.yml",
	} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(compose, dst), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	tests := []struct {
		name string
		tool string
		pkg  string
		dir  string
		args []string
	}{
		{"rules lint", "promtool", "prometheus", "prometheus", []string{"check", "rules", "--lint=all", "--lint-fatal", "reachd-rules.yml"}},
		{"rules unit tests", "promtool", "prometheus", "prometheus", []string{"test", "rules", "reachd-rules.test.yml"}},
		{"prometheus.yml", "promtool", "prometheus", "prometheus", []string{"check", "config", "prometheus.yml"}},
		{"prometheus-agent.yml", "promtool", "prometheus", "prometheus", []string{"check", "config", "--agent", "prometheus-agent.yml"}},
		{"compose prometheus.yml", "promtool", "prometheus", compose, []string{"check", "config", "prometheus.yml"}},
		{"alertmanager.yml", "amtool", "prometheus-alertmanager", "alertmanager", []string{"check-config", "alertmanager.yml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run(t, abs(tt.dir), tool(t, tt.tool, tt.pkg), tt.args...)
		})
	}
}

// The subset of the Grafana dashboard model that the checks below read.
type (
	dashboard struct {
		Panels     []panel `json:"panels"`
		Templating struct {
			List []variable `json:"list"`
		} `json:"templating"`
	}
	panel struct {
		ID         int            `json:"id"`
		Type       string         `json:"type"`
		Title      string         `json:"title"`
		Datasource *datasourceRef `json:"datasource"`
		GridPos    struct{ X, Y, W, H int }
		Targets    []target `json:"targets"`
		Panels     []panel  `json:"panels"` // a collapsed row's panels
	}
	target struct {
		RefID      string         `json:"refId"`
		Expr       string         `json:"expr"`
		Datasource *datasourceRef `json:"datasource"`
	}
	datasourceRef struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	}
	variable struct {
		Name       string          `json:"name"`
		Type       string          `json:"type"`
		Query      json.RawMessage `json:"query"`
		Datasource *datasourceRef  `json:"datasource"`
	}
)

// query returns a variable's query text: a string, or an object with a query field.
func (v variable) query() string {
	var s string
	if json.Unmarshal(v.Query, &s) == nil {
		return s
	}
	var o struct{ Query string }
	_ = json.Unmarshal(v.Query, &o)
	return o.Query
}

// dashboards are the shipped Grafana dashboards: one site, and the fleet of sites.
var dashboards = []string{"grafana/reachd.json", "grafana/reachd-fleet.json"}

func loadDashboard(t *testing.T, file string) dashboard {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return d
}

// eachDashboard runs f as a subtest for every shipped dashboard.
func eachDashboard(t *testing.T, f func(t *testing.T, d dashboard)) {
	for _, file := range dashboards {
		t.Run(file, func(t *testing.T) { f(t, loadDashboard(t, file)) })
	}
}

// allPanels flattens rows.
func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

// varRef matches $var, ${var} and ${var:format}, and the deprecated [[var]].
var varRef = regexp.MustCompile(`\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)(?::[^\]]*)?\]\]`)

func refs(s string) []string {
	var names []string
	for _, m := range varRef.FindAllStringSubmatch(s, -1) {
		names = append(names, m[1]+m[2]+m[3])
	}
	return names
}

// builtins are Grafana's own variables, replaced by values that keep PromQL valid.
var builtins = map[string]string{
	"__rate_interval": "5m",
	"__interval":      "1m",
	"__interval_ms":   "60000",
	"__range":         "1h",
	"__range_s":       "3600",
	"__range_ms":      "3600000",
}

func TestDashboardStructure(t *testing.T) { eachDashboard(t, testDashboardStructure) }

func testDashboardStructure(t *testing.T, d dashboard) {
	panels := allPanels(d.Panels)

	var dsVar string
	defined := map[string]bool{}
	for _, v := range d.Templating.List {
		if defined[v.Name] {
			t.Errorf("variable %q defined twice", v.Name)
		}
		defined[v.Name] = true
		if v.Type == "datasource" && v.query() == "prometheus" {
			dsVar = v.Name
		}
	}
	if dsVar == "" {
		t.Fatal(`no variable of type "datasource" with query "prometheus"`)
	}
	usesDS := func(ref *datasourceRef) bool {
		return ref != nil && (ref.UID == "${"+dsVar+"}" || ref.UID == "$"+dsVar)
	}

	used := map[string]bool{}
	use := func(where, s string) {
		for _, name := range refs(s) {
			if _, ok := builtins[name]; ok {
				continue
			}
			if !defined[name] {
				t.Errorf("%s uses undefined variable $%s", where, name)
			}
			used[name] = true
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		where := fmt.Sprintf("variable %q", v.Name)
		if !usesDS(v.Datasource) {
			t.Errorf("%s: datasource %+v, want uid ${%s}", where, v.Datasource, dsVar)
		}
		use(where, v.query())
		if slices.Contains(refs(v.query()), v.Name) {
			t.Errorf("%s refers to itself", where)
		}
	}

	ids := map[int]string{}
	for _, p := range panels {
		where := fmt.Sprintf("panel %d %q", p.ID, p.Title)
		if prev, ok := ids[p.ID]; ok || p.ID == 0 {
			t.Errorf("%s: id not unique (also %q) or zero", where, prev)
		}
		ids[p.ID] = p.Title
		if p.GridPos.X+p.GridPos.W > 24 || p.GridPos.W == 0 || p.GridPos.H == 0 {
			t.Errorf("%s: gridPos %+v does not fit a 24-column row", where, p.GridPos)
		}
		use(where, p.Title)
		if p.Type == "row" {
			continue
		}
		if !usesDS(p.Datasource) {
			t.Errorf("%s: datasource %+v, want uid ${%s}", where, p.Datasource, dsVar)
		}
		if len(p.Targets) == 0 {
			t.Errorf("%s: no queries", where)
		}
		refIDs := map[string]bool{}
		for _, tg := range p.Targets {
			tw := fmt.Sprintf("%s query %s", where, tg.RefID)
			if tg.RefID == "" || refIDs[tg.RefID] {
				t.Errorf("%s: refId empty or not unique", tw)
			}
			refIDs[tg.RefID] = true
			if tg.Datasource != nil && !usesDS(tg.Datasource) {
				t.Errorf("%s: datasource %+v, want uid ${%s}", tw, tg.Datasource, dsVar)
			}
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("%s: empty expr", tw)
			}
			use(tw, tg.Expr)
		}
	}
	for _, v := range d.Templating.List {
		if v.Name != dsVar && !used[v.Name] {
			t.Errorf("variable %q is defined but no query uses it", v.Name)
		}
	}
}

// labelValues matches a Prometheus variable query label_values(selector, label).
var labelValues = regexp.MustCompile(`^\s*label_values\((.+),\s*\w+\s*\)\s*$`)

// substitute replaces every variable with a value that keeps the query valid PromQL:
// the dashboard's own variables all appear inside regex matchers, where ".*" fits.
func substitute(t *testing.T, expr string) string {
	t.Helper()
	return varRef.ReplaceAllStringFunc(expr, func(ref string) string {
		name := refs(ref)[0]
		if v, ok := builtins[name]; ok {
			return v
		}
		if strings.HasPrefix(name, "__") {
			t.Errorf("unknown Grafana variable %s: add a substitution to builtins", ref)
		}
		return ".*"
	})
}

// TestDashboardQueries writes every panel query, and the selector of every label_values
// variable, as a recording rule and lets promtool parse them.
func TestDashboardQueries(t *testing.T) { eachDashboard(t, testDashboardQueries) }

func testDashboardQueries(t *testing.T, d dashboard) {
	promtool := tool(t, "promtool", "prometheus")
	type rule struct {
		Record string `json:"record"`
		Expr   string `json:"expr"`
	}
	var rules []rule
	for _, p := range allPanels(d.Panels) {
		for _, tg := range p.Targets {
			rules = append(rules, rule{fmt.Sprintf("dashboard:panel_%d_%s", p.ID, tg.RefID), substitute(t, tg.Expr)})
		}
	}
	for _, v := range d.Templating.List {
		if m := labelValues.FindStringSubmatch(v.query()); v.Type == "query" && m != nil {
			rules = append(rules, rule{"dashboard:variable_" + v.Name, substitute(t, m[1])})
		}
	}
	if len(rules) == 0 {
		t.Fatal("no queries found")
	}
	file := map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}}
	b, err := json.MarshalIndent(file, "", "  ") // JSON is YAML
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dashboard-queries.yml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, ".", promtool, "check", "rules", "--lint=none", path)
}

// TestPrometheusRule checks that the Kubernetes PrometheusRule carries exactly the groups of
// prometheus/reachd-rules.yml: its spec is that file from "groups:" on, indented by two
// spaces. `go test ./deploy -run PrometheusRule -update` rewrites it.
func TestPrometheusRule(t *testing.T) {
	const path = "kubernetes/prometheusrule.yaml"
	rules, err := os.ReadFile("prometheus/reachd-rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(rules, []byte("\ngroups:\n"))
	if i < 0 {
		t.Fatal(`prometheus/reachd-rules.yml: no top-level "groups:"`)
	}
	var want bytes.Buffer
	for _, line := range strings.SplitAfter(string(rules[i+1:]), "\n") {
		if strings.TrimSpace(line) != "" {
			want.WriteString("  ")
		}
		want.WriteString(line)
	}

	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	j := bytes.Index(got, []byte("\nspec:\n"))
	if j < 0 {
		t.Fatalf(`%s: no top-level "spec:"`, path)
	}
	head, spec := got[:j+len("\nspec:\n")], got[j+len("\nspec:\n"):]
	if bytes.Equal(spec, want.Bytes()) {
		return
	}
	if *update {
		if err := os.WriteFile(path, append(head, want.Bytes()...), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	gl, wl := strings.Split(string(spec), "\n"), strings.Split(want.String(), "\n")
	for n := range min(len(gl), len(wl)) {
		if gl[n] != wl[n] {
			t.Fatalf("%s differs from prometheus/reachd-rules.yml at spec line %d:\n got: %q\nwant: %q\nrun: go test ./deploy -run PrometheusRule -update", path, n+1, gl[n], wl[n])
		}
	}
	t.Fatalf("%s: spec has %d lines, prometheus/reachd-rules.yml %d; run: go test ./deploy -run PrometheusRule -update", path, len(gl), len(wl))
}

// TestSystemdUnit runs systemd-analyze verify on the unit, with ExecStart pointing at an
// executable that exists here (this test binary) instead of /usr/local/bin/reachd.
func TestSystemdUnit(t *testing.T) {
	analyze := tool(t, "systemd-analyze", "systemd")
	unit, err := os.ReadFile("systemd/reachd.service")
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	const bin = "ExecStart=/usr/local/bin/reachd "
	if !bytes.Contains(unit, []byte(bin)) {
		t.Fatalf("systemd/reachd.service: no %q", bin)
	}
	unit = bytes.ReplaceAll(unit, []byte(bin), []byte("ExecStart="+self+" "))
	path := filepath.Join(t.TempDir(), "reachd.service")
	if err := os.WriteFile(path, unit, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(analyze, "verify", path)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// githubSlug is the anchor GitHub gives a Markdown heading.
func githubSlug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
		}
	}
	return b.String()
}

var (
	alertBlock  = regexp.MustCompile(`(?m)^ +- alert: (\w+)\n((?:(?: +[^-\s].*)?\n)*)`)
	runbookURL  = regexp.MustCompile(`runbook_url: https://github\.com/reachd/reachd/blob/main/docs/alerts\.md#(\S+)`)
	docsAnchor  = regexp.MustCompile(`docs/alerts\.md#([a-z0-9_]+)`)
	mdHeading   = regexp.MustCompile(`(?m)^#+ (.+)$`)
	htmlAnchor  = regexp.MustCompile(`<a id="([^"]+)"></a>`)
	severityRe  = regexp.MustCompile(`(?m)^ +severity: (\S+)$`)
	scopeRe     = regexp.MustCompile(`(?m)^ +scope: (site|vendor|endpoint|resolver|proxy|reachd)$`)
	annotations = []string{"summary:", "description:", "runbook_url:"}
)

// TestAlertsDocumented checks that every alert has a severity, a scope, the annotations,
// a promtool test and a runbook section in docs/alerts.md, and that every failure reason
// and every anchor the rules link to exists there.
func TestAlertsDocumented(t *testing.T) {
	rules, err := os.ReadFile("prometheus/reachd-rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile("prometheus/reachd-rules.test.yml")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../docs/alerts.md")
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for _, m := range mdHeading.FindAllStringSubmatch(string(doc), -1) {
		anchors[githubSlug(m[1])] = true
	}
	for _, m := range htmlAnchor.FindAllStringSubmatch(string(doc), -1) {
		anchors[m[1]] = true
	}

	blocks := alertBlock.FindAllStringSubmatch(string(rules), -1)
	if n := strings.Count(string(rules), "- alert: "); len(blocks) != n || n == 0 {
		t.Fatalf("parsed %d alert blocks, the file has %d", len(blocks), n)
	}
	for _, m := range blocks {
		name, body := m[1], m[2]
		t.Run(name, func(t *testing.T) {
			if s := severityRe.FindStringSubmatch(body); s == nil || !slices.Contains([]string{"page", "warning", "info"}, s[1]) {
				t.Errorf("severity missing or not page|warning|info")
			}
			if !scopeRe.MatchString(body) {
				t.Errorf("scope missing or not site|vendor|endpoint|resolver|proxy|reachd")
			}
			for _, a := range annotations {
				if !strings.Contains(body, a) {
					t.Errorf("no %s annotation", strings.TrimSuffix(a, ":"))
				}
			}
			if u := runbookURL.FindStringSubmatch(body); u == nil || u[1] != strings.ToLower(name) || !anchors[u[1]] {
				t.Errorf("runbook_url %v: want docs/alerts.md#%s and a section \"### %s\" there", u, strings.ToLower(name), name)
			}
			if !strings.Contains(string(tests), "alertname: "+name+"\n") {
				t.Errorf("no promtool test in reachd-rules.test.yml")
			}
		})
	}
	for _, m := range docsAnchor.FindAllStringSubmatch(string(rules), -1) {
		if !anchors[m[1]] {
			t.Errorf("reachd-rules.yml links docs/alerts.md#%s, which does not exist", m[1])
		}
	}
	for _, r := range probe.Reasons() {
		if !anchors[string(r)] {
			t.Errorf("reason %s has no row <a id=%q></a> in docs/alerts.md", r, r)
		}
	}
}

// TestReachdConfigs validates the reachd configs shipped for compose and Kubernetes with
// `reachd validate` (which loads files only; it probes nothing).
func TestReachdConfigs(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go is not on PATH: %v", err)
	}
	dir := t.TempDir()
	reachd := filepath.Join(dir, "reachd")
	run(t, "..", goBin, "build", "-o", reachd, "./cmd/reachd")

	cm, err := os.ReadFile("kubernetes/configmap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const key = "  reachd.toml: |\n"
	i := bytes.Index(cm, []byte(key))
	if i < 0 {
		t.Fatalf("kubernetes/configmap.yaml: no %q", key)
	}
	var toml strings.Builder
	for _, line := range strings.SplitAfter(string(cm[i+len(key):]), "\n") {
		if strings.TrimSpace(line) != "" && !strings.HasPrefix(line, "    ") {
			break // the end of the block scalar
		}
		toml.WriteString(strings.TrimPrefix(line, "    "))
	}
	k8s := filepath.Join(dir, "configmap-reachd.toml")
	if err := os.WriteFile(k8s, []byte(toml.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, file := range map[string]string{"compose": "compose/reachd.toml", "kubernetes": k8s} {
		t.Run(name, func(t *testing.T) {
			run(t, ".", reachd, "validate", "--config.file="+file)
		})
	}
}
