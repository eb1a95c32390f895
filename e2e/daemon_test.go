//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/reachd/reachd/probe/probetest"
)

// scenario is a loopback world: DNS for *.reachd.test, a CA, and a TLS
// server per situation, with a config that probes them.
type scenario struct {
	dir    string
	config string
}

func newScenario(t *testing.T) *scenario {
	t.Helper()
	ca := probetest.NewCA(t, "E2E Root CA")
	good := probetest.NewTLSServer(t, probetest.Issuer(ca), probetest.Hosts("good.reachd.test"))
	foreign := probetest.NewTLSServer(t, probetest.Issuer(probetest.NewCA(t, "Rogue Inspection CA")), probetest.Hosts("rogue.reachd.test"))
	srv := probetest.NewDNSServer(t, probetest.Records{
		"good.reachd.test":     {A: []string{"127.0.0.1"}},
		"rogue.reachd.test":    {A: []string{"127.0.0.1"}},
		"servfail.reachd.test": {Rcode: dns.RcodeServerFailure},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	s := &scenario{dir: t.TempDir()}
	caFile := writeFile(t, s.dir, "ca.pem", string(ca.PEM))
	s.config = fmt.Sprintf(`site = "e2e-site"
[defaults]
interval = "2s"
timeout = "2s"

[[resolver]]
name = "lab"
servers = [%q]

[trust]
ca_files = [%q]

[[target]]
vendor = "acme"
region = "jp"
name = "good"
host = "good.reachd.test"
port = %d
http = { path = "/", expect_status = [200], expect_body = "^ok" }

[[target]]
vendor = "acme"
region = "jp"
name = "missing"
host = "missing.reachd.test"
port = %d

[[target]]
vendor = "acme"
region = "jp"
name = "servfail"
host = "servfail.reachd.test"
port = %d

[[target]]
vendor = "acme"
region = "jp"
name = "refused"
host = "good.reachd.test"
port = %d

[[target]]
vendor = "acme"
region = "jp"
name = "rogue"
host = "rogue.reachd.test"
port = %d

[[target]]
vendor = "acme"
region = "jp"
name = "status"
host = "good.reachd.test"
port = %d
http = { expect_status = [204] }
`, srv.Addr, caFile, good.Port, good.Port, good.Port, closed, foreign.Port, good.Port)
	return s
}

var wantOutcome = map[string][2]string{ // target -> stage, reason
	"good":     {"", ""},
	"missing":  {"dns", "dns_nxdomain"},
	"servfail": {"dns", "dns_servfail"},
	"refused":  {"tcp", "tcp_refused"},
	"rogue":    {"tls", "tls_untrusted_ca"},
	"status":   {"http", "http_status_unexpected"},
}

func TestCheckJSON(t *testing.T) {
	s := newScenario(t)
	file := writeFile(t, s.dir, "reachd.toml", s.config)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code, out, stderr := runReachd(t, ctx, nil, "check", "--config.file", file, "--format", "json")
	if code != 1 {
		t.Fatalf("exit %d, want 1 (some probes fail)\n%s", code, stderr)
	}
	var doc struct {
		Site    string           `json:"site"`
		Started time.Time        `json:"started"`
		Results []map[string]any `json:"results"`
		DNS     []any            `json:"dns"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("not the JSON of DESIGN §8: %v\n%s", err, out)
	}
	if doc.Site != "e2e-site" || time.Since(doc.Started) > time.Minute || doc.DNS == nil {
		t.Errorf("header: site %q started %v dns %v", doc.Site, doc.Started, doc.DNS)
	}
	if len(doc.Results) != len(wantOutcome) {
		t.Fatalf("%d results, want %d", len(doc.Results), len(wantOutcome))
	}
	for _, r := range doc.Results {
		name := r["target"].(string)
		want := wantOutcome[name]
		for _, key := range []string{"vendor", "region", "target", "host", "port", "path", "success", "stage", "reason", "detail", "hint", "duration_seconds", "stages", "tls", "http"} {
			if _, ok := r[key]; !ok {
				t.Errorf("%s: key %q missing", name, key)
			}
		}
		if _, ok := r["port"].(float64); !ok {
			t.Errorf("%s: port is %T, want a number", name, r["port"])
		}
		if r["stage"] != want[0] || r["reason"] != want[1] || r["success"] != (want[1] == "") {
			t.Errorf("%s: stage %v reason %v success %v, want %v", name, r["stage"], r["reason"], r["success"], want)
		}
		if want[1] != "" && (r["hint"] == "" || r["detail"] == "") {
			t.Errorf("%s: a failure needs a hint and a detail: %v", name, r)
		}
	}
	good := doc.Results[0]
	tl := good["tls"].(map[string]any)
	if tl["version"] != "1.3" || tl["issuer"] != "E2E Root CA" || tl["intercepted"] != false {
		t.Errorf("good tls %v", tl)
	}
	if _, err := time.Parse(time.RFC3339, tl["not_after"].(string)); err != nil {
		t.Errorf("not_after %v: %v", tl["not_after"], err)
	}
	if va := tl["versions_accepted"].(map[string]any); va["1.3"] != true || va["1.0"] != false {
		t.Errorf("versions_accepted %v", va)
	}
	if h := good["http"].(map[string]any); h["status"] != 200.0 {
		t.Errorf("good http %v", h)
	}
	if !strings.Contains(doc.Results[4]["detail"].(string), "Rogue Inspection CA") {
		t.Errorf("untrusted CA detail does not name the issuer: %v", doc.Results[4]["detail"])
	}

	// The text report names the failing stage, reason, detail and hint.
	code, text, _ := runReachd(t, ctx, nil, "check", "--config.file", file, "--target", "rogue")
	if err := contains(text, "FAIL", "failed at tls: tls_untrusted_ca", "detail:", "hint:", "1 probes: 0 passed, 1 failed"); code != 1 || err != nil {
		t.Errorf("text report (exit %d): %v\n%s", code, err, text)
	}
}

func TestDaemonMetricsReloadAndShutdown(t *testing.T) {
	promtool := requireTool(t, "promtool", "prometheus")
	s := newScenario(t)
	file := writeFile(t, s.dir, "reachd.toml", s.config)
	d := startDaemon(t, "--config.file", file, "--web.enable-lifecycle")

	// Every probe reports within min(interval, 10s) of the start.
	metrics := d.waitFor(t, "/metrics", func(code int, body string) bool {
		return code == 200 && strings.Count(body, "reachd_probe_success{") == len(wantOutcome)
	})
	for name, want := range wantOutcome {
		success := regexp.MustCompile(`reachd_probe_success\{[^}]*target="` + name + `"[^}]*\} (\d)`).FindStringSubmatch(metrics)
		if success == nil || success[1] != map[bool]string{true: "1", false: "0"}[want[1] == ""] {
			t.Errorf("%s: reachd_probe_success %v, want %v", name, success, want[1] == "")
		}
		if want[1] == "" {
			continue
		}
		if !strings.Contains(metrics, fmt.Sprintf(`reason="%s"`, want[1])) {
			t.Errorf("%s: no failure_reason series for %s", name, want[1])
		}
	}
	if err := contains(metrics, `reachd_site_info{site="e2e-site"} 1`, "reachd_config_last_reload_successful 1", "reachd_build_info{", "reachd_scheduler_delay_seconds_bucket", "reachd_probe_stage_last_duration_seconds{", `reachd_tls_issuer_info{`, `issuer="E2E Root CA"`); err != nil {
		t.Error(err)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(metrics)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}

	// The status page and the JSON API show the same results.
	if code, page, _ := d.get("/"); code != 200 || contains(page, "e2e-site", "tls_untrusted_ca", "dns_nxdomain") != nil {
		t.Errorf("status page %d lacks the site or reasons", code)
	}
	if code, body, _ := d.get("/api/v1/results"); code != 200 || !strings.Contains(body, `"reason": "tcp_refused"`) {
		t.Errorf("/api/v1/results %d", code)
	}

	// A bad reload keeps the running config and says so.
	writeFile(t, s.dir, "reachd.toml", s.config+"colour = \"red\"\n")
	resp, err := http.Post(d.base+"/-/reload", "", nil)
	if err != nil || resp.StatusCode != 500 {
		t.Fatalf("bad reload: %v %v", resp, err)
	}
	resp.Body.Close()
	metrics = d.waitFor(t, "/metrics", func(_ int, body string) bool {
		return strings.Contains(body, "reachd_config_last_reload_successful 0")
	})
	if n := strings.Count(metrics, "reachd_probe_success{"); n != len(wantOutcome) {
		t.Errorf("after a bad reload %d probes, want the old %d", n, len(wantOutcome))
	}

	// SIGHUP with a target removed: its series vanish, the others stay.
	without := strings.Replace(s.config, "name = \"servfail\"", "name = \"servfail-renamed\"", 1)
	writeFile(t, s.dir, "reachd.toml", without)
	d.cmd.Process.Signal(syscall.SIGHUP)
	metrics = d.waitFor(t, "/metrics", func(_ int, body string) bool {
		return strings.Contains(body, "reachd_config_last_reload_successful 1") && !strings.Contains(body, `target="servfail"`)
	})
	if !strings.Contains(metrics, `target="good"`) {
		t.Error("an unchanged target lost its series on reload")
	}

	if code := d.stop(t); code != 0 {
		t.Errorf("exit %d after SIGTERM, want 0", code)
	}
	if strings.Count(d.stderr.String(), `msg="probe down"`) < len(wantOutcome)-1 {
		t.Errorf("state changes not logged:\n%s", d.stderr)
	}
}

// TestDefaultConfigIsolated runs the embedded default, which points at the
// real vendor hosts, inside a network namespace with nothing but its own
// loopback: every probe must fail at dns, quickly, without a hang or panic.
func TestDefaultConfigIsolated(t *testing.T) {
	unshare := requireTool(t, "unshare", "util-linux")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code, out, stderr := runReachd(t, ctx, []string{unshare, "-rn"}, "check", "--format", "json")
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, stderr)
	}
	if strings.Contains(stderr, "panic") {
		t.Fatalf("panicked:\n%s", stderr)
	}
	var doc struct {
		Results []struct {
			Target, Stage, Reason string
			Success               bool
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Results) == 0 {
		t.Fatal("the default config probed nothing")
	}
	for _, r := range doc.Results {
		if r.Success || r.Stage != "dns" || !strings.HasPrefix(r.Reason, "dns_") {
			t.Errorf("%s: success %v stage %q reason %q, want a dns failure", r.Target, r.Success, r.Stage, r.Reason)
		}
	}
	t.Logf("%d probes of the embedded default failed at dns inside the namespace", len(doc.Results))
}
