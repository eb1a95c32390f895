//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/reachd/reachd/probe"
	"github.com/reachd/reachd/probe/probetest"
)

// statusPageNetnsEnv marks the copy of this test binary that runs inside
// the loopback-only network namespace.
const statusPageNetnsEnv = "REACHD_E2E_STATUSPAGE_NETNS"

// statusPageShots is where the screenshots go besides e2e/out/.
const statusPageShots = "/tmp/reachd-screenshots"

// TestStatusPage opens the status page of a running reachd in headless
// Chromium. Chromium, reachd and the scenario servers all run in a new
// network namespace that has nothing but its own loopback, so nothing any
// of them sends can leave the machine: the test re-executes itself there
// with unshare -n.
func TestStatusPage(t *testing.T) {
	if os.Getenv(statusPageNetnsEnv) != "" {
		statusPageInNetns(t)
		return
	}
	requireRoot(t)
	unshare := requireTool(t, "unshare", "util-linux")
	requireTool(t, "ip", "iproute2")
	requireTool(t, "chromium", "chromium")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, unshare, "-n", self, "-test.run=^TestStatusPage$", "-test.v", "-test.count=1", "-test.timeout=4m")
	cmd.Env = append(os.Environ(), statusPageNetnsEnv+"=1", "REACHD_BIN="+reachdBin(t))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	t.Logf("inside the namespace:\n%s", out.String())
	switch {
	case ctx.Err() != nil:
		t.Fatal("the test inside the namespace hung: killed after 5 min")
	case err != nil:
		t.Fatalf("the test inside the namespace failed: %v", err)
	case strings.Contains(out.String(), "--- SKIP"):
		t.Skip("SKIPPED LOUDLY inside the namespace; see the log above")
	}
}

// statusPageScenario is a site with passing and failing targets over
// three paths: direct; corp-proxy, which wants credentials the config does
// not give (proxy_auth_required); and inspect-proxy, which re-signs TLS with
// a CA trusted on that path (up, intercepted).
func statusPageScenario(t *testing.T) string {
	t.Helper()
	ca := probetest.NewCA(t, "E2E Root CA")
	inspectCA := probetest.NewCA(t, "Corp Inspection CA")
	var hits atomic.Int64
	good := probetest.NewTLSServer(t, probetest.Issuer(ca), probetest.Hosts("good.reachd.test", "api.reachd.test", "flaky.reachd.test"),
		probetest.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Host == "flaky.reachd.test" || strings.HasPrefix(r.Host, "flaky.reachd.test:") {
				if hits.Add(1)%3 == 0 { // every third run of the flaky target fails
					http.Error(w, "busy", http.StatusServiceUnavailable)
					return
				}
			}
			w.Write([]byte("ok\n"))
		})))
	rogue := probetest.NewTLSServer(t, probetest.Issuer(probetest.NewCA(t, "Rogue Inspection CA")), probetest.Hosts("rogue.reachd.test"))
	legacy := probetest.NewTLSServer(t, probetest.Issuer(ca), probetest.Hosts("legacy.reachd.test"), probetest.TLSVersions(tls.VersionTLS10, tls.VersionTLS10))
	dnsSrv := probetest.NewDNSServer(t, probetest.Records{
		"good.reachd.test":   {A: []string{"127.0.0.1"}},
		"api.reachd.test":    {A: []string{"127.0.0.1"}},
		"flaky.reachd.test":  {A: []string{"127.0.0.1"}},
		"rogue.reachd.test":  {A: []string{"127.0.0.1"}},
		"legacy.reachd.test": {A: []string{"127.0.0.1"}},
	})
	corp := probetest.NewProxy(t, probetest.BasicAuth("svc-reachd", "not-configured"))
	inspect := probetest.NewProxy(t, probetest.Intercept(inspectCA), probetest.Upstream(map[string]string{
		fmt.Sprintf("good.reachd.test:%d", good.Port):   good.Addr,
		fmt.Sprintf("api.reachd.test:%d", good.Port):    good.Addr,
		fmt.Sprintf("rogue.reachd.test:%d", rogue.Port): rogue.Addr,
	}))

	dir := t.TempDir()
	caFile := writeFile(t, dir, "ca.pem", string(ca.PEM))
	inspectFile := writeFile(t, dir, "inspect.pem", string(inspectCA.PEM))
	config := fmt.Sprintf(`site = "osaka-branch"
[defaults]
interval = "1s"
timeout = "1s"

[[resolver]]
name = "lab"
servers = [%q]

[trust]
ca_files = [%q]

[[path]]
name = "corp-proxy"
proxy = %q

[[path]]
name = "inspect-proxy"
proxy = %q
ca_file = %q

[[target]]
vendor = "acme"
region = "jp"
name = "good"
host = "good.reachd.test"
port = %[6]d
purpose = "Agent API gateway"
http = { path = "/", expect_status = [200], expect_body = "^ok" }

[[target]]
vendor = "acme"
region = "jp"
name = "missing"
host = "missing.reachd.test"
port = %[6]d

[[target]]
vendor = "acme"
region = "jp"
name = "rogue"
host = "rogue.reachd.test"
port = %[7]d

[[target]]
vendor = "acme"
region = "jp"
name = "flaky"
host = "flaky.reachd.test"
port = %[6]d
paths = ["direct"]
http = { expect_status = [200] }

[[target]]
vendor = "globex"
region = "eu"
name = "api"
host = "api.reachd.test"
port = %[6]d
paths = ["direct", "inspect-proxy"]

[[target]]
vendor = "globex"
region = "eu"
name = "legacy"
host = "legacy.reachd.test"
port = %[8]d
paths = ["direct"]
`, dnsSrv.Addr, caFile, corp.URL.String(), inspect.URL.String(), inspectFile, good.Port, rogue.Port, legacy.Port)
	return writeFile(t, dir, "reachd.toml", config)
}

