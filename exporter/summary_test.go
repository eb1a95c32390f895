package exporter

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/reachd/reachd/probe"
	"github.com/reachd/reachd/targets"
)

// view is a synthetic probe for the summary: up when reason is empty.
func view(tg *targets.Target, path string, reason probe.Reason, detail string) probeView {
	if reason == "" {
		r := upResult(tg, path, t0)
		return probeView{Target: tg, Path: path, State: stateUp, Last: &r, Since: t0}
	}
	r := downResult(tg, path, t0, reason, detail)
	return probeView{Target: tg, Path: path, State: stateDown, Last: &r, Since: t0.Add(-time.Hour)}
}

func causeLines(cs []pageCause) []string {
	var out []string
	for _, c := range cs {
		out = append(out, fmt.Sprintf("%d %s | %s | %d details", c.Probes, c.Text, c.Detail, c.Details))
	}
	return out
}

// TestSummaryOneCause: 28 probes failing with one cause read as one line
// that names it, not as 28 cells.
func TestSummaryOneCause(t *testing.T) {
	var ps []probeView
	for i := range 28 {
		tg := pageTarget("trendmicro-visionone", "jp", fmt.Sprintf("t%02d", i), "direct", "corp-proxy")
		// The local port differs per run; the resolver is the same.
		ps = append(ps, view(tg, "direct", probe.DNSError, fmt.Sprintf("read udp 10.0.0.5:%d->10.1.1.53:53: read: connection refused", 40000+i)),
			view(tg, "corp-proxy", "", ""))
	}
	s := summarize(ps, loaded, nil, t0)
	want := []string{"28 all 28 probes on direct fail at dns with dns_error: resolver 10.1.1.53:53 unreachable | read udp 10.1.1.53:53: read: connection refused | 1 details"}
	if got := causeLines(s.Causes); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("causes\n%q\nwant\n%q", got, want)
	}
	c := s.Causes[0]
	if len(c.Targets) != causeTargets || c.More != 28-causeTargets || c.Link != "./?path=direct&reason=dns_error&state=down" || c.Hint != probe.DNSError.Hint() {
		t.Errorf("targets %v, more %d, link %q, hint %q", c.Targets, c.More, c.Link, c.Hint)
	}
	if !strings.HasPrefix(c.Since, "2026-11-22 05:00 UTC (1 h ago)") {
		t.Errorf("since %q", c.Since)
	}
	if len(s.Verdicts) != 1 || s.Verdicts[0].Text != "reachable on corp-proxy only" || s.Verdicts[0].Level != "partial" || len(s.Ready) != 0 {
		t.Errorf("verdicts %+v, ready %+v", s.Verdicts, s.Ready)
	}
}

// TestSummarySeveralCauses: causes by path and reason, worst first; a
// cause whose details differ says so; a host in a detail is generalised.
func TestSummarySeveralCauses(t *testing.T) {
	var ps []probeView
	for i := range 5 {
		tg := pageTarget("acme", "jp", fmt.Sprintf("p%d", i), "direct", "corp-proxy")
		ps = append(ps, view(tg, "corp-proxy", probe.ProxyAuthRequired, "proxy http://proxy.corp.example:8080 demands credentials (407; offers Basic) and the path has none"),
			view(tg, "direct", "", ""))
	}
	for i := range 2 {
		tg := pageTarget("globex", "eu", fmt.Sprintf("n%d", i), "direct")
		ps = append(ps, view(tg, "direct", probe.DNSNXDomain, "10.1.1.53:53 answered NXDOMAIN for "+tg.Host+"."))
	}
	rogue := pageTarget("globex", "eu", "rogue", "direct")
	mitm := pageTarget("globex", "eu", "mitm", "direct")
	ps = append(ps, view(rogue, "direct", probe.TLSUntrustedCA, `the chain ends in "Rogue CA"`),
		view(mitm, "direct", probe.TLSUntrustedCA, `the chain ends in "Other CA"`),
		view(pageTarget("globex", "eu", "ok", "direct"), "direct", "", ""))
	s := summarize(ps, loaded, nil, t0)
	want := []string{
		"5 all 5 probes on corp-proxy fail at proxy with proxy_auth_required | proxy http://proxy.corp.example:8080 demands credentials (407; offers Basic) and the path has none | 1 details",
		"2 2 of 10 probes on direct fail at dns with dns_nxdomain: resolver 10.1.1.53:53 answers NXDOMAIN | 10.1.1.53:53 answered NXDOMAIN for <host> | 1 details",
		"2 2 of 10 probes on direct fail at tls with tls_untrusted_ca |  | 2 details",
	}
	if got := causeLines(s.Causes); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("causes\n%q\nwant\n%q", got, want)
	}
	var vs []string
	for _, v := range append(s.Verdicts, s.Ready...) {
		vs = append(vs, v.ID+": "+v.Level+" "+v.Text)
	}
	if want := "[globex/eu: bad not fully reachable on any path acme/jp: partial reachable on direct only]"; fmt.Sprint(vs) != want {
		t.Errorf("verdicts %v, want %s", vs, want)
	}
}

