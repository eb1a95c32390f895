package probe

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// An extra is work a probe does after its stages, once their connection
// is closed: the TLS sweep now, the path trace and the revocation checks
// next. A run reads as stages, then extras. Each extra has a budget of its
// own, so none can eat into the stages' timeout or hold the connection the
// stages used (a server that serves one connection at a time, a firewall
// that drops old ClientHellos), and none counts in the probe's duration.
//
// An extra may refine the stages' verdict (the sweep turns a tls_* failure
// into tls_version_unsupported for a legacy-only server) but never turns a
// failure into a success or a success into a failure.
type extra interface {
	// budget bounds one run of the extra; MaxRun adds the budgets of all
	// of a prober's extras to the stages' timeout.
	budget() time.Duration
	// due reports whether run would do any work of its own (a sweep, a
	// check, a trace) for the stages' result r, rather than only attach
	// what it found before. rt.run is not set yet.
	due(r *Result, rt route) bool
	// run does the extra's work if it is due and records what it found in
	// r. ctx ends with the budget or with the run.
	run(ctx context.Context, r *Result, rt route)
}

// route is what the stages leave to the extras: how to reach the target
// again the way the stages did, and the run's own context.
type route struct {
	// dial opens a new connection to the target over the probe's path
	// (through the proxy's tunnel on a proxy path); nil when the stages
	// never got a connection.
	dial func(context.Context) (net.Conn, *Error)
	// addrs are the target's addresses as the dns stage resolved them (or
	// its IP literal) on a direct path; nil on a proxy path or when the
	// dns stage failed. A path trace goes to them.
	addrs []netip.Addr
	// peer is the address the stages' connection went to (direct paths);
	// invalid when none opened.
	peer netip.Addr
	// fetch gets plain-HTTP URLs over the probe's path.
	fetch *fetcher
	// run is the run's context without any budget: once it has ended,
	// the run was cut short (a /probe with a short scrape timeout) and
	// what an extra found meanwhile is incomplete.
	run context.Context
}

// runGrace is what MaxRun allows beyond the stages' timeout and the
// extras' budgets, so the scheduler's backstop never cuts a run whose
// every part kept to its own timeout.
const runGrace = time.Second

// runExtras runs the prober's extras in order, each under its own budget
// and the run's guard.
func (p *Prober) runExtras(base context.Context, r *Result, rt route) {
	g, _ := base.Value(guardKey{}).(*guard)
	for _, x := range p.extras {
		if base.Err() != nil {
			return
		}
		func() {
			if g != nil {
				defer g.catch()
			}
			ctx, cancel := context.WithTimeout(base, x.budget())
			defer cancel()
			x.run(ctx, r, rt)
		}()
	}
}

// sweep is the extra that tries each TLS version alone, on a prober's
// first run and then every sweep interval, each handshake over a new
// connection with a timeout of its own, all in parallel.
type sweep struct {
	tls      *tlsProber
	timeout  time.Duration // of each handshake; the sweep's budget
	interval time.Duration
	min      uint16

	mu       sync.Mutex
	last     time.Time
	accepted map[uint16]bool // nil until a sweep completed
}

func (s *sweep) budget() time.Duration { return s.timeout }

// run sweeps when due and attaches the last complete sweep to r. A sweep
// cut short by the end of the run is neither kept nor reported: a version
// it had no time for would read as not accepted.
func (s *sweep) due(r *Result, rt route) bool {
	if rt.dial == nil || !r.ran(StageTLS) {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted == nil || time.Since(s.last) >= s.interval
}

func (s *sweep) run(ctx context.Context, r *Result, rt route) {
	if rt.dial == nil || !r.ran(StageTLS) {
		return
	}
	due := s.due(r, rt)
	s.mu.Lock()
	accepted := s.accepted
	s.mu.Unlock()
	if due {
		got := s.tls.sweep(ctx, s.timeout, rt.dial)
		if rt.run.Err() == nil {
			s.mu.Lock()
			s.accepted, s.last = got, time.Now()
			s.mu.Unlock()
			accepted = got
		}
	}
	if accepted == nil {
		return
	}
	if r.TLS == nil {
		r.TLS = &TLSInfo{}
	}
	r.TLS.Accepted = accepted
	if r.Err != nil && r.Err.Stage == StageTLS && onlyBelow(accepted, s.min) {
		r.Err = fail(TLSVersionUnsupported, fmt.Errorf("the server accepts only TLS versions below %s: %w", TLSVersionName(s.min), r.Err.Err))
	} else if r.Err != nil && r.Err.Reason == TLSVersionUnsupported {
		if below := undecidedBelow(accepted, s.min); below != "" {
			r.Err = fail(TLSVersionUnsupported, fmt.Errorf("%w; TLS %s could not be judged: the handshake at that version failed for another reason than the version, "+
				"most often no cipher suite in common (the server may offer only suites Go does not implement, such as DHE, which the agents' SChannel may still speak)", r.Err.Err, below))
		}
	}
}

// undecidedBelow names the versions below min that the sweep could not
// decide, when no version at or above min was accepted: "1.0 and 1.1".
func undecidedBelow(accepted map[uint16]bool, min uint16) string {
	var names []string
	for _, v := range TLSVersions {
		if ok, known := accepted[v]; v >= min && ok {
			return ""
		} else if v < min && !known {
			names = append(names, TLSVersionName(v))
		}
	}
	return strings.Join(names, " and ")
}

// onlyBelow reports whether some version below min was accepted and none
// at or above it. An absent version is unknown and counts as neither.
func onlyBelow(accepted map[uint16]bool, min uint16) bool {
	below := false
	for v, ok := range accepted {
		if ok && v >= min {
			return false
		}
		below = below || ok
	}
	return below
}