// statusPageProbes is how many probes (target x path) the scenario has.
const statusPageProbes = 3*3 + 1 + 2 + 1

var runsTotal = regexp.MustCompile(`(?m)^reachd_probe_runs_total\{([^}]*)\} (\d+)$`)

// minRuns is the fewest runs any probe has had, from /metrics.
func minRuns(metrics string) (probes, fewest int) {
	runs := map[string]int{}
	for _, m := range runsTotal.FindAllStringSubmatch(metrics, -1) {
		key := regexp.MustCompile(`,?result="[a-z]+"`).ReplaceAllString(m[1], "")
		var n int
		fmt.Sscan(m[2], &n)
		runs[key] += n
	}
	fewest = -1
	for _, n := range runs {
		if fewest < 0 || n < fewest {
			fewest = n
		}
	}
	return len(runs), fewest
}

func statusPageInNetns(t *testing.T) {
	// The namespace is new: bring its loopback up, and make sure it has no
	// route anywhere else before anything starts.
	if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("ip link set lo up: %v\n%s", err, out)
	}
	if out, _ := exec.Command("ip", "-4", "route", "show", "default").CombinedOutput(); len(bytes.TrimSpace(out)) != 0 {
		t.Fatalf("the namespace has a default route; refusing to run Chromium: %s", out)
	}
	chromium := requireTool(t, "chromium", "chromium")
	config := statusPageScenario(t)
	vctx, vcancel := context.WithTimeout(context.Background(), time.Minute)
	defer vcancel()
	if code, out, stderr := runReachd(t, vctx, nil, "validate", "--config.file", config); code != 0 {
		t.Fatalf("the scenario config does not validate (exit %d):\n%s%s", code, out, stderr)
	}
	d := startDaemon(t, "--config.file", config)
	// Every probe has run a few times, so the history strips show something.
	d.waitFor(t, "/metrics", func(code int, body string) bool {
		n, fewest := minRuns(body)
		return code == 200 && n == statusPageProbes && fewest >= 4
	})
	statusPageAPI(t, d, config)

	ctx, cancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless, chromedp.NoSandbox, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.WindowSize(1440, 900),
	)
	defer cancel()
	ctx, cancelTab := chromedp.NewContext(ctx)
	defer cancelTab()
	if err := chromedp.Do(ctx); err != nil { // starts Chromium; the browser lives as long as ctx, so no timeout here
		t.Fatalf("starting chromium: %v", err)
	}
	b := &browser{t: t, ctx: ctx, base: d.base}
	b.do(chromedp.EmulateViewport(1440, 900))

	// The whole page: header, filter form, one column per path.
	b.do(chromedp.Navigate(d.base+"/"), chromedp.WaitVisible(chromedp.CSS("#filters")))
	if site := b.text("#site"); site != "osaka-branch" {
		t.Errorf("header site %q", site)
	}
	counts := strings.Join(strings.Fields(b.text("#counts")), " ")
	if !regexp.MustCompile(`^\d+ up \d+ down 0 pending 13 probes · 6 targets$`).MatchString(counts) {
		t.Errorf("header counts %q", counts)
	}
	if refresh := b.eval(`document.querySelector('meta[http-equiv=refresh]').content`); refresh != "30; url=./" {
		t.Errorf("auto-refresh %q", refresh)
	}
	if cols := b.eval(`[...document.querySelectorAll('section[data-vendor=acme] .colhead > div')].map(e => e.textContent).join(',')`); cols != "target,direct,corp-proxy,inspect-proxy" {
		t.Errorf("acme/jp columns %q", cols)
	}
	for _, sel := range []string{
		`details[id="acme/jp/good"] .cell[data-path=corp-proxy][data-reason=proxy_auth_required]`,
		`details[id="acme/jp/good"] .cell[data-path=direct][data-state=up]`,
		`details[id="acme/jp/rogue"] .cell[data-path=direct][data-reason=tls_untrusted_ca]`,
		`details[id="acme/jp/rogue"] .cell[data-path=inspect-proxy][data-state=up] .tag`, // intercepted
		`details[id="acme/jp/missing"] .cell[data-path=direct][data-reason=dns_nxdomain]`,
		`details[id="globex/eu/legacy"] .cell[data-reason=tls_version_unsupported]`,
		`form#filters select[name=state]`, `form#filters select[name=vendor]`, `form#filters button[type=submit]`,
	} {
		if b.eval(`document.querySelectorAll('`+jsQuote(sel)+`').length`) == "0" {
			t.Errorf("no element %s", sel)
		}
	}
	// History strips: a bar per run, titled with its time and outcome.
	if n := b.eval(`document.querySelectorAll('svg.strip rect').length`); n == "0" {
		t.Error("no history bars")
	}
	flaky := b.eval(`[...document.querySelectorAll('details[id="acme/jp/flaky"] svg.strip rect title')].map(e => e.textContent).join('\n')`)
	if !strings.Contains(flaky, " up") || !strings.Contains(flaky, "down: http_status_unexpected") {
		t.Errorf("the flaky target's history titles:\n%s", flaky)
	}
	b.shot("statuspage-full.png", chromedp.FullScreenshot(100))

	// A down row's hint shows once the row is expanded, without JavaScript.
	hint := `details[id="acme/jp/rogue"] .panel[data-path=direct] .hint`
	if vis := b.eval(`document.querySelector('` + jsQuote(hint) + `').checkVisibility()`); vis != "false" {
		t.Error("the hint shows before the row is expanded")
	}
	b.do(chromedp.Click(chromedp.CSS(`details[id="acme/jp/rogue"] > summary`)), chromedp.WaitVisible(chromedp.CSS(hint)))
	if got := strings.TrimSpace(b.text(hint)); got != probe.TLSUntrustedCA.Hint() {
		t.Errorf("hint %q, want %q", got, probe.TLSUntrustedCA.Hint())
	}
	if detail := b.text(`details[id="acme/jp/rogue"] .panel[data-path=direct] pre.detail`); !strings.Contains(detail, "Rogue Inspection CA") {
		t.Errorf("detail %q does not name the issuer", detail)
	}
	facts := b.text(`details[id="acme/jp/rogue"] .panel[data-path=inspect-proxy] dl.facts`)
	if err := contains(facts, "Corp Inspection CA", "yes — the chain anchors in a private CA", "1.3", "status 200"); err != nil {
		t.Errorf("inspect-proxy facts: %v\n%s", err, facts)
	}
	b.do(chromedp.Click(chromedp.CSS(`details[id="acme/jp/good"] > summary`)))
	b.shot("statuspage-expanded.png", chromedp.Screenshot(chromedp.CSS(`section[data-vendor=acme]`)))

	// The filter form: GET, no script; state=down hides the passing rows.
	b.do(chromedp.SetValue(chromedp.CSS(`select[name=state]`), "down"), chromedp.Click(chromedp.CSS(`form#filters button`)),
		chromedp.WaitVisible(chromedp.CSS(`a[href="./"]`)))
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); !strings.Contains(loc, "state=down") {
		t.Errorf("the form went to %s", loc)
	}
	rows := b.eval(`[...document.querySelectorAll('details.row')].map(e => e.id).join(',')`)
	if rows != "acme/jp/good,acme/jp/missing,acme/jp/rogue,globex/eu/legacy" && rows != "acme/jp/flaky,acme/jp/good,acme/jp/missing,acme/jp/rogue,globex/eu/legacy" {
		t.Errorf("state=down rows %s; want every row with a down path, and not globex/eu/api", rows)
	}
	if refresh := b.eval(`document.querySelector('meta[http-equiv=refresh]').content`); !strings.Contains(refresh, "state=down") {
		t.Errorf("the auto-refresh drops the filter: %q", refresh)
	}
	b.shot("statuspage-down.png", chromedp.FullScreenshot(100))

	// Dark mode follows the system's colour scheme.
	b.do(chromedp.Navigate(d.base+"/?refresh=0"), chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}})
		return err
	}), chromedp.Click(chromedp.CSS(`details[id="globex/eu/api"] > summary`)))
	if bg := b.eval(`getComputedStyle(document.body).backgroundColor`); bg != "rgb(13, 17, 23)" {
		t.Errorf("dark background %q", bg)
	}
	b.shot("statuspage-dark.png", chromedp.FullScreenshot(100))
}

