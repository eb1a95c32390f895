package probe

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reachd/reachd/configs"
	"github.com/reachd/reachd/probe/probetest"
	"github.com/reachd/reachd/probe/trace"
	"github.com/reachd/reachd/targets"
)

// fakeTracer answers every trace with hops, or with err, and counts calls.
type fakeTracer struct {
	mu    sync.Mutex
	calls []netip.AddrPort
	hops  []trace.Hop
	err   error
}

func (f *fakeTracer) run(_ context.Context, dst netip.AddrPort, _ trace.Options) (*trace.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, dst)
	if f.err != nil {
		return nil, f.err
	}
	return &trace.Result{Target: dst, Hops: f.hops}, nil
}

func (f *fakeTracer) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

var twoHops = []trace.Hop{
	{TTL: 1, Addr: netip.MustParseAddr("10.210.1.1"), RTT: time.Millisecond, ICMP: "time exceeded"},
	{TTL: 2, Addr: netip.MustParseAddr("10.210.2.2"), RTT: 2 * time.Millisecond, ICMP: "time exceeded"},
	{TTL: 3}, {TTL: 4}, {TTL: 5},
}

// fakeClock is a clock the test moves.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func newFakeTrace(f *fakeTracer, c *fakeClock) *pathTrace {
	p := newPathTrace(443, 10*time.Minute)
	p.trace, p.now = f.run, c.now
	return p
}

// TestTraceTriggers: only the four reasons of DESIGN §5 trigger a trace,
// only on a direct path (addresses known), at the address the failure
// names, and never changing the verdict.
func TestTraceTriggers(t *testing.T) {
	v4, v6 := netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("2001:db8::7")
	timeout := &net.OpError{Op: "dial", Net: "tcp", Addr: &net.TCPAddr{IP: net.ParseIP("2001:db8::7"), Port: 443}, Err: context.DeadlineExceeded}
	tests := []struct {
		name   string
		err    *Error
		addrs  []netip.Addr
		peer   netip.Addr
		traced string // the address traced; "" for none
	}{
		{"tcp_timeout names its attempt", fail(TCPTimeout, timeout), []netip.Addr{v4, v6}, netip.Addr{}, "[2001:db8::7]:443"},
		{"tcp_unreachable, IPv4 first", fail(TCPUnreachable, errors.New("no route")), []netip.Addr{v6, v4}, netip.Addr{}, "192.0.2.7:443"},
		{"tls_timeout at the peer", fail(TLSTimeout, errors.New("stalled")), []netip.Addr{v4, v6}, v6, "[2001:db8::7]:443"},
		{"tls_reset", fail(TLSReset, errors.New("reset")), []netip.Addr{v4}, v4, "192.0.2.7:443"},
		{"tcp_refused: the target answered", fail(TCPRefused, errors.New("refused")), []netip.Addr{v4}, netip.Addr{}, ""},
		{"tls_untrusted_ca", fail(TLSUntrustedCA, errors.New("x")), []netip.Addr{v4}, v4, ""},
		{"a proxy path (no addresses)", fail(TLSTimeout, errors.New("stalled")), nil, netip.Addr{}, ""},
		{"success", nil, []netip.Addr{v4}, v4, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeTracer{hops: twoHops}
			p := newFakeTrace(f, &fakeClock{t: time.Unix(1e9, 0)})
			r := &Result{Err: tt.err}
			p.run(context.Background(), r, route{addrs: tt.addrs, peer: tt.peer, run: context.Background()})
			if r.Err != tt.err {
				t.Errorf("the trace changed the verdict to %v", r.Err)
			}
			if tt.traced == "" {
				if f.count() != 0 || r.Trace != nil {
					t.Errorf("traced %v: %+v", f.calls, r.Trace)
				}
				return
			}
			if f.count() != 1 || f.calls[0].String() != tt.traced {
				t.Fatalf("traced %v, want %s", f.calls, tt.traced)
			}
			if r.Trace == nil || r.Trace.Verdict != "no answer past hop 2 (10.210.2.2)" || len(r.Trace.Hops) != 5 {
				t.Errorf("trace %+v", r.Trace)
			}
		})
	}
}

