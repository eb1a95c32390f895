//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestAlerts runs the shipped alert rules in a real Prometheus and the shipped routing in a
// real Alertmanager against a real reachd, with real network faults:
//
//  1. the site's link is cut: ReachdSiteEgressLost fires and Alertmanager shows the four
//     ReachdEndpointUnreachable alerts inhibited by it;
//  2. the link is restored: the site alert resolves;
//  3. one endpoint's port is rejected: only its ReachdEndpointUnreachable fires, not
//     inhibited, and no site or vendor alert.
//
// Test-only settings: reachd probes every 2s, Prometheus scrapes and evaluates every 1s,
// and Prometheus loads a temporary copy of deploy/prometheus/reachd-rules.yml whose `for:`
// values are rewritten to alertsFor (docs/alerts.md#tests-and-the-for-override).
func TestAlerts(t *testing.T) {
	bins := alertsRequire(t)
	dir := t.TempDir()
	n := alertsNewNet(t, dir)
	alertsWriteCerts(t, dir)
	n.startHelper(t, dir)

	cfg := alertsWriteConfigs(t, dir)
	n.start(t, "reachd", n.site, nil, bins.reachd, "run", "--config.file="+cfg.reachd,
		"--web.listen-address=127.0.0.1:9716", "--log.level=debug")
	n.start(t, "alertmanager", n.site, nil, bins.alertmanager, "--config.file="+cfg.alertmanager,
		"--storage.path="+filepath.Join(dir, "alertmanager"), "--web.listen-address=127.0.0.1:9093",
		"--cluster.listen-address=")
	n.start(t, "prometheus", n.site, nil, bins.prometheus, "--config.file="+cfg.prometheus,
		"--storage.tsdb.path="+filepath.Join(dir, "prometheus"), "--web.listen-address=127.0.0.1:9090",
		"--rules.alert.resend-delay=1s")

	a := &alertsAPI{t: t, c: n.client()}
	for _, u := range []string{"http://127.0.0.1:9716/-/ready", "http://127.0.0.1:9093/-/ready", "http://127.0.0.1:9090/-/ready"} {
		alertsEventually(t, "ready: "+u, time.Minute, func() (bool, string) { return a.ready(u) })
	}
	alertsEventually(t, "all four probes succeed, no alert", time.Minute, func() (bool, string) {
		ok := a.query(`count(reachd_probe_success{site="e2e-site"} == 1)`) == "4"
		return ok && len(a.promAlerts()) == 0, fmt.Sprintf("probes: %v; alerts: %v", a.queryAll(`reachd_probe_success`), a.promAlerts())
	})

	t.Log("cutting the site's link")
	n.setLink(t, "down")
	alertsEventually(t, "site alert firing, endpoint alerts inhibited by it", time.Minute, a.siteOutageSeen)
	// Its description names the reasons (the dns stage: the resolver is behind the cut link).
	a.wantDescription("ReachdSiteEgressLost", "docs/alerts.md#dns_")

	t.Log("restoring the site's link")
	n.setLink(t, "up")
	alertsEventually(t, "site and endpoint alerts resolved", time.Minute, func() (bool, string) {
		p, m := a.promAlerts(), a.amAlerts()
		return len(p) == 0 && len(m) == 0, fmt.Sprintf("prometheus: %v; alertmanager: %v", p, m)
	})

	victim := alertsTargets[3]
	t.Logf("rejecting %s:%d", victim.host, victim.port)
	n.iptables(t, "-A", "OUTPUT", "-p", "tcp", "-d", alertsInetAddr, "--dport", fmt.Sprint(victim.port),
		"-j", "REJECT", "--reject-with", "tcp-reset")
	only := func() (bool, string) { return a.onlyEndpointAlert(victim) }
	alertsEventually(t, "only the endpoint alert of "+victim.name+", not inhibited", time.Minute, only)
	// It stays that way: several probe runs and rule evaluations later, still nothing else.
	alertsConsistently(t, "only the endpoint alert of "+victim.name, 6*time.Second, only)
	a.wantDescription("ReachdEndpointUnreachable", "at stage tcp with reason tcp_refused")

	// With a failure present, every metric the rules and the dashboard use is exported.
	have := map[string]bool{}
	for _, s := range a.queryAll(`group by (__name__) ({__name__=~"reachd_.+"})`) {
		have[s.Metric["__name__"]] = true
	}
	// Exported only on pac and wpad paths, which this site has not: TestPACPaths
	// shows the daemon exporting them, promtool the alert on them.
	pacOnly := map[string]bool{"reachd_pac_proxy_info": true, "reachd_pac_fallback": true}
	for _, name := range alertsUsedMetrics(t) {
		if !have[name] && !pacOnly[name] {
			t.Errorf("the rules or the dashboard use %s, which reachd does not export (exported: %v)", name, have)
		}
	}
	alertsCheckDashboard(t, a)
}

