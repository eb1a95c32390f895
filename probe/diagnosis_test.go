package probe

import (
	"crypto/tls"
	"net"
	"net/http"
	"net/netip"
	"net/url"
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

// rawServer serves each loopback connection with handle, and returns its port.
func rawServer(t *testing.T, handle func(net.Conn)) int {
	t.Helper()
	return probetest.NewRawServer(t, handle).Port
}

var (
	reset = probetest.Reset
	hold  = probetest.Hold
)

func TestDiagnosisReasons(t *testing.T) {
	l := newLab(t)
	l.dns.Set("raw.reachd.test", probetest.Entry{A: []string{"127.0.0.1"}})
	short := func(t *targets.Target) { t.Timeout = 500 * time.Millisecond }
	tcpOnly := func(t *targets.Target) { t.Checks = []string{"dns", "tcp"} }

	resetOnAccept := rawServer(t, reset)
	resetAfterHello := rawServer(t, func(c net.Conn) {
		var b [1]byte
		c.Read(b[:]) // the ClientHello arrived
		reset(c)
	})
	tarpit := rawServer(t, hold)
	plaintext := rawServer(t, func(c net.Conn) {
		c.Write([]byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"))
		hold(c)
	})
	silent := l.server("raw.reachd.test", probetest.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // answers nothing until the client gives up
	})))
	hangup := l.server("raw.reachd.test", probetest.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		c, _, _ := w.(http.Hijacker).Hijack()
		c.Close()
	})))
	noSuite := l.server("raw.reachd.test", probetest.TLSVersions(tls.VersionTLS12, tls.VersionTLS12),
		probetest.CipherSuites(tls.TLS_RSA_WITH_AES_128_CBC_SHA))
	deadResolver := closedUDPPort(t)

	tests := []struct {
		name   string
		target targets.Target
		cfg    func(*configs.Config)
		stage  Stage
		reason Reason
		detail string
	}{
		{"resolver not listening", target("raw.reachd.test", 443), func(c *configs.Config) { c.Resolvers[0].Servers = []string{deadResolver} }, StageDNS, DNSError, "refused"},
		{"tcp only, connection survives", target("raw.reachd.test", tarpit, tcpOnly), nil, "", "", ""},
		{"reset after ClientHello", target("raw.reachd.test", resetAfterHello), nil, StageTLS, TLSReset, "after the ClientHello"},
		{"stall after ClientHello", target("raw.reachd.test", tarpit, short), nil, StageTLS, TLSTimeout, "handshake stalled"},
		{"no common cipher suite", target("raw.reachd.test", noSuite.Port), nil, StageTLS, TLSHandshakeFailed, "handshake failure"},
		{"not TLS at all", target("raw.reachd.test", plaintext), nil, StageTLS, TLSError, "does not look like a TLS handshake"},
		{"no HTTP answer", target("raw.reachd.test", silent.Port, short), nil, StageHTTP, HTTPTimeout, "timeout"},
		{"connection closed instead of an answer", target("raw.reachd.test", hangup.Port), nil, StageHTTP, HTTPError, "EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := l.config()
			if tt.cfg != nil {
				tt.cfg(cfg)
			}
			assertOutcome(t, l.probe(tt.target, configs.Path{Name: "direct"}, cfg), tt.stage, tt.reason, tt.detail)
		})
	}

	// The reset must arrive within the settle window; on a loaded machine
	// the accept can come later than SettleTime, so this probe waits longer.
	t.Run("reset right after connect", func(t *testing.T) {
		env := NewEnv(l.config(), "reachd-test")
		env.settle = 10 * time.Second
		r := New(target("raw.reachd.test", resetOnAccept, tcpOnly), configs.Path{Name: "direct"}, env).Probe(t.Context())
		assertOutcome(t, r, StageTCP, TCPReset, "reset right after it opened")
	})

	garbage := rawServer(t, func(c net.Conn) {
		c.Write([]byte("SSH-2.0-OpenSSH_9.2\r\n"))
		hold(c)
	})
	for _, tt := range []struct {
		name   string
		port   int
		reason Reason
		detail string
	}{
		{"proxy never answers CONNECT", tarpit, ProxyTimeout, "timeout"},
		{"proxy answers garbage", garbage, ProxyError, "malformed HTTP"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			proxy := &url.URL{Scheme: "http", Host: "127.0.0.1:" + strconv.Itoa(tt.port)}
			r := l.probe(target("raw.reachd.test", 443, short), configs.Path{Name: "p", Proxy: proxy}, l.config())
			assertOutcome(t, r, StageProxy, tt.reason, tt.detail)
		})
	}
}

func closedUDPPort(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := c.LocalAddr().String()
	c.Close()
	return addr
}

