package main

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/reachd/reachd/probe"
	"github.com/reachd/reachd/probe/trace"
	"github.com/reachd/reachd/targets"
)

func extrasResults() []*probe.Result {
	down := &targets.Target{Vendor: "acme", Region: "jp", Name: "api", Host: "api.reachd.test", Port: 443}
	up := &targets.Target{Vendor: "acme", Region: "jp", Name: "cdn", Host: "cdn.reachd.test", Port: 443}
	return []*probe.Result{
		{Target: down, Path: "direct", Start: reportStart, Duration: time.Second,
			Err: &probe.Error{Stage: probe.StageTCP, Reason: probe.TCPTimeout, Err: errors.New("dial tcp 10.210.4.2:443: i/o timeout")},
			Trace: &probe.TraceInfo{Target: netip.MustParseAddrPort("10.210.4.2:443"), Verdict: "rejected by hop 3 (10.210.3.2) with admin prohibited",
				Hops: []trace.Hop{
					{TTL: 1, Addr: netip.MustParseAddr("10.210.1.1"), RTT: time.Millisecond, ICMP: "time exceeded"},
					{TTL: 2, Addr: netip.MustParseAddr("10.210.2.2"), RTT: time.Millisecond, ICMP: "time exceeded"},
					{TTL: 3, Addr: netip.MustParseAddr("10.210.3.2"), RTT: time.Millisecond, ICMP: "time exceeded"},
					{TTL: 4, Addr: netip.MustParseAddr("10.210.3.2"), RTT: time.Millisecond, ICMP: "admin prohibited"},
				}}},
		{Target: up, Path: "corp", Start: reportStart, Duration: time.Second,
			Revocation: []probe.RevocationCheck{
				{Kind: probe.RevocationOCSP, URL: "http://ocsp.reachd.test", Reachable: true, Status: 400},
				{Kind: probe.RevocationCRL, URL: "http://crl.reachd.test/ca.crl", Detail: "proxy_denied: the proxy answered 403"},
			}},
	}
}

// TestReportExtras: `reachd check` text and markdown show the path trace
// of a failing probe and the revocation URLs that did not answer.
func TestReportExtras(t *testing.T) {
	var text, md bytes.Buffer
	writeText(&text, reportMeta{Site: "s", Started: reportStart}, extrasResults(), false)
	writeMarkdown(&md, reportMeta{Site: "s", Started: reportStart}, extrasResults())
	for _, want := range []string{
		"trace: rejected by hop 3 (10.210.3.2) with admin prohibited (to 10.210.4.2:443)",
		"  4 10.210.3.2 1ms admin prohibited",
		"revocation: crl http://crl.reachd.test/ca.crl unreachable: proxy_denied: the proxy answered 403",
	} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}
	for _, want := range []string{
		"- **path trace** to `10.210.4.2:443`: rejected by hop 3 (10.210.3.2) with admin prohibited",
		"### Revocation and issuer URLs\n\n2 checked, 1 unreachable.",
		"| acme/jp/cdn | corp | crl | `http://crl.reachd.test/ca.crl` | proxy_denied: the proxy answered 403 |",
	} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md.String())
		}
	}
}
