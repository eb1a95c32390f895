package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reachd/reachd/probe"
	"github.com/reachd/reachd/targets"
)

var reportStart = time.Date(2026, 11, 22, 6, 0, 0, 0, time.UTC)

func reportTargetOf(vendor, region, name string) *targets.Target {
	return &targets.Target{Vendor: vendor, Region: region, Name: name, Host: name + ".reachd.test", Port: 443}
}

func passed(t *targets.Target, path string) *probe.Result {
	return &probe.Result{Target: t, Path: path, Start: reportStart, Duration: 41 * time.Millisecond,
		Stages: []probe.StageResult{{Stage: probe.StageDNS, Success: true}, {Stage: probe.StageTCP, Success: true}, {Stage: probe.StageTLS, Success: true}},
		TLS:    &probe.TLSInfo{Version: 0x0304, Cipher: "TLS_AES_128_GCM_SHA256", Issuer: "Public Root R1"},
		HTTP:   &probe.HTTPInfo{Status: 200}}
}

func failedAt(t *targets.Target, path string, reason probe.Reason, detail string) *probe.Result {
	return &probe.Result{Target: t, Path: path, Start: reportStart, Duration: 3 * time.Millisecond,
		Err:    &probe.Error{Stage: reason.Stage(), Reason: reason, Err: errors.New(detail)},
		Stages: []probe.StageResult{{Stage: reason.Stage(), Duration: 3 * time.Millisecond}}}
}

// reportResults: two vendors, in config order globex before acme; acme's
// targets over two paths, with the proxy refusing all of them.
func reportResults() []*probe.Result {
	api, tel, ing := reportTargetOf("acme", "jp", "api"), reportTargetOf("acme", "jp", "telemetry"), reportTargetOf("globex", "eu", "ingest")
	return []*probe.Result{
		passed(ing, "direct"),
		failedAt(tel, "direct", probe.DNSNXDomain, "NXDOMAIN from 127.0.0.1:53"),
		failedAt(tel, "corp-proxy", probe.ProxyAuthRequired, "proxy 127.0.0.1:3128 answered 407"),
		passed(api, "direct"),
		failedAt(api, "corp-proxy", probe.ProxyAuthRequired, "proxy 127.0.0.1:3128 answered 407"),
	}
}

var reportMetaFixture = reportMeta{Site: "osaka-branch", Started: reportStart, Version: "1.2.3 (go1.26)", Config: "/etc/reachd/reachd.toml", Filters: "--vendor acme"}

func TestTextReport(t *testing.T) {
	var buf bytes.Buffer
	writeText(&buf, reportMetaFixture, reportResults(), false)
	out := buf.String()
	want := `reachd check · site osaka-branch · 2026-11-22T06:00:00Z · reachd 1.2.3 (go1.26)
config: /etc/reachd/reachd.toml
filters: --vendor acme

acme/jp  3 of 4 failed
  api        api.reachd.test:443
    OK    direct         41ms  TLS 1.3 TLS_AES_128_GCM_SHA256, issuer "Public Root R1", HTTP 200
    FAIL  corp-proxy      3ms  failed at proxy: proxy_auth_required
                               detail: proxy 127.0.0.1:3128 answered 407
  telemetry  telemetry.reachd.test:443
    FAIL  direct          3ms  failed at dns: dns_nxdomain
                               detail: NXDOMAIN from 127.0.0.1:53
    FAIL  corp-proxy      3ms  failed at proxy: proxy_auth_required
                               detail: proxy 127.0.0.1:3128 answered 407

globex/eu  all passed
  ingest     ingest.reachd.test:443
    OK    direct         41ms  TLS 1.3 TLS_AES_128_GCM_SHA256, issuer "Public Root R1", HTTP 200

5 probes: 2 passed, 3 failed
  by path: direct 2/3 passed · corp-proxy 0/2 passed
     2  proxy_auth_required (proxy)
        probes: acme/jp/telemetry via corp-proxy, acme/jp/api via corp-proxy
`
	if !strings.HasPrefix(out, want) {
		t.Errorf("text report:\n%s\nwant it to start with:\n%s", out, want)
	}
	// Each distinct hint once, under its reason, however many probes share it.
	if n := strings.Count(out, "hint: "); n != 2 {
		t.Errorf("%d hints, want one per distinct reason (2):\n%s", n, out)
	}
	if strings.Contains(out, "\x1b[") {
		t.Error("colour codes without a terminal")
	}

	buf.Reset()
	writeText(&buf, reportMetaFixture, reportResults(), true)
	if out := buf.String(); !strings.Contains(out, "\x1b[1;31mFAIL\x1b[0m") || !strings.Contains(out, "\x1b[32mOK  \x1b[0m") {
		t.Errorf("no colour on a terminal:\n%q", out)
	}
}