// alertsUsedMetrics lists the reachd_ metric names that deploy/prometheus/reachd-rules.yml and
// deploy/grafana/reachd.json query (not the recording rules' names).
func alertsUsedMetrics(t *testing.T) []string {
	t.Helper()
	name := regexp.MustCompile(`(?:^|[^:\w])(reachd_[a-z0-9_]+)`)
	seen := map[string]bool{}
	for _, f := range []string{"../deploy/prometheus/reachd-rules.yml", "../deploy/grafana/reachd.json"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range name.FindAllStringSubmatch(string(b), -1) {
			seen[m[1]] = true
		}
	}
	names := slices.Sorted(maps.Keys(seen))
	if len(names) < 10 {
		t.Fatalf("found only %v", names)
	}
	return names
}

// alertsFor replaces every `for:` of the shipped rules in the test's copy.
const alertsFor = "2s"

type alertsBins struct{ reachd, prometheus, alertmanager string }

// alertsRequire finds what the test needs, or skips it (fails it under CI) saying what is
// missing.
func alertsRequire(t *testing.T) alertsBins {
	t.Helper()
	missing := func(what string) {
		if os.Getenv("CI") != "" {
			t.Fatalf("TestAlerts needs %s", what)
		}
		t.Skipf("SKIPPED TestAlerts: needs %s", what)
	}
	if os.Geteuid() != 0 {
		missing("root (it creates network namespaces)")
	}
	var b alertsBins
	for _, tool := range []struct {
		name, pkg string
		into      *string
	}{
		{"ip", "iproute2", nil},
		{"iptables", "iptables", nil},
		{"prometheus", "prometheus", &b.prometheus},
		{"prometheus-alertmanager", "prometheus-alertmanager", &b.alertmanager},
	} {
		p, err := exec.LookPath(tool.name)
		if err != nil {
			missing(fmt.Sprintf("%s (apt-get install %s)", tool.name, tool.pkg))
		}
		if tool.into != nil {
			*tool.into = p
		}
	}
	b.reachd = os.Getenv("REACHD_BIN")
	if b.reachd == "" {
		b.reachd = "../bin/reachd"
	}
	abs, err := filepath.Abs(b.reachd)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(abs); err != nil {
		missing(fmt.Sprintf("the reachd binary (REACHD_BIN, default ../bin/reachd): %v", err))
	}
	b.reachd = abs
	return b
}

type alertsConfigs struct{ reachd, prometheus, alertmanager string }

