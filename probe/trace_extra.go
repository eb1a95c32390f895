package probe

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/reachd/reachd/probe/trace"
)

// TraceInfo is the path trace of a failing direct probe (DESIGN §5): the
// hops up to where the SYN stops, and the one-line verdict.
type TraceInfo struct {
	Target  netip.AddrPort // the address traced, at the target's port
	Start   time.Time
	Hops    []trace.Hop
	Verdict string // "no answer past hop 2 (10.200.1.1)", ...
	// Unsupported is set instead of hops when this system cannot trace
	// without privileges: said once in the log and on every report.
	Unsupported string
}

// LastAnswered is the highest hop that answered; ok is false when none did.
func (t *TraceInfo) LastAnswered() (trace.Hop, bool) {
	r := trace.Result{Hops: t.Hops}
	return r.LastAnswered()
}

// traceReasons are the failures a path trace explains: the SYN or the
// ClientHello gets nowhere, or something on the way tears it down.
var traceReasons = map[Reason]bool{TCPTimeout: true, TCPUnreachable: true, TLSTimeout: true, TLSReset: true}

// Bounds of one trace: at most traceMaxHops hops of traceHopTimeout each
// (it ends sooner after trace.DefaultSilentHops silent hops in a row).
const (
	traceMaxHops    = 16
	traceHopTimeout = time.Second
)

// tracer runs one trace; trace.Run, or a fake in tests.
type tracer func(context.Context, netip.AddrPort, trace.Options) (*trace.Result, error)

// pathTrace is the extra that traces the path to the target when a direct
// probe fails with one of traceReasons, at most once per interval; a run
// between traces shows the last one while the probe keeps failing so.
type pathTrace struct {
	trace    tracer
	interval time.Duration
	port     int
	opts     trace.Options
	now      func() time.Time

	mu   sync.Mutex
	last *TraceInfo // nil until a trace ran
}

func newPathTrace(port int, interval time.Duration) *pathTrace {
	return &pathTrace{trace: trace.Run, interval: interval, port: port, now: time.Now,
		opts: trace.Options{MaxHops: traceMaxHops, HopTimeout: traceHopTimeout, SilentHops: trace.DefaultSilentHops}}
}

func (p *pathTrace) budget() time.Duration {
	return time.Duration(p.opts.MaxHops)*p.opts.HopTimeout + time.Second
}

// unsupportedOnce logs, once per process, that this system cannot trace.
var unsupportedOnce sync.Once

func (p *pathTrace) due(r *Result, rt route) bool {
	if r.Err == nil || !traceReasons[r.Err.Reason] || len(rt.addrs) == 0 {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last == nil || p.now().Sub(p.last.Start) >= p.interval
}

func (p *pathTrace) run(ctx context.Context, r *Result, rt route) {
	if r.Err == nil || !traceReasons[r.Err.Reason] || len(rt.addrs) == 0 {
		return
	}
	dst := netip.AddrPortFrom(traceAddr(r.Err, rt.peer, rt.addrs), uint16(p.port))
	now := p.now()
	p.mu.Lock()
	last := p.last
	p.mu.Unlock()
	if last == nil || now.Sub(last.Start) >= p.interval {
		got := p.traceOnce(ctx, dst, now)
		if got == nil {
			return
		}
		if rt.run.Err() == nil {
			p.mu.Lock()
			p.last = got
			p.mu.Unlock()
		}
		last = got
	}
	r.Trace = last
}

// traceOnce runs one trace; nil when it was cut short before any hop.
func (p *pathTrace) traceOnce(ctx context.Context, dst netip.AddrPort, now time.Time) *TraceInfo {
	res, err := p.trace(ctx, dst, p.opts)
	if errors.Is(err, trace.ErrUnsupported) {
		unsupportedOnce.Do(func() {
			slog.Warn("path trace unavailable: failing probes are reported without their path", "err", err)
		})
		return &TraceInfo{Target: dst, Start: now, Unsupported: err.Error()}
	}
	if res == nil || len(res.Hops) == 0 {
		return nil
	}
	return &TraceInfo{Target: dst, Start: now, Hops: res.Hops, Verdict: res.Verdict()}
}

// traceAddr is the address whose connection attempt got furthest: the
// tls stage's peer, or the one the tcp stage's failure names (its
// furthest attempt), else the first IPv4 address, else the first.
func traceAddr(e *Error, peer netip.Addr, addrs []netip.Addr) netip.Addr {
	if peer.IsValid() {
		return peer.Unmap()
	}
	var op *net.OpError
	if errors.As(e.Err, &op) {
		if a, ok := op.Addr.(*net.TCPAddr); ok {
			if ip, ok := netip.AddrFromSlice(a.IP); ok {
				return ip.Unmap()
			}
		}
	}
	for _, a := range addrs {
		if a.Unmap().Is4() {
			return a.Unmap()
		}
	}
	return addrs[0]
}
