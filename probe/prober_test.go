package probe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/reachd/reachd/configs"
	"github.com/reachd/reachd/probe/probetest"
	"github.com/reachd/reachd/targets"
)

// lab is a loopback world: a DNS server for *.reachd.test, a CA the
// config trusts as legitimate, and helpers to probe targets in it.
type lab struct {
	t   testing.TB
	dns *probetest.DNSServer
	ca  *probetest.CA
}

func newLab(t testing.TB) *lab {
	t.Helper()
	return &lab{t: t, ca: probetest.NewCA(t, "Lab Root CA"), dns: probetest.NewDNSServer(t, probetest.Records{})}
}

// server starts a TLS server named host, issued by the lab CA unless opts
// say otherwise, and points host at it.
func (l *lab) server(host string, opts ...probetest.TLSOption) *probetest.TLSServer {
	l.t.Helper()
	s := probetest.NewTLSServer(l.t, append([]probetest.TLSOption{probetest.Issuer(l.ca), probetest.Hosts(host)}, opts...)...)
	l.dns.Set(host, probetest.Entry{A: []string{"127.0.0.1"}})
	return s
}

func (l *lab) config(extraTrust ...*x509.Certificate) *configs.Config {
	return &configs.Config{
		Defaults:  configs.Defaults{TLSSweepInterval: time.Hour},
		Resolvers: []configs.Resolver{{Name: "lab", Servers: []string{l.dns.Addr}, Protocol: "udp"}},
		Paths:     []configs.Path{{Name: configs.DirectPath}},
		Trust:     configs.Trust{CACerts: append([]*x509.Certificate{l.ca.Cert}, extraTrust...)},
	}
}

func target(host string, port int, mods ...func(*targets.Target)) targets.Target {
	t := targets.Target{Vendor: "lab", Region: "test", Name: "t", Host: host, Port: port,
		Checks: targets.AllChecks, TLSMinVersion: tls.VersionTLS12, Timeout: 3 * time.Second, Interval: time.Minute,
		HTTP: targets.HTTPCheck{Path: "/"}}
	for _, m := range mods {
		m(&t)
	}
	return t
}

func (l *lab) probe(tg targets.Target, path configs.Path, cfg *configs.Config) Result {
	l.t.Helper()
	return New(tg, path, NewEnv(cfg, "reachd-test")).Probe(context.Background())
}

func closedPort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

func TestProbeDirect(t *testing.T) {
	l := newLab(t)
	good := l.server("ok.reachd.test")
	foreign := probetest.NewCA(t, "Unknown Inspection CA")
	untrusted := l.server("untrusted.reachd.test", probetest.Issuer(foreign))
	mismatch := l.server("mismatch.reachd.test", probetest.Hosts("other.reachd.test"))
	expired := l.server("expired.reachd.test", probetest.Certificate(l.ca.Issue(t, []string{"expired.reachd.test"}, time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))))
	status := l.server("status.reachd.test", probetest.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte("maintenance"))
	})))
	l.dns.Set("servfail.reachd.test", probetest.Entry{Rcode: dns.RcodeServerFailure})
	l.dns.Set("refused.reachd.test", probetest.Entry{Rcode: dns.RcodeRefused})
	l.dns.Set("slow.reachd.test", probetest.Entry{Drop: true})
	l.dns.Set("empty.reachd.test", probetest.Entry{})
	l.dns.Set("closed.reachd.test", probetest.Entry{A: []string{"127.0.0.1"}})

	tests := []struct {
		name   string
		target targets.Target
		stage  Stage
		reason Reason // empty: success
		detail string
	}{
		{"all four stages pass", target("ok.reachd.test", good.Port), "", "", ""},
		{"nxdomain", target("missing.reachd.test", good.Port), StageDNS, DNSNXDomain, "NXDOMAIN"},
		{"servfail", target("servfail.reachd.test", good.Port), StageDNS, DNSServFail, "SERVFAIL"},
		{"refused by resolver", target("refused.reachd.test", good.Port), StageDNS, DNSRefused, "REFUSED"},
		{"dns timeout", target("slow.reachd.test", good.Port, func(t *targets.Target) { t.Timeout = 300 * time.Millisecond }), StageDNS, DNSTimeout, "no answer"},
		{"no records", target("empty.reachd.test", good.Port), StageDNS, DNSNoRecords, "no A or AAAA"},
		{"unexpected address", target("ok.reachd.test", good.Port, func(t *targets.Target) {
			t.ExpectCIDRs = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
		}), StageDNS, DNSUnexpectedAddress, "outside"},
		{"connection refused", target("closed.reachd.test", closedPort(t)), StageTCP, TCPRefused, "refused"},
		{"untrusted CA", target("untrusted.reachd.test", untrusted.Port), StageTLS, TLSUntrustedCA, `"Unknown Inspection CA"`},
		{"hostname mismatch", target("mismatch.reachd.test", mismatch.Port), StageTLS, TLSHostnameMismatch, "other.reachd.test"},
		{"expired", target("expired.reachd.test", expired.Port), StageTLS, TLSExpired, "expired"},
		{"unexpected status", target("status.reachd.test", status.Port, func(t *targets.Target) { t.HTTP.ExpectStatus = []int{200} }), StageHTTP, HTTPStatusUnexpected, "status 503, expected 200"},
		{"a 5xx without expect_status", target("status.reachd.test", status.Port), StageHTTP, HTTPStatusUnexpected, `status "503 Service Unavailable": a server error`},
		{"body mismatch", target("ok.reachd.test", good.Port, func(t *targets.Target) { t.HTTP.ExpectBody = regexp.MustCompile("vendor") }), StageHTTP, HTTPBodyMismatch, "do not match"},
		{"body match", target("ok.reachd.test", good.Port, func(t *targets.Target) { t.HTTP.ExpectBody = regexp.MustCompile("^ok") }), "", "", ""},
		{"dns and tcp only", target("ok.reachd.test", good.Port, func(t *targets.Target) { t.Checks = []string{"dns", "tcp"} }), "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := l.probe(tt.target, configs.Path{Name: "direct"}, l.config())
			assertOutcome(t, r, tt.stage, tt.reason, tt.detail)
		})
	}
}