// alertsWriteConfigs writes reachd's config, the test copy of the rules and Prometheus's
// config into dir; Alertmanager runs the shipped file as it is.
func alertsWriteConfigs(t *testing.T, dir string) alertsConfigs {
	t.Helper()
	var toml strings.Builder
	fmt.Fprintf(&toml, "site = \"e2e-site\"\n\n[defaults]\ninterval = \"2s\"\ntimeout = \"1s\"\n\n")
	fmt.Fprintf(&toml, "[[resolver]]\nname = \"internet\"\nservers = [\"%s:53\"]\n\n", alertsInetAddr)
	fmt.Fprintf(&toml, "[trust]\nca_files = [%q]\n", filepath.Join(dir, "ca.pem"))
	for _, tg := range alertsTargets {
		fmt.Fprintf(&toml, "\n[[target]]\nvendor = %q\nregion = %q\nname = %q\nhost = %q\nport = %d\n",
			tg.vendor, tg.region, tg.name, tg.host, tg.port)
	}

	rules, err := os.ReadFile("../deploy/prometheus/reachd-rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	forLine := regexp.MustCompile(`(?m)^(\s+for:) \S+$`)
	if got, want := len(forLine.FindAll(rules, -1)), strings.Count(string(rules), "- alert: "); got != want {
		t.Fatalf("reachd-rules.yml: %d for: lines for %d alerts; the override would miss some", got, want)
	}
	rules = forLine.ReplaceAll(rules, []byte("${1} "+alertsFor))

	c := alertsConfigs{
		reachd:       filepath.Join(dir, "reachd.toml"),
		prometheus:   filepath.Join(dir, "prometheus.yml"),
		alertmanager: "../deploy/alertmanager/alertmanager.yml",
	}
	if c.alertmanager, err = filepath.Abs(c.alertmanager); err != nil {
		t.Fatal(err)
	}
	prom := fmt.Sprintf(`global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}
rule_files: [%q]
alerting:
  alertmanagers:
    - static_configs: [{targets: ["127.0.0.1:9093"]}]
scrape_configs:
  - job_name: reachd
    static_configs: [{targets: ["127.0.0.1:9716"], labels: {site: e2e-site}}]
`, filepath.Join(dir, "reachd-rules.yml"))
	for path, data := range map[string][]byte{
		c.reachd:                               []byte(toml.String()),
		filepath.Join(dir, "reachd-rules.yml"): rules,
		c.prometheus:                           []byte(prom),
	} {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// alertsEventually polls cond until it holds, failing the test with cond's last
// description after timeout.
func alertsEventually(t *testing.T, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	start := time.Now()
	for {
		ok, state := cond()
		if ok {
			t.Logf("%s (after %s)", what, time.Since(start).Round(100*time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last seen: %s", what, timeout, state)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// alertsConsistently polls cond for the whole duration and fails at the first miss.
func alertsConsistently(t *testing.T, what string, d time.Duration, cond func() (bool, string)) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		if ok, state := cond(); !ok {
			t.Fatalf("%s: stopped holding; seen: %s", what, state)
		}
	}
}

// alertsAPI reads Prometheus's and Alertmanager's HTTP APIs inside the site namespace.
type alertsAPI struct {
	t *testing.T
	c *http.Client
}

func (a *alertsAPI) get(u string, into any) error {
	resp, err := a.c.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(into)
}

func (a *alertsAPI) ready(u string) (bool, string) {
	resp, err := a.c.Get(u)
	if err != nil {
		return false, err.Error()
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK, resp.Status
}

type alertsSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// queryAll runs an instant query; errors are returned as a single sample's "error" label.
func (a *alertsAPI) queryAll(q string) []alertsSample {
	var r struct {
		Data struct {
			Result []alertsSample `json:"result"`
		} `json:"data"`
	}
	if err := a.get("http://127.0.0.1:9090/api/v1/query?query="+url.QueryEscape(q), &r); err != nil {
		return []alertsSample{{Metric: map[string]string{"error": err.Error()}}}
	}
	return r.Data.Result
}

// query returns the value of a query with one result, or "".
func (a *alertsAPI) query(q string) string {
	if r := a.queryAll(q); len(r) == 1 {
		s, _ := r[0].Value[1].(string)
		return s
	}
	return ""
}

// alertsPromAlert is an alert in Prometheus's /api/v1/alerts.
type alertsPromAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	State       string            `json:"state"`
}

func (p alertsPromAlert) String() string {
	return fmt.Sprintf("%s%s[%s]", p.Labels["alertname"], alertsWhere(p.Labels), p.State)
}

// promAlerts returns the pending and firing alerts; an error is returned as an alert.
func (a *alertsAPI) promAlerts() []alertsPromAlert {
	var r struct {
		Data struct {
			Alerts []alertsPromAlert `json:"alerts"`
		} `json:"data"`
	}
	if err := a.get("http://127.0.0.1:9090/api/v1/alerts", &r); err != nil {
		return []alertsPromAlert{{Labels: map[string]string{"alertname": "error: " + err.Error()}}}
	}
	return r.Data.Alerts
}

// wantDescription checks that the active alert's description contains want, and logs it.
func (a *alertsAPI) wantDescription(alertname, want string) {
	a.t.Helper()
	for _, p := range a.promAlerts() {
		if p.Labels["alertname"] == alertname {
			a.t.Logf("%s: %s", alertname, p.Annotations["description"])
			if !strings.Contains(p.Annotations["description"], want) {
				a.t.Errorf("%s: description does not contain %q", alertname, want)
			}
			return
		}
	}
	a.t.Errorf("%s: not active", alertname)
}

// alertsAMAlert is an alert in Alertmanager's /api/v2/alerts.
type alertsAMAlert struct {
	Labels      map[string]string `json:"labels"`
	Fingerprint string            `json:"fingerprint"`
	Status      struct {
		State       string   `json:"state"`
		InhibitedBy []string `json:"inhibitedBy"`
	} `json:"status"`
}

func (m alertsAMAlert) String() string {
	s := fmt.Sprintf("%s%s[%s", m.Labels["alertname"], alertsWhere(m.Labels), m.Status.State)
	if len(m.Status.InhibitedBy) > 0 {
		s += " by " + strings.Join(m.Status.InhibitedBy, ",")
	}
	return s + "]"
}

// amAlerts returns the alerts Alertmanager holds that have not ended, inhibited ones included.
func (a *alertsAPI) amAlerts() []alertsAMAlert {
	var r []alertsAMAlert
	if err := a.get("http://127.0.0.1:9093/api/v2/alerts", &r); err != nil {
		return []alertsAMAlert{{Labels: map[string]string{"alertname": "error: " + err.Error()}}}
	}
	return r
}

// alertsWhere shortens an alert's labels for messages.
func alertsWhere(l map[string]string) string {
	var parts []string
	for _, k := range []string{"site", "path", "vendor", "region", "target"} {
		if v, ok := l[k]; ok {
			parts = append(parts, k+"="+v)
		}
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// siteOutageSeen: Prometheus fires ReachdSiteEgressLost for e2e-site/direct, and
// Alertmanager holds it active with the endpoint alerts of all four targets suppressed by
// it (status.inhibitedBy names its fingerprint).
func (a *alertsAPI) siteOutageSeen() (bool, string) {
	p, m := a.promAlerts(), a.amAlerts()
	state := fmt.Sprintf("prometheus: %v; alertmanager: %v", p, m)
	firing := slices.ContainsFunc(p, func(x alertsPromAlert) bool {
		return x.Labels["alertname"] == "ReachdSiteEgressLost" && x.State == "firing" &&
			x.Labels["site"] == "e2e-site" && x.Labels["path"] == "direct"
	})
	i := slices.IndexFunc(m, func(x alertsAMAlert) bool {
		return x.Labels["alertname"] == "ReachdSiteEgressLost" && x.Status.State == "active"
	})
	if !firing || i < 0 {
		return false, state
	}
	site := m[i].Fingerprint
	for _, tg := range alertsTargets {
		if !slices.ContainsFunc(m, func(x alertsAMAlert) bool {
			return x.Labels["alertname"] == "ReachdEndpointUnreachable" && x.Labels["target"] == tg.name &&
				x.Labels["vendor"] == tg.vendor && x.Status.State == "suppressed" &&
				slices.Contains(x.Status.InhibitedBy, site)
		}) {
			return false, state
		}
	}
	return true, state
}

// onlyEndpointAlert: the one alert pending or firing in Prometheus is victim's
// ReachdEndpointUnreachable, it is firing, and Alertmanager holds it active (not inhibited)
// and holds nothing else.
func (a *alertsAPI) onlyEndpointAlert(victim alertsTarget) (bool, string) {
	p, m := a.promAlerts(), a.amAlerts()
	state := fmt.Sprintf("prometheus: %v; alertmanager: %v", p, m)
	is := func(l map[string]string) bool {
		return l["alertname"] == "ReachdEndpointUnreachable" && l["vendor"] == victim.vendor &&
			l["region"] == victim.region && l["target"] == victim.name && l["site"] == "e2e-site"
	}
	ok := len(p) == 1 && is(p[0].Labels) && p[0].State == "firing" &&
		len(m) == 1 && is(m[0].Labels) && m[0].Status.State == "active" && len(m[0].Status.InhibitedBy) == 0
	return ok, state
}