// statusPageAPI checks the JSON and /probe endpoints and the markdown report
// against the same scenario.
func statusPageAPI(t *testing.T, d *daemon, config string) {
	code, body, err := d.get("/api/v1/targets")
	var doc struct {
		Site    string `json:"site"`
		Targets []struct {
			Target, Path string
			Checks       []string
			Interval     float64 `json:"interval_seconds"`
		} `json:"targets"`
	}
	if err != nil || code != 200 || json.Unmarshal([]byte(body), &doc) != nil || len(doc.Targets) != statusPageProbes || doc.Targets[0].Interval != 1 {
		t.Errorf("/api/v1/targets %d %v:\n%s", code, err, body)
	}
	for _, tt := range []struct {
		query string
		code  int
		want  string
	}{
		{"/probe", 400, "missing the target parameter"},
		{"/probe?target=127.0.0.1:22", 404, "no configured probe"},
		{"/probe?target=acme/jp/good&path=nowhere", 404, "no configured probe"},
		{"/probe?target=acme/jp/good", 200, `reachd_probe_success{host="good.reachd.test",path="direct",`},
		{"/probe?target=acme/jp/good&path=corp-proxy", 200, `reason="proxy_auth_required"`},
	} {
		code, body, err := d.get(tt.query)
		if err != nil || code != tt.code || !strings.Contains(body, tt.want) {
			t.Errorf("%s: %d %v, want %d with %q:\n%s", tt.query, code, err, tt.code, tt.want, body)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code, md, stderr := runReachd(t, ctx, nil, "check", "--config.file", config, "--format", "markdown", "--vendor", "acme")
	if err := contains(md, "## reachd check: ", "| site | osaka-branch |", "| filters | --vendor acme |",
		"| acme/jp | good | `good.reachd.test:", "| corp-proxy | FAIL proxy: `proxy_auth_required` |",
		"#### acme/jp/rogue via direct: `tls_untrusted_ca`", "- **hint:** ", "Rogue Inspection CA"); code != 1 || err != nil {
		t.Errorf("check --format markdown (exit %d): %v\n%s%s", code, err, md, stderr)
	}
	if os.MkdirAll("out", 0o755) == nil {
		os.WriteFile(filepath.Join("out", "check.md"), []byte(md), 0o644)
	}
}

// browser runs chromedp actions for a test, failing it on an error.
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string
}

func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("chromium: %v", err)
	}
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

// eval runs a script and returns its value as a string.
func (b *browser) eval(js string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[any](js))
	if err != nil {
		b.t.Fatalf("%s: %v", js, err)
	}
	return fmt.Sprint(v)
}

// shot saves a screenshot under e2e/out/ and /tmp/reachd-screenshots/.
func (b *browser) shot(name string, a chromedp.Action[[]byte]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, a)
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	for _, dir := range []string{"out", statusPageShots} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
			b.t.Fatal(err)
		}
	}
	b.t.Logf("screenshot: e2e/out/%s (%d KiB)", name, len(png)>>10)
}

// jsQuote makes s safe inside a single-quoted JavaScript string.
func jsQuote(s string) string {
	return strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s)
}