func TestTextReportManyFailures(t *testing.T) {
	var results []*probe.Result
	for i := range 50 {
		results = append(results, failedAt(reportTargetOf("acme", "jp", fmt.Sprintf("t%02d", i)), "corp-proxy", probe.ProxyAuthRequired, "proxy answered 407"))
	}
	var buf bytes.Buffer
	writeText(&buf, reportMeta{Site: "s", Started: reportStart}, results, false)
	out := buf.String()
	if n := strings.Count(out, probe.ProxyAuthRequired.Hint()[:40]); n != 1 {
		t.Errorf("the hint is printed %d times for 50 failures, want once", n)
	}
	if !strings.Contains(out, "50 probes: 0 passed, 50 failed") || !strings.Contains(out, "    50  proxy_auth_required (proxy)") {
		t.Errorf("summary:\n%s", out[strings.LastIndex(out, "\n\n"):])
	}
}

func TestMarkdownReport(t *testing.T) {
	results := reportResults()
	results[2].Err.Err = errors.New("proxy said ```no``` | twice\nand <b>closed</b>") // backticks, a pipe, a newline, markup
	results[0].TLS.Intercepted = true
	var buf bytes.Buffer
	writeMarkdown(&buf, reportMetaFixture, results)
	out := buf.String()
	for _, want := range []string{
		"## reachd check: 3 of 5 probes failed at site osaka-branch\n",
		"| time (UTC) | 2026-11-22T06:00:00Z |\n",
		"| reachd | 1.2.3 (go1.26) |\n",
		"| filters | --vendor acme |\n",
		"| failures | 2 × `proxy_auth_required` (acme/jp/telemetry via corp-proxy, acme/jp/api via corp-proxy), 1 × `dns_nxdomain` (acme/jp/telemetry via direct) |\n",
		"| vendor/region | target | host:port | path | result |\n|---|---|---|---|---|\n",
		"| acme/jp | api | `api.reachd.test:443` | corp-proxy | FAIL proxy: `proxy_auth_required` |\n",
		"| globex/eu | ingest | `ingest.reachd.test:443` | direct | OK, 41ms, TLS 1.3, **intercepted** (issuer Public Root R1), HTTP 200 |\n",
		"#### acme/jp/telemetry via direct: `dns_nxdomain`\n",
		"- **stage:** dns — dns failed (3ms)\n",
		"- **hint:** " + probe.DNSNXDomain.Hint(),
		"- **detail:**\n\n  ````text\n  proxy said ```no``` | twice\n  and <b>closed</b>\n  ````\n", // a fence longer than any backtick run
	} {
		if !strings.Contains(out, want) {
			t.Errorf("markdown lacks %q:\n%s", want, out)
		}
	}
	if got := strings.Count(out, "\n#### "); got != 3 {
		t.Errorf("%d failure sections, want 3", got)
	}

	buf.Reset()
	writeMarkdown(&buf, reportMeta{Site: "s|<x>", Started: reportStart}, reportResults()[:1])
	if out := buf.String(); !strings.Contains(out, "| filters | none: every configured probe |") || strings.Contains(out, "### Failures") ||
		!strings.Contains(out, `| site | s\|<x> |`) || !strings.Contains(out, `at site s\|\<x\>`) {
		t.Errorf("all passed:\n%s", out)
	}
}

func TestMarkdownFlagsAndRedaction(t *testing.T) {
	o := checkOptions{host: "api.example:8443", proxy: "http://user:secret@proxy.corp:3128", resolver: "127.0.0.1:53"}
	m := o.meta("site", reportStart)
	if strings.Contains(m.Filters, "secret") || !strings.Contains(m.Filters, "--host api.example:8443 --proxy http://user:xxxxx@proxy.corp:3128 --resolver 127.0.0.1:53") {
		t.Errorf("filters %q", m.Filters)
	}
	if m := (checkOptions{vendor: "acme", path: "direct"}).meta("s", reportStart); m.Filters != "--vendor acme --path direct" || m.Config != "the embedded default" {
		t.Errorf("filters %q config %q", m.Filters, m.Config)
	}
}

func TestProgress(t *testing.T) {
	var buf bytes.Buffer
	p := newProgress(&buf, 3) // not a terminal: silent
	p.done()
	p.clear()
	if buf.Len() != 0 {
		t.Errorf("progress on a non-terminal: %q", buf.String())
	}
	p = &progress{w: &buf, total: 2}
	p.show()
	p.done()
	p.done()
	p.clear()
	if got, want := buf.String(), "\rprobing 0/2 …\rprobing 1/2 …\rprobing 2/2 …\r\x1b[K"; got != want {
		t.Errorf("progress %q, want %q", got, want)
	}
}

func TestIsTerminal(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if isTerminal(f) || isTerminal(w) || isTerminal(&bytes.Buffer{}) {
		t.Error("a file, a pipe or a buffer taken for a terminal")
	}
	if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil { // only with a controlling terminal
		defer tty.Close()
		if !isTerminal(tty) {
			t.Error("/dev/tty is not a terminal")
		}
		t.Setenv("NO_COLOR", "1")
		if colorFor(tty) {
			t.Error("NO_COLOR is not honoured")
		}
	}
}
