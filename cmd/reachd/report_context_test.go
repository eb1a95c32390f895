package main

import (
	"bytes"
	"crypto/tls"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/reachd/reachd/configs"
	"github.com/reachd/reachd/probe"
)

// The context a vendor's support asks for: every path's proxy (redacted)
// and how it was chosen, every resolver's servers, the config file and
// its warnings.
func TestReportContext(t *testing.T) {
	proxy, _ := url.Parse("http://proxy.corp.example:8080")
	cfg := &configs.Config{
		Paths: []configs.Path{
			{Name: "direct"},
			{Name: "corp", Proxy: proxy, Username: "svc", Password: "hunter2"},
			{Name: "env", Environment: true, ProxyEnv: configs.ProxyEnv{HTTPSProxy: "http://u:hunter2@127.0.0.1:3128", NoProxy: "corp.example"}},
			{Name: "env-unset", Environment: true},
		},
		Resolvers: []configs.Resolver{{Name: "corp", Servers: []string{"10.1.1.53:53", "10.1.1.54:53"}, Protocol: "udp"}},
		Warnings:  []string{"reachd.toml:9: path \"env-unset\": no proxy variable"},
	}
	m := checkOptions{configFile: "/etc/reachd/reachd.toml"}.meta("osaka", reportStart, cfg)
	var text, md bytes.Buffer
	writeText(&text, m, reportResults(), false)
	writeMarkdown(&md, m, reportResults())
	for _, want := range []string{
		"config: /etc/reachd/reachd.toml\n",
		"path direct: none (direct)\n",
		"path corp: http://proxy.corp.example:8080 (configured, authenticating as svc)\n",
		"path env: http://u:xxxxx@127.0.0.1:3128 (HTTPS_PROXY from the environment at load; NO_PROXY corp.example)\n",
		"path env-unset: none (proxy = \"environment\", but no proxy variable was set: direct)\n",
		"resolver corp: 10.1.1.53:53, 10.1.1.54:53 (udp)\n",
		"warning: reachd.toml:9: path \"env-unset\": no proxy variable\n",
	} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}
	for _, want := range []string{
		"| config | /etc/reachd/reachd.toml |\n",
		"| path corp | http://proxy.corp.example:8080 (configured, authenticating as svc) |\n",
		"| resolver corp | 10.1.1.53:53, 10.1.1.54:53 (udp) |\n",
		"| warning | reachd.toml:9: path \"env-unset\": no proxy variable |\n",
	} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md.String())
		}
	}
	for name, out := range map[string]string{"text": text.String(), "markdown": md.String()} {
		if strings.Contains(out, "hunter2") {
			t.Errorf("%s reveals a password:\n%s", name, out)
		}
	}
}

// --failed lists only failing probes; the summary still counts every one.
func TestReportFailedOnly(t *testing.T) {
	m := reportMetaFixture
	m.FailedOnly = true
	var text, md bytes.Buffer
	writeText(&text, m, reportResults(), false)
	writeMarkdown(&md, m, reportResults())
	for name, out := range map[string]string{"text": text.String(), "markdown": md.String()} {
		if strings.Contains(out, "ingest") || strings.Contains(out, "OK    direct") {
			t.Errorf("%s shows passing probes:\n%s", name, out)
		}
		if !strings.Contains(out, "3 failed") || !strings.Contains(out, "telemetry") {
			t.Errorf("%s lacks the failures or the full count:\n%s", name, out)
		}
	}
	text.Reset()
	writeText(&text, m, reportResults()[:1], false)
	if !strings.Contains(text.String(), "nothing failed") || !strings.Contains(text.String(), "1 probes: 1 passed, 0 failed") {
		t.Errorf("all passed with --failed:\n%s", text.String())
	}
}

// Passing rows carry their HTTP status and an expiry within 30 days; a
// version the sweep could not decide is "?", never a failure.
func TestReportFacts(t *testing.T) {
	plain := passed(reportTargetOf("acme", "jp", "crl"), "direct")
	plain.TLS = nil
	plain.HTTP = &probe.HTTPInfo{Status: 404}
	soon := passed(reportTargetOf("acme", "jp", "api"), "direct")
	soon.TLS.NotAfter = reportStart.Add(9*24*time.Hour + time.Hour)
	later := passed(reportTargetOf("acme", "jp", "later"), "direct")
	later.TLS.NotAfter = reportStart.Add(90 * 24 * time.Hour)
	swept := failedAt(reportTargetOf("acme", "jp", "old"), "direct", probe.TLSVersionUnsupported, "no common version")
	swept.TLS = &probe.TLSInfo{Accepted: map[uint16]bool{tls.VersionTLS10: false, tls.VersionTLS12: true}}
	results := []*probe.Result{plain, soon, later, swept}
	var text, md bytes.Buffer
	writeText(&text, reportMetaFixture, results, false)
	writeMarkdown(&md, reportMetaFixture, results)
	for _, want := range []string{"passed: dns tcp tls, HTTP 404", "tls: versions accepted: 1.0 no, 1.1 ?, 1.2 yes, 1.3 ?\n", `issuer "Public Root R1", HTTP 200 — certificate expires 2026-12-01 (in 9 days)`} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}
	for _, want := range []string{"| crl | `crl.reachd.test:443` | direct | OK, 41ms, HTTP 404 |", "HTTP 200, **certificate expires 2026-12-01 (in 9 days)** |",
		"versions accepted: 1.0 no, 1.1 ?, 1.2 yes, 1.3 ?"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md.String())
		}
	}
	if strings.Contains(text.String()+md.String(), "2027-02") {
		t.Error("a certificate 90 days from expiry is reported")
	}
}

// Markdown stays plain for a ticket system: no emoji, no backslash before
// an underscore inside a word; the chat format marks rows with emoji.
func TestMarkdownPlainAndChat(t *testing.T) {
	var md, chat bytes.Buffer
	writeMarkdown(&md, reportMetaFixture, reportResults())
	m := reportMetaFixture
	m.Emoji = true
	writeMarkdown(&chat, m, reportResults())
	if strings.ContainsAny(md.String(), "✅❌") {
		t.Errorf("markdown has emoji:\n%s", md.String())
	}
	if strings.Contains(md.String(), `\_`) {
		t.Errorf("markdown escapes underscores:\n%s", md.String())
	}
	if !strings.Contains(chat.String(), "| ❌ proxy: `proxy_auth_required` |") || !strings.Contains(chat.String(), "| ✅ OK, 41ms, TLS 1.3, HTTP 200 |") {
		t.Errorf("chat lacks emoji:\n%s", chat.String())
	}
	if got := mdText("_start and snake_case and end_ *x*"); got != `\_start and snake_case and end\_ \*x\*` {
		t.Errorf("mdText = %q", got)
	}
}