func assertOutcome(t *testing.T, r Result, stage Stage, reason Reason, detail string) {
	t.Helper()
	if reason == "" {
		if r.Err != nil {
			t.Fatalf("failed: %v", r.Err)
		}
		for _, s := range r.Stages {
			if !s.Success {
				t.Errorf("stage %s not successful in a passing run", s.Stage)
			}
		}
		return
	}
	if r.Err == nil {
		t.Fatalf("succeeded, want %s/%s", stage, reason)
	}
	if r.Err.Stage != stage || r.Err.Reason != reason {
		t.Fatalf("got %s/%s (%v), want %s/%s", r.Err.Stage, r.Err.Reason, r.Err.Err, stage, reason)
	}
	covered.Store(reason, t.Name())
	if !strings.Contains(r.Err.Error(), detail) {
		t.Errorf("detail %q lacks %q", r.Err.Error(), detail)
	}
	if last := r.Stages[len(r.Stages)-1]; last.Stage != stage || last.Success {
		t.Errorf("last stage %+v, want failed %s", last, stage)
	}
}

func TestProbeGoodTargetFacts(t *testing.T) {
	l := newLab(t)
	s := l.server("ok.reachd.test")
	r := l.probe(target("ok.reachd.test", s.Port), configs.Path{Name: "direct"}, l.config())
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	var got []string
	for _, st := range r.Stages {
		got = append(got, string(st.Stage))
	}
	if strings.Join(got, ",") != "dns,tcp,tls,http" {
		t.Errorf("stages %v", got)
	}
	if r.TLS.Version != tls.VersionTLS13 || r.TLS.Issuer != "Lab Root CA" || r.TLS.Intercepted || r.TLS.NotAfter.Before(time.Now()) {
		t.Errorf("tls %+v", r.TLS)
	}
	if r.HTTP.Status != 200 || !r.HTTP.HasDate || r.HTTP.ClockSkew > 2*time.Second || r.HTTP.ClockSkew < -2*time.Second {
		t.Errorf("http %+v", r.HTTP)
	}
}

func TestTLSVersionSweep(t *testing.T) {
	l := newLab(t)
	legacy := l.server("legacy.reachd.test", probetest.TLSVersions(tls.VersionTLS10, tls.VersionTLS11))
	modern := l.server("modern.reachd.test", probetest.TLSVersions(tls.VersionTLS13, tls.VersionTLS13))
	tests := []struct {
		name     string
		port     int
		reason   Reason
		accepted map[uint16]bool
	}{
		{"legacy only", legacy.Port, TLSVersionUnsupported, map[uint16]bool{tls.VersionTLS10: true, tls.VersionTLS11: true, tls.VersionTLS12: false, tls.VersionTLS13: false}},
		{"1.3 only", modern.Port, "", map[uint16]bool{tls.VersionTLS10: false, tls.VersionTLS11: false, tls.VersionTLS12: false, tls.VersionTLS13: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host := map[int]string{legacy.Port: "legacy.reachd.test", modern.Port: "modern.reachd.test"}[tt.port]
			r := l.probe(target(host, tt.port), configs.Path{Name: "direct"}, l.config())
			assertOutcome(t, r, StageTLS, tt.reason, "")
			if r.TLS == nil {
				t.Fatal("no TLS facts")
			}
			for v, want := range tt.accepted {
				if r.TLS.Accepted[v] != want {
					t.Errorf("TLS %s accepted = %v, want %v", TLSVersionName(v), r.TLS.Accepted[v], want)
				}
			}
		})
	}
}