func TestDNSPerResolver(t *testing.T) {
	l := newLab(t)
	s := l.server("dual.reachd.test")
	l.dns.Set("dual.reachd.test", probetest.Entry{A: []string{"127.0.0.1"}})
	other := probetest.NewDNSServer(t, probetest.Records{"dual.reachd.test": {Rcode: dns.RcodeRefused}})
	cfg := l.config()
	cfg.Resolvers = append(cfg.Resolvers, configs.Resolver{Name: "branch", Servers: []string{other.Addr}, Protocol: "udp"})
	cfg.Targets = []targets.Target{target("dual.reachd.test", s.Port, func(t *targets.Target) { t.Paths = []string{"direct"} })}

	probers := Build(cfg, "reachd-test")
	r := probers[0].Probe(t.Context())
	if r.Err != nil {
		t.Fatalf("the probe uses the first resolver and must pass: %v", r.Err)
	}
	want := []DNSResult{
		{Resolver: "lab", QType: "A", Success: true, Rcode: "NOERROR", Answers: []string{"127.0.0.1"}},
		{Resolver: "lab", QType: "AAAA", Success: true, Rcode: "NOERROR"}, // empty AAAA beside A is normal
		{Resolver: "branch", QType: "A", Success: false, Rcode: "REFUSED", Reason: DNSRefused},
		{Resolver: "branch", QType: "AAAA", Success: false, Rcode: "REFUSED", Reason: DNSRefused},
	}
	if len(r.DNS) != len(want) {
		t.Fatalf("%d DNS results, want %d: %+v", len(r.DNS), len(want), r.DNS)
	}
	for i, w := range want {
		g := r.DNS[i]
		if g.Resolver != w.Resolver || g.QType != w.QType || g.Success != w.Success || g.Rcode != w.Rcode || g.Reason != w.Reason || len(g.Answers) != len(w.Answers) || len(w.Answers) > 0 && g.Answers[0] != w.Answers[0] {
			t.Errorf("DNS[%d] = %+v, want %+v", i, g, w)
		}
	}
	// The first resolver was asked once per type: its answers came from the dns stage.
	if n := l.dns.Queries("dual.reachd.test", dns.TypeA, "udp"); n != 1 {
		t.Errorf("first resolver asked %d times for A, want 1", n)
	}

	// expect_cidrs judges every resolver's answers too.
	cfg.Targets[0].ExpectCIDRs = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	r = Build(cfg, "reachd-test")[0].Probe(t.Context())
	assertOutcome(t, r, StageDNS, DNSUnexpectedAddress, "outside")
	if r.DNS[0].Success || r.DNS[0].Reason != DNSUnexpectedAddress {
		t.Errorf("per-resolver A entry %+v, want dns_unexpected_address", r.DNS[0])
	}
}

func TestResolverServersAndTruncation(t *testing.T) {
	l := newLab(t)
	s := l.server("big.reachd.test")
	l.dns.Set("big.reachd.test", probetest.Entry{A: []string{"127.0.0.1"}, Truncate: true})
	mute := probetest.NewDNSServer(t, probetest.Records{"big.reachd.test": {Drop: true}})

	cfg := l.config()
	cfg.Resolvers[0].Servers = []string{mute.Addr, l.dns.Addr} // the first never answers
	r := l.probe(target("big.reachd.test", s.Port, func(t *targets.Target) { t.Timeout = 2 * time.Second }), configs.Path{Name: "direct"}, cfg)
	assertOutcome(t, r, "", "", "")
	if n := mute.Queries("big.reachd.test", dns.TypeA, "udp"); n != 1 {
		t.Errorf("the silent first server was asked %d times, want 1", n)
	}
	if udp, tcp := l.dns.Queries("big.reachd.test", dns.TypeA, "udp"), l.dns.Queries("big.reachd.test", dns.TypeA, "tcp"); udp != 1 || tcp != 1 {
		t.Errorf("truncated answer: %d udp and %d tcp queries, want one each (TCP fallback)", udp, tcp)
	}
}

func TestOnlyOneProberPerTargetChecksResolvers(t *testing.T) {
	l := newLab(t)
	cfg := l.config()
	cfg.Paths = append(cfg.Paths, configs.Path{Name: "second"})
	cfg.Targets = []targets.Target{
		target("a.reachd.test", 443, func(t *targets.Target) { t.Paths = []string{"direct", "second"} }),
		target("127.0.0.1", 443, func(t *targets.Target) { t.Name = "ip"; t.Paths = []string{"direct"} }),
	}
	var checks []bool
	for _, p := range Build(cfg, "reachd-test") {
		checks = append(checks, p.dnsChecks)
	}
	if len(checks) != 3 || !checks[0] || checks[1] || checks[2] {
		t.Errorf("dnsChecks per prober %v, want [true false false]: one per named target", checks)
	}
}