// TestSummaryNone: nothing fails, nothing to warn about.
func TestSummaryNone(t *testing.T) {
	var ps []probeView
	for i := range 3 {
		tg := pageTarget("acme", "jp", fmt.Sprintf("t%d", i), "direct", "corp-proxy")
		ps = append(ps, view(tg, "direct", "", ""), view(tg, "corp-proxy", "", ""))
	}
	fresh := pageTarget("globex", "eu", "fresh", "direct")
	ps = append(ps, probeView{Target: fresh, Path: "direct", State: statePending})
	s := summarize(ps, loaded, nil, t0)
	if len(s.Causes) != 0 || len(s.Warnings) != 0 {
		t.Errorf("causes %v, warnings %v", s.Causes, s.Warnings)
	}
	if len(s.Ready) != 1 || s.Ready[0].Text != "reachable on every path" || len(s.Verdicts) != 1 || s.Verdicts[0].Level != "pending" {
		t.Errorf("ready %+v, verdicts %+v", s.Ready, s.Verdicts)
	}
	if s := summarize(nil, loaded, nil, t0); len(s.Causes)+len(s.Verdicts)+len(s.Ready)+len(s.Warnings) != 0 {
		t.Errorf("an empty site has a summary: %+v", s)
	}
}

// TestSummaryWarnings: a failed reload, config warnings, a certificate
// that expires soon, a resolver that fails, an intercepted path.
func TestSummaryWarnings(t *testing.T) {
	soon := pageTarget("acme", "jp", "soon", "direct", "inspect-proxy")
	later := pageTarget("acme", "jp", "later", "direct")
	up := view(soon, "direct", "", "")
	up.Last.TLS.NotAfter = t0.Add(5*24*time.Hour + time.Hour)
	up.Last.DNS = []probe.DNSResult{{Resolver: "corp", QType: "A", Success: true, Rcode: "NOERROR"},
		{Resolver: "branch", QType: "A", Rcode: "SERVFAIL", Reason: probe.DNSServFail}, {Resolver: "branch", QType: "AAAA", Rcode: "SERVFAIL", Reason: probe.DNSServFail},
		{Resolver: "system", QType: "A", Success: true, Rcode: "NOERROR", Source: "hosts", Warning: "the hosts file /etc/hosts pins soon.reachd.test to 10.1.2.3, but DNS answers 10.1.2.4: a stale pin?"}}
	inspected := view(soon, "inspect-proxy", "", "")
	inspected.Last.TLS.Intercepted, inspected.Last.TLS.Issuer = true, "Corp Inspection CA"
	far := view(later, "direct", "", "")     // 80 days: no warning
	far.Runs, far.Up, far.Changes = 10, 6, 4 // failed 4 of its last 10 runs, each time alone
	far.Last.DNS = []probe.DNSResult{{Resolver: "corp", QType: "A", Success: true, Rcode: "NOERROR"},
		{Resolver: "branch", QType: "A", Success: false, Rcode: "NXDOMAIN", Reason: probe.DNSNXDomain}} // the name's fault, not the resolver's
	st := StateView{Site: "s", ReloadOK: false, ReloadErr: "reachd.toml:12: unknown key \"prxy\""}
	s := summarize([]probeView{up, inspected, far}, st, []string{"path env-proxy: environment path with no proxy set (HTTPS_PROXY, HTTP_PROXY are empty): it probes direct"}, t0)
	var got []string
	for _, w := range s.Warnings {
		got = append(got, fmt.Sprintf("%s %v: %s", w.Kind, w.Bad, w.Text))
	}
	want := []string{
		`reload true: the last config reload failed, the previous config keeps running: reachd.toml:12: unknown key "prxy"`,
		"config false: path env-proxy: environment path with no proxy set (HTTPS_PROXY, HTTP_PROXY are empty): it probes direct",
		"flapping false: acme/jp/later on direct is up now but changed state 4 times in its last 10 runs (60% passed)",
		"certificate true: the certificate of soon.reachd.test expires 2026-11-27 07:00 UTC (in 5 d), seen on direct",
		"resolver false: resolver branch failed 2 of 3 queries: dns_servfail ×2",
		"dns false: the hosts file /etc/hosts pins soon.reachd.test to 10.1.2.3, but DNS answers 10.1.2.4: a stale pin?",
		"intercepted false: path inspect-proxy: 1 of 1 TLS probes are intercepted (issuer Corp Inspection CA): agents must trust that CA, and agents that pin certificates fail",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestSummaryMergesPaths: one target failing with one reason on several
// paths is one cause, not one per path; more than shownCauses causes
// leave the rest for later.
func TestSummaryMergesPaths(t *testing.T) {
	rogue := pageTarget("acme", "jp", "rogue", "direct", "corp-proxy", "dc-proxy")
	ps := []probeView{
		view(rogue, "direct", probe.TLSUntrustedCA, `the chain ends in "Rogue CA"`),
		view(rogue, "corp-proxy", probe.TLSUntrustedCA, `the chain ends in "Rogue CA"`),
		view(rogue, "dc-proxy", "", ""),
	}
	for i := range 7 { // seven more causes, one per reason
		tg := pageTarget("globex", "eu", fmt.Sprintf("t%d", i), "direct")
		ps = append(ps, view(tg, "direct", []probe.Reason{probe.TCPRefused, probe.TCPTimeout, probe.TCPReset, probe.TLSExpired, probe.TLSReset, probe.HTTPBlocked, probe.HTTPTimeout}[i], "x"))
	}
	s := summarize(ps, loaded, nil, t0)
	if s.Failing != 8 || len(s.Causes) != shownCauses || len(s.More) != 8-shownCauses {
		t.Fatalf("%d causes: %d shown, %d more", s.Failing, len(s.Causes), len(s.More))
	}
	c := s.Causes[0]
	if c.Text != "acme/jp/rogue fails at tls with tls_untrusted_ca on 2 paths: corp-proxy and direct" || c.Probes != 2 ||
		c.Detail != `the chain ends in "Rogue CA"` || c.Link != "./?reason=tls_untrusted_ca&state=down" {
		t.Errorf("merged cause %+v", c)
	}
}

// TestSummaryManyFlapping: a site whose every probe flaps gets one
// warning, counted by path, not one per probe.
func TestSummaryManyFlapping(t *testing.T) {
	var ps []probeView
	for i := range 8 {
		tg := pageTarget("acme", "jp", fmt.Sprintf("t%d", i), "direct", "corp-proxy")
		for _, path := range tg.Paths {
			v := view(tg, path, "", "")
			v.Runs, v.Up, v.Changes = 10, 7, 6
			ps = append(ps, v)
		}
	}
	s := summarize(ps, loaded, nil, t0)
	if len(s.Warnings) != 1 || s.Warnings[0].Text != "16 probes changed state more than 2 times in their kept runs (direct 8, corp-proxy 8): their rows carry a flapping tag" {
		t.Errorf("warnings %+v", s.Warnings)
	}
}
