package probe

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/reachd/reachd/configs"
	"github.com/reachd/reachd/probe/probetest"
	"github.com/reachd/reachd/targets"
)

// serveTLSOnce completes a TLS handshake on c and answers one HTTP request
// with 200 "ok".
func serveTLSOnce(c net.Conn, conf *tls.Config) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	tc := tls.Server(c, conf)
	if tc.Handshake() != nil {
		return
	}
	if _, err := http.ReadRequest(bufio.NewReader(tc)); err != nil {
		return
	}
	io.WriteString(tc, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
	tc.Close()
}

// serialServer is a TLS+HTTP server for host that serves one connection
// at a time: it accepts the next only once the last is closed, as small
// appliances and some vendor gateways do.
func serialServer(t *testing.T, l *lab, host string) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conf := &tls.Config{Certificates: []tls.Certificate{l.ca.Issue(t, []string{host}, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))}, MinVersion: tls.VersionTLS12}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			serveTLSOnce(c, conf)
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	l.dns.Set(host, probetest.Entry{A: []string{"127.0.0.1"}})
	return ln.Addr().(*net.TCPAddr).Port
}

// droppingServer is a TLS+HTTP server for host that silently drops every
// ClientHello offering nothing above TLS 1.1, as some firewalls do: no
// alert, no close, until the client gives up.
func droppingServer(t *testing.T, l *lab, host string) *probetest.RawServer {
	t.Helper()
	conf := &tls.Config{Certificates: []tls.Certificate{l.ca.Issue(t, []string{host}, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))}, MinVersion: tls.VersionTLS10}
	conf.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		if slices.Max(hello.SupportedVersions) < tls.VersionTLS12 {
			probetest.Hold(hello.Conn)
			return nil, errors.New("dropped")
		}
		return nil, nil
	}
	s := probetest.NewRawServer(t, func(c net.Conn) { serveTLSOnce(c, conf) })
	l.dns.Set(host, probetest.Entry{A: []string{"127.0.0.1"}})
	return s
}

func TestSweepAfterStages(t *testing.T) {
	l := newLab(t)
	serial := serialServer(t, l, "serial.reachd.test")
	drop := droppingServer(t, l, "drop.reachd.test")
	tests := []struct {
		name string
		tg   targets.Target
	}{
		{"one connection at a time", target("serial.reachd.test", serial, func(t *targets.Target) { t.Timeout = 2 * time.Second })},
		{"ClientHellos below 1.2 dropped", target("drop.reachd.test", drop.Port, func(t *targets.Target) { t.Timeout = time.Second })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := New(tt.tg, configs.Path{Name: "direct"}, NewEnv(l.config(), "reachd-test"))
			start := time.Now()
			r := p.Probe(context.Background())
			took := time.Since(start)
			assertOutcome(t, r, "", "", "")
			if len(r.Stages) != 4 {
				t.Errorf("stages %+v, want dns, tcp, tls, http", r.Stages)
			}
			if r.Duration >= tt.tg.Timeout {
				t.Errorf("duration %s includes the sweep (timeout %s)", r.Duration, tt.tg.Timeout)
			}
			// The stages' timeout plus one sweep handshake timeout (the
			// sweep's handshakes run in parallel) and the revocation
			// checks' timeout.
			if took > p.MaxRun() || p.MaxRun() != 3*tt.tg.Timeout+runGrace {
				t.Errorf("the run took %s, MaxRun %s", took, p.MaxRun())
			}
			if r.TLS == nil || !r.TLS.Accepted[tls.VersionTLS12] || !r.TLS.Accepted[tls.VersionTLS13] || r.TLS.Accepted[tls.VersionTLS10] || r.TLS.Accepted[tls.VersionTLS11] {
				t.Errorf("sweep %+v, want 1.2 and 1.3 accepted, 1.0 and 1.1 not", r.TLS)
			}
		})
	}
}

