// Package trace finds where on the way to a target a TCP connection stops,
// without privileges: it sends the target's own SYN with a rising TTL and
// reads the ICMP errors that routers send back from the socket's error queue
// (IP_RECVERR / IPV6_RECVERR), as tcptraceroute does with raw sockets. It
// works on Linux (the ICMP errors of a connecting TCP socket reach its error
// queue since 5.8); elsewhere Run says it cannot.
package trace

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Defaults of Options.
const (
	DefaultMaxHops    = 16
	DefaultHopTimeout = time.Second
	DefaultSilentHops = 3
)

// Options bound one trace.
type Options struct {
	MaxHops    int           // highest TTL tried
	HopTimeout time.Duration // how long one TTL waits for an answer
	// SilentHops ends the trace after this many hops in a row that did not
	// answer: past a dropping firewall nothing more will.
	SilentHops int
}

func (o Options) withDefaults() Options {
	if o.MaxHops <= 0 {
		o.MaxHops = DefaultMaxHops
	}
	if o.HopTimeout <= 0 {
		o.HopTimeout = DefaultHopTimeout
	}
	if o.SilentHops <= 0 {
		o.SilentHops = DefaultSilentHops
	}
	return o
}

// Hop is what one TTL brought back.
type Hop struct {
	TTL  int
	Addr netip.Addr    // who answered; invalid when nothing did
	RTT  time.Duration // until the answer
	// ICMP names the error the hop sent: "time exceeded", or why it
	// rejected the SYN ("admin prohibited", "host unreachable", ...).
	// Empty when the target itself answered or nothing did.
	ICMP string
	// Reached is set when the target answered the SYN: a SYN-ACK
	// (Refused false) or a reset (Refused true).
	Reached bool
	Refused bool
}

// Answered reports whether anything came back for this TTL.
func (h Hop) Answered() bool { return h.Addr.IsValid() }

// Rejected reports a hop that refused to forward the SYN.
func (h Hop) Rejected() bool { return h.ICMP != "" && h.ICMP != icmpTimeExceeded }

func (h Hop) String() string {
	switch {
	case !h.Answered():
		return fmt.Sprintf("%d *", h.TTL)
	case h.Reached && h.Refused:
		return fmt.Sprintf("%d %s %s (the target, reset)", h.TTL, h.Addr, h.RTT.Round(10*time.Microsecond))
	case h.Reached:
		return fmt.Sprintf("%d %s %s (the target)", h.TTL, h.Addr, h.RTT.Round(10*time.Microsecond))
	}
	return fmt.Sprintf("%d %s %s %s", h.TTL, h.Addr, h.RTT.Round(10*time.Microsecond), h.ICMP)
}

// Result is one trace to a target.
type Result struct {
	Target netip.AddrPort
	Start  time.Time
	Hops   []Hop
}

// Reached reports whether the SYN reached the target.
func (r *Result) Reached() bool {
	return len(r.Hops) > 0 && r.Hops[len(r.Hops)-1].Reached
}

// LastAnswered is the highest hop that answered; ok is false when none did.
func (r *Result) LastAnswered() (h Hop, ok bool) {
	for i := len(r.Hops) - 1; i >= 0; i-- {
		if r.Hops[i].Answered() {
			return r.Hops[i], true
		}
	}
	return Hop{}, false
}

// Verdict says in one line where the path stops: "no answer past hop 2
// (10.200.1.1)", "rejected by hop 3 (10.200.2.2) with admin prohibited",
// "reached the target at hop 4".
func (r *Result) Verdict() string {
	if len(r.Hops) == 0 {
		return "no trace"
	}
	last := r.Hops[len(r.Hops)-1]
	switch {
	case last.Reached && last.Refused:
		return fmt.Sprintf("the SYN reaches %s at hop %d, which resets it", last.Addr, last.TTL)
	case last.Reached:
		return fmt.Sprintf("reached the target at hop %d: the TCP path is open", last.TTL)
	case last.Rejected():
		// A router that rejects the SYN at TTL n+1 answered TTL n with
		// time exceeded: it is hop n, not n+1.
		hop := last.TTL
		for _, h := range r.Hops {
			if h.Addr == last.Addr {
				hop = h.TTL
				break
			}
		}
		return fmt.Sprintf("rejected by hop %d (%s) with %s", hop, last.Addr, last.ICMP)
	}
	h, ok := r.LastAnswered()
	if !ok {
		return fmt.Sprintf("no answer from any of %d hops: the first router drops the SYN or sends no ICMP", len(r.Hops))
	}
	return fmt.Sprintf("no answer past hop %d (%s)", h.TTL, h.Addr)
}

// String is the hops, one per line, and the verdict.
func (r *Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "trace to %s: %s\n", r.Target, r.Verdict())
	for _, h := range r.Hops {
		b.WriteString("  " + h.String() + "\n")
	}
	return b.String()
}

// ErrUnsupported is returned where the kernel cannot trace without
// privileges (not Linux, or a kernel that refuses IP_RECVERR on TCP).
var ErrUnsupported = errors.New("path trace: this system cannot read ICMP errors of an unprivileged TCP socket")

// Run traces the path to dst: for TTL 1, 2, ... a SYN to dst, until the
// target answers, a hop rejects it, SilentHops hops in a row stay silent,
// MaxHops is reached or ctx ends. A trace cut short by ctx returns what it
// has with ctx's error.
func Run(ctx context.Context, dst netip.AddrPort, o Options) (*Result, error) {
	o = o.withDefaults()
	r := &Result{Target: dst, Start: time.Now()}
	silent := 0
	for ttl := 1; ttl <= o.MaxHops; ttl++ {
		if err := ctx.Err(); err != nil {
			return r, err
		}
		h, err := probeHop(ctx, dst, ttl, o.HopTimeout)
		if err != nil {
			return r, err
		}
		r.Hops = append(r.Hops, h)
		if h.Reached || h.Rejected() {
			break
		}
		if h.Answered() {
			silent = 0
		} else if silent++; silent >= o.SilentHops {
			break
		}
	}
	return r, nil
}

const icmpTimeExceeded = "time exceeded"

// icmpName names an ICMP (v4) or ICMPv6 error by type and code.
func icmpName(v6 bool, typ, code uint8) string {
	if v6 {
		switch typ {
		case 3:
			return icmpTimeExceeded
		case 1:
			switch code {
			case 0:
				return "no route"
			case 1:
				return "admin prohibited"
			case 3:
				return "address unreachable"
			case 4:
				return "port unreachable"
			case 5, 6:
				return "policy rejected"
			}
			return fmt.Sprintf("destination unreachable (code %d)", code)
		}
		return fmt.Sprintf("ICMPv6 type %d code %d", typ, code)
	}
	switch typ {
	case 11:
		return icmpTimeExceeded
	case 3:
		switch code {
		case 0:
			return "network unreachable"
		case 1:
			return "host unreachable"
		case 2:
			return "protocol unreachable"
		case 3:
			return "port unreachable"
		case 9, 10, 13:
			return "admin prohibited"
		}
		return fmt.Sprintf("destination unreachable (code %d)", code)
	}
	return fmt.Sprintf("ICMP type %d code %d", typ, code)
}