// TestTraceInterval: one trace per trace_interval; the runs between show
// the last trace; a run cut short keeps nothing.
func TestTraceInterval(t *testing.T) {
	f := &fakeTracer{hops: twoHops}
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	p := newFakeTrace(f, clock)
	rt := route{addrs: []netip.Addr{netip.MustParseAddr("192.0.2.7")}, run: context.Background()}
	probeOnce := func() *Result {
		r := &Result{Err: fail(TCPTimeout, errors.New("timeout"))}
		p.run(context.Background(), r, rt)
		return r
	}
	first := probeOnce()
	clock.t = clock.t.Add(9 * time.Minute)
	second := probeOnce()
	if f.count() != 1 || second.Trace != first.Trace {
		t.Fatalf("%d traces within the interval; second run's trace %+v", f.count(), second.Trace)
	}
	// A round-robin name answering another address does not make the
	// next run trace again.
	other := &Result{Err: fail(TCPTimeout, errors.New("timeout"))}
	p.run(context.Background(), other, route{addrs: []netip.Addr{netip.MustParseAddr("192.0.2.8")}, run: context.Background()})
	if f.count() != 1 || other.Trace != first.Trace {
		t.Fatalf("another address traced within the interval: %d traces", f.count())
	}
	clock.t = clock.t.Add(time.Minute)
	probeOnce()
	if f.count() != 2 {
		t.Fatalf("%d traces after the interval, want 2", f.count())
	}
	// A run cut short (a /probe with a short scrape timeout) reports its
	// trace but does not keep it.
	clock.t = clock.t.Add(time.Hour)
	cut, cancel := context.WithCancel(context.Background())
	cancel()
	r := &Result{Err: fail(TCPTimeout, errors.New("timeout"))}
	p.run(context.Background(), r, route{addrs: rt.addrs, run: cut})
	if f.count() != 3 || r.Trace == nil {
		t.Fatalf("cut-short run: %d traces, trace %+v", f.count(), r.Trace)
	}
	probeOnce()
	if f.count() != 4 {
		t.Errorf("a cut-short trace was kept: %d traces", f.count())
	}
}

// TestTraceUnsupported: a kernel that cannot trace is said once in the
// report (and the log), never fails the probe, and is not retried on
// every run.
func TestTraceUnsupported(t *testing.T) {
	f := &fakeTracer{err: trace.ErrUnsupported}
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	p := newFakeTrace(f, clock)
	rt := route{addrs: []netip.Addr{netip.MustParseAddr("192.0.2.7")}, run: context.Background()}
	for range 3 {
		r := &Result{Err: fail(TLSReset, errors.New("reset"))}
		p.run(context.Background(), r, rt)
		if r.Err.Reason != TLSReset {
			t.Fatalf("reason %s", r.Err.Reason)
		}
		if r.Trace == nil || !strings.Contains(r.Trace.Unsupported, "cannot read ICMP errors") || len(r.Trace.Hops) != 0 {
			t.Fatalf("trace %+v", r.Trace)
		}
	}
	if f.count() != 1 {
		t.Errorf("%d attempts within the interval, want 1", f.count())
	}
}

// TestTraceInProbe: a real probe whose ClientHello stalls (tls_timeout)
// traces the address it connected to, through the prober's own extra.
func TestTraceInProbe(t *testing.T) {
	l := newLab(t)
	stall := probetest.NewRawServer(t, probetest.Hold)
	l.dns.Set("stall.reachd.test", probetest.Entry{A: []string{"127.0.0.1"}})
	cfg := l.config()
	cfg.Defaults.TraceInterval = 10 * time.Minute
	tg := target("stall.reachd.test", stall.Port, func(t *targets.Target) { t.Timeout = 500 * time.Millisecond })
	p := New(tg, configs.Path{Name: "direct"}, NewEnv(cfg, "reachd-test"))
	f := &fakeTracer{hops: []trace.Hop{{TTL: 1, Addr: netip.MustParseAddr("127.0.0.1"), Reached: true}}}
	var pt *pathTrace
	for _, x := range p.extras {
		if x, ok := x.(*pathTrace); ok {
			pt = x
		}
	}
	if pt == nil {
		t.Fatal("no path trace extra with trace_interval set")
	}
	pt.trace = f.run
	r := p.Probe(context.Background())
	assertOutcome(t, r, StageTLS, TLSTimeout, "")
	if f.count() != 1 || f.calls[0].Addr().String() != "127.0.0.1" || int(f.calls[0].Port()) != stall.Port {
		t.Fatalf("traced %v", f.calls)
	}
	if r.Trace == nil || !strings.HasPrefix(r.Trace.Verdict, "reached the target at hop 1") {
		t.Errorf("trace %+v", r.Trace)
	}
	// Off with trace_interval = 0.
	cfg.Defaults.TraceInterval = 0
	for _, x := range New(tg, configs.Path{Name: "direct"}, NewEnv(cfg, "reachd-test")).extras {
		if _, ok := x.(*pathTrace); ok {
			t.Error("a path trace extra with trace_interval 0")
		}
	}
}