func TestHTTPBodyBoundAndClockSkew(t *testing.T) {
	l := newLab(t)
	big := l.server("big.reachd.test", probetest.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Write(make([]byte, MaxBody)) // the needle lies just past the bound
		w.Write([]byte("needle"))
	})))
	skewed := l.server("skewed.reachd.test", probetest.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Date", time.Now().Add(-90*time.Second).UTC().Format(http.TimeFormat))
	})))
	needle := func(t *targets.Target) { t.HTTP.ExpectBody = regexp.MustCompile("needle") }
	assertOutcome(t, l.probe(target("big.reachd.test", big.Port, needle), configs.Path{Name: "direct"}, l.config()), StageHTTP, HTTPBodyMismatch, "first 65536 bytes")

	r := l.probe(target("skewed.reachd.test", skewed.Port), configs.Path{Name: "direct"}, l.config())
	if r.Err != nil || !r.HTTP.HasDate || r.HTTP.ClockSkew > -89*time.Second || r.HTTP.ClockSkew < -91*time.Second {
		t.Errorf("clock skew %v (err %v), want about -90s", r.HTTP.ClockSkew, r.Err)
	}
}

func TestTLSSweepRunsOnFirstRunAndThenEveryInterval(t *testing.T) {
	l := newLab(t)
	for _, tt := range []struct {
		name     string
		interval time.Duration
		second   int // connections the second run opens
	}{
		{"not due", time.Hour, 1},
		{"due", time.Nanosecond, 1 + len(TLSVersions)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := l.server("sweep.reachd.test")
			cfg := l.config()
			cfg.Defaults.TLSSweepInterval = tt.interval
			p := New(target("sweep.reachd.test", s.Port), configs.Path{Name: "direct"}, NewEnv(cfg, "reachd-test"))
			if r := p.Probe(t.Context()); r.Err != nil || len(r.TLS.Accepted) != len(TLSVersions) {
				t.Fatalf("first run: %v, sweep %v", r.Err, r.TLS.Accepted)
			}
			if n := s.Connections(); n != 1+len(TLSVersions) {
				t.Errorf("first run opened %d connections, want the probe's and one per version", n)
			}
			r := p.Probe(t.Context())
			if got := s.Connections() - 1 - len(TLSVersions); got != tt.second {
				t.Errorf("second run opened %d connections, want %d", got, tt.second)
			}
			if len(r.TLS.Accepted) != len(TLSVersions) {
				t.Errorf("the last sweep's verdicts must stay on every result: %v", r.TLS.Accepted)
			}
		})
	}
}

func TestPanicIsRecoveredAsInternal(t *testing.T) {
	l := newLab(t)
	s := l.server("ok.reachd.test")
	p := New(target("ok.reachd.test", s.Port), configs.Path{Name: "direct"}, NewEnv(l.config(), "reachd-test"))
	p.http = nil
	// A bug: a callback of the handshake's config panics.
	p.tls.conf = &tls.Config{InsecureSkipVerify: true, VerifyConnection: func(tls.ConnectionState) error { panic("a bug") }}
	r := p.Probe(t.Context())
	if r.Err == nil || r.Err.Reason != Internal || r.Err.Stage != StageInternal || len(r.Panic) == 0 {
		t.Fatalf("got %v, panic stack %d bytes; want reason internal with the stack", r.Err, len(r.Panic))
	}
	covered.Store(Internal, t.Name())
	if !strings.Contains(string(r.Panic), "probe.(*tlsProber)") {
		t.Errorf("stack does not show where it panicked:\n%s", r.Panic)
	}
}

func TestEndlessHeadersAreCutOff(t *testing.T) {
	l := newLab(t)
	endless := rawServer(t, func(c net.Conn) {
		tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{l.ca.Issue(t, []string{"raw.reachd.test"}, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))}})
		if tc.Handshake() != nil {
			return
		}
		tc.Write([]byte("HTTP/1.1 200 OK\r\n"))
		line := []byte("X-Filler: " + strings.Repeat("x", 1000) + "\r\n")
		for { // headers without end, until the client hangs up
			if _, err := tc.Write(line); err != nil {
				return
			}
		}
	})
	l.dns.Set("raw.reachd.test", probetest.Entry{A: []string{"127.0.0.1"}})
	r := l.probe(target("raw.reachd.test", endless), configs.Path{Name: "direct"}, l.config())
	assertOutcome(t, r, StageHTTP, HTTPError, "EOF")
}

func TestDialWithoutAddressesFails(t *testing.T) {
	conn, err := dialAddrs(t.Context(), nil, 443)
	if conn != nil || err == nil || err.Reason != TCPError {
		t.Fatalf("dialAddrs(no addresses) = %v, %v; want a tcp_error", conn, err)
	}
}