func TestSweepCutShortIsNotKept(t *testing.T) {
	l := newLab(t)
	drop := droppingServer(t, l, "drop.reachd.test")
	tg := target("drop.reachd.test", drop.Port, func(t *targets.Target) { t.Timeout = time.Second })
	p := New(tg, configs.Path{Name: "direct"}, NewEnv(l.config(), "reachd-test"))

	// A /probe whose scrape timeout ends while the 1.0 and 1.1 handshakes
	// still wait: the stages pass, the half-done sweep is dropped.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	r := p.Probe(ctx)
	cancel()
	assertOutcome(t, r, "", "", "")
	if r.TLS == nil || r.TLS.Accepted != nil {
		t.Fatalf("cut-short sweep reported: %+v", r.TLS)
	}
	// Not kept either: the next run sweeps again, to the end.
	r = p.Probe(context.Background())
	assertOutcome(t, r, "", "", "")
	if r.TLS == nil || !r.TLS.Accepted[tls.VersionTLS12] || !r.TLS.Accepted[tls.VersionTLS13] {
		t.Fatalf("the next run did not sweep: %+v", r.TLS)
	}
	// And a run cut short after a complete sweep reports that sweep.
	p.extras[0].(*sweep).interval = 0
	ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if r = p.Probe(ctx); r.TLS == nil || !r.TLS.Accepted[tls.VersionTLS12] {
		t.Errorf("cut-short run lost the last complete sweep: %+v", r.TLS)
	}
}

// TestSweepRefinesTLSFailure: the sweep runs after a failed tls stage and
// names a legacy-only server.
func TestSweepRefinesTLSFailure(t *testing.T) {
	l := newLab(t)
	legacy := l.server("legacy.reachd.test", probetest.TLSVersions(tls.VersionTLS10, tls.VersionTLS11))
	r := l.probe(target("legacy.reachd.test", legacy.Port), configs.Path{Name: "direct"}, l.config())
	assertOutcome(t, r, StageTLS, TLSVersionUnsupported, "accepts only TLS versions below 1.2")
	if n := len(r.Stages); r.Stages[n-1].Stage != StageTLS {
		t.Errorf("stages %+v", r.Stages)
	}
}

// fakeExtra records what an extra is given.
type fakeExtra struct {
	b        time.Duration
	panics   bool
	got      route
	reason   Reason
	deadline time.Duration
}

func (f *fakeExtra) budget() time.Duration        { return f.b }
func (f *fakeExtra) due(r *Result, rt route) bool { return true }

func (f *fakeExtra) run(ctx context.Context, r *Result, rt route) {
	if f.panics {
		panic("extra bug")
	}
	f.got = rt
	if r.Err != nil {
		f.reason = r.Err.Reason
	}
	if d, ok := ctx.Deadline(); ok {
		f.deadline = time.Until(d)
	}
}

// TestExtraContract: an extra runs after the stages under its own budget,
// sees their verdict and the target's addresses even when tcp failed (a
// path trace's case), adds to MaxRun, and a panic in it fails the run as
// internal instead of the daemon.
func TestExtraContract(t *testing.T) {
	l := newLab(t)
	l.dns.Set("closed.reachd.test", probetest.Entry{A: []string{"127.0.0.1"}})
	p := New(target("closed.reachd.test", closedPort(t)), configs.Path{Name: "direct"}, NewEnv(l.config(), "reachd-test"))
	x := &fakeExtra{b: 5 * time.Second}
	before := p.MaxRun()
	p.extras = append(p.extras, x)
	if p.MaxRun() != before+5*time.Second {
		t.Errorf("MaxRun %s, want %s + the extra's 5s", p.MaxRun(), before)
	}
	r := p.Probe(context.Background())
	assertOutcome(t, r, StageTCP, TCPRefused, "refused")
	if x.reason != TCPRefused || x.got.dial != nil || len(x.got.addrs) != 1 || x.got.addrs[0].String() != "127.0.0.1" || x.got.fetch == nil {
		t.Errorf("the extra saw reason %q route %+v", x.reason, x.got)
	}
	if x.deadline <= 3*time.Second || x.deadline > 5*time.Second {
		t.Errorf("the extra's deadline is %s away, want its own 5s budget", x.deadline)
	}

	x.panics = true
	r = p.Probe(context.Background())
	if r.Err == nil || r.Err.Reason != Internal || len(r.Panic) == 0 {
		t.Errorf("a panicking extra gave %v", r.Err)
	}
}