func TestTrustAndInterception(t *testing.T) {
	l := newLab(t)
	inspection := probetest.NewCA(t, "Corp Inspection CA")
	s := l.server("inspected.reachd.test", probetest.Issuer(inspection))
	tg := target("inspected.reachd.test", s.Port)
	withCA := configs.Path{Name: "corp", CACerts: []*x509.Certificate{inspection.Cert}}

	r := l.probe(tg, withCA, l.config())
	assertOutcome(t, r, "", "", "")
	if !r.TLS.Intercepted || r.TLS.Issuer != "Corp Inspection CA" {
		t.Errorf("tls %+v, want intercepted by Corp Inspection CA", r.TLS)
	}

	pinned := tg
	pinned.PinIssuer = "Vendor Issuing CA"
	assertOutcome(t, l.probe(pinned, withCA, l.config()), StageTLS, TLSIntercepted, `"Corp Inspection CA", pinned issuer is "Vendor Issuing CA"`)

	assertOutcome(t, l.probe(tg, configs.Path{Name: "direct"}, l.config()), StageTLS, TLSUntrustedCA, `"Corp Inspection CA"`)

	// A root in trust.ca_files is legitimate: trusted and not interception.
	r = l.probe(tg, configs.Path{Name: "direct"}, l.config(inspection.Cert))
	if r.Err != nil || r.TLS.Intercepted {
		t.Errorf("trust.ca_files root: err %v intercepted %v", r.Err, r.TLS.Intercepted)
	}
}

func TestProbeThroughProxy(t *testing.T) {
	l := newLab(t)
	s := l.server("vendor.reachd.test")
	up := probetest.Upstream(map[string]string{"vendor.reachd.test:443": s.Addr})
	open := probetest.NewProxy(t, up)
	auth := probetest.NewProxy(t, up, probetest.BasicAuth("svc", "s3cret-pw"), probetest.AuthSchemes("NTLM", "Negotiate"))
	denied := probetest.NewProxy(t, probetest.Status(http.StatusForbidden))
	upstream := probetest.NewProxy(t, probetest.Status(http.StatusBadGateway))
	l.dns.Set("proxy.reachd.test", probetest.Entry{A: []string{"127.0.0.1"}})
	named := probetest.NewProxy(t, up)
	namedURL := *named.URL
	namedURL.Host = "proxy.reachd.test:" + namedURL.Port()
	gone := *open.URL
	gone.Host = "127.0.0.1:" + strconv.Itoa(closedPort(t))
	missing := *open.URL
	missing.Host = "nowhere.reachd.test:3128"

	tg := target("vendor.reachd.test", 443)
	tests := []struct {
		name   string
		path   configs.Path
		reason Reason
		detail string
	}{
		{"open proxy", configs.Path{Name: "p", Proxy: open.URL}, "", ""},
		{"proxy by name", configs.Path{Name: "p", Proxy: &namedURL}, "", ""},
		{"credentials accepted", configs.Path{Name: "p", Proxy: auth.URL, Username: "svc", Password: "s3cret-pw"}, "", ""},
		{"no credentials", configs.Path{Name: "p", Proxy: auth.URL}, ProxyAuthRequired, "offers Basic, NTLM, Negotiate) and the path has none"},
		{"wrong credentials", configs.Path{Name: "p", Proxy: auth.URL, Username: "svc", Password: "wrong-pw"}, ProxyAuthRejected, "rejected the configured credentials"},
		{"denied", configs.Path{Name: "p", Proxy: denied.URL}, ProxyDenied, "403"},
		{"upstream failed", configs.Path{Name: "p", Proxy: upstream.URL}, ProxyUpstreamFailed, "502"},
		{"proxy down", configs.Path{Name: "p", Proxy: &gone}, ProxyUnreachable, "refused"},
		{"proxy name unknown", configs.Path{Name: "p", Proxy: &missing}, ProxyDNSFailed, "dns_nxdomain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := l.probe(tg, tt.path, l.config())
			if tt.reason == "" {
				assertOutcome(t, r, "", "", "")
				if r.Stages[0].Stage != StageProxy {
					t.Errorf("first stage %s, want proxy", r.Stages[0].Stage)
				}
				return
			}
			assertOutcome(t, r, StageProxy, tt.reason, tt.detail)
			if strings.Contains(r.Err.Error(), "s3cret-pw") || strings.Contains(r.Err.Error(), "wrong-pw") {
				t.Errorf("error reveals the password: %v", r.Err)
			}
		})
	}
}

func TestReasonsHaveStageAndHint(t *testing.T) {
	stages := map[Stage]bool{StageDNS: true, StageTCP: true, StageProxy: true, StageTLS: true, StageHTTP: true}
	for _, r := range Reasons() {
		if r == Internal {
			continue
		}
		if !stages[r.Stage()] || !strings.HasPrefix(string(r), string(r.Stage())+"_") {
			t.Errorf("%s: stage %q", r, r.Stage())
		}
		if len(r.Hint()) < 40 {
			t.Errorf("%s: hint %q is too thin to act on", r, r.Hint())
		}
	}
	if len(Reasons()) != 39 {
		t.Errorf("%d reasons, DESIGN §6 has 38, plus internal", len(Reasons()))
	}
}
