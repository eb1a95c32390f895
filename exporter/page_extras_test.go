package exporter

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/reachd/reachd/probe"
	"github.com/reachd/reachd/targets"
)

// TestTraceAndRevocationShown: the expanded row shows a failing probe's
// path trace (verdict and hops) and a passing one's revocation URLs with
// their verdicts, escaped; the JSON report carries both.
func TestTraceAndRevocationShown(t *testing.T) {
	down := &targets.Target{Vendor: "acme", Region: "jp", Name: "api", Host: "api.reachd.test", Port: 443, Paths: []string{"direct"}}
	up := &targets.Target{Vendor: "acme", Region: "jp", Name: "cdn", Host: "cdn.reachd.test", Port: 443, Paths: []string{"direct"}}
	s := NewStore()
	pd, pu := pageProbe{down, "direct"}, pageProbe{up, "direct"}
	Sync(s, []pageProbe{pd, pu})
	rd := downResult(down, "direct", t0, probe.TCPTimeout, "dial tcp 10.210.4.2:443: i/o timeout")
	rd.Trace = testTrace()
	s.Record(pd.Key(), rd)
	ru := downResult(up, "direct", t0, probe.TCPTimeout, "x")
	ru.Err, ru.Stages = nil, nil
	ru.Revocation = []probe.RevocationCheck{
		{Kind: probe.RevocationOCSP, URL: "http://ocsp.reachd.test", Reachable: true, Status: 400},
		{Kind: probe.RevocationCRL, URL: `http://crl.reachd.test/<b>.crl`, Detail: "proxy_denied: 403 Forbidden"},
	}
	s.Record(pu.Key(), ru)
	page := render(t, s, StateView{Site: "osaka", ReloadOK: true}, "")

	traces := elements(t, page, "dl.trace")
	if len(traces) != 1 {
		t.Fatalf("%d trace panels, want 1", len(traces))
	}
	got := text(traces[0])
	for _, want := range []string{"no answer past hop 2 (10.210.2.2)", "10.210.4.2:443", "1 10.210.1.1 1ms time exceeded", "2 10.210.2.2 2ms time exceeded", "3 *"} {
		if !strings.Contains(got, want) {
			t.Errorf("trace panel %q lacks %q", got, want)
		}
	}
	revs := elements(t, page, "dl.revocation")
	if len(revs) != 1 {
		t.Fatalf("%d revocation panels, want 1", len(revs))
	}
	got = text(revs[0])
	for _, want := range []string{"ocsp", "✓ http://ocsp.reachd.test HTTP 400", "✗ http://crl.reachd.test/<b>.crl", "proxy_denied: 403 Forbidden"} {
		if !strings.Contains(got, want) {
			t.Errorf("revocation panel %q lacks %q", got, want)
		}
	}
	if strings.Contains(page, "<b>.crl") {
		t.Error("a URL reaches the page unescaped")
	}

	b, err := json.Marshal(s.Report("osaka", t0))
	if err != nil {
		t.Fatal(err)
	}
	js := string(b)
	for _, want := range []string{
		`"trace":{"target":"10.210.4.2:443","verdict":"no answer past hop 2 (10.210.2.2)","hops":[{"ttl":1,"addr":"10.210.1.1","rtt_seconds":0.001,"icmp":"time exceeded"}`,
		`{"ttl":3,"addr":"","rtt_seconds":0,"icmp":""}`,
		`"revocation":[{"kind":"ocsp","url":"http://ocsp.reachd.test","reachable":true,"status":400,"detail":""},{"kind":"crl","url":"http://crl.reachd.test/\u003cb\u003e.crl","reachable":false,"status":0,"detail":"proxy_denied: 403 Forbidden"}]`,
	} {
		if !strings.Contains(js, want) {
			t.Errorf("JSON lacks %s:\n%s", want, js)
		}
	}
}
