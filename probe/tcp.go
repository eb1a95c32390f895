package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"time"
)

// dialer opens each TCP connection attempt.
var dialer = &net.Dialer{}

// FallbackDelay is how long the preferred family (IPv4) tries alone
// before the other family's first attempt starts beside it, as Go's
// dialer and RFC 8305 (Happy Eyeballs) do. Each family then has the whole
// time left: a fast v6 "network unreachable" does not shorten the v4
// attempt, and a slow v4 does not starve v6.
const FallbackDelay = 300 * time.Millisecond

// dialAddrs connects to the first address that answers (DESIGN §5): IPv4
// first, the other family in parallel after FallbackDelay or as soon as
// every IPv4 address failed. Addresses of one family are tried in turn,
// each with an equal share of the time left. When all fail, the reason is
// that of the attempt that got furthest and the detail names every
// attempt (DESIGN §6).
func dialAddrs(ctx context.Context, addrs []netip.Addr, port int) (net.Conn, *Error) {
	if len(addrs) == 0 {
		return nil, fail(TCPError, errors.New("no address to connect to"))
	}
	var v4, v6 []netip.AddrPort
	for _, ip := range addrs {
		if ip.Unmap().Is4() {
			v4 = append(v4, netip.AddrPortFrom(ip, uint16(port)))
		} else {
			v6 = append(v6, netip.AddrPortFrom(ip, uint16(port)))
		}
	}
	if len(v4) == 0 || len(v6) == 0 {
		conn, errs := dialSerial(ctx, append(v4, v6...))
		if conn != nil {
			return conn, nil
		}
		return nil, furthest(errs)
	}
	return dialParallel(ctx, v4, v6)
}

// dialParallel races the primary family against the fallback, which
// starts after FallbackDelay or when the primary gave up.
func dialParallel(ctx context.Context, primary, fallback []netip.AddrPort) (net.Conn, *Error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type outcome struct {
		conn    net.Conn
		errs    []error
		primary bool
	}
	results := make(chan outcome, 2)
	race := func(addrs []netip.AddrPort, primary bool) {
		conn, errs := dialSerial(ctx, addrs)
		results <- outcome{conn, errs, primary}
	}
	go race(primary, true)
	timer := time.NewTimer(FallbackDelay)
	defer timer.Stop()
	var errs [2][]error // primary, fallback
	startFallback := func() int {
		if fallback == nil {
			return 0
		}
		defer func() { fallback = nil }()
		if expired(ctx) { // the primary used up the time: say so, not "timeout"
			for _, ap := range fallback {
				errs[1] = append(errs[1], fmt.Errorf("%s not tried: no time was left", ap))
			}
			return 0
		}
		go race(fallback, false)
		return 1
	}
	var conn net.Conn
	for running := 1; running > 0; {
		select {
		case <-timer.C:
			running += startFallback()
		case o := <-results:
			running--
			switch {
			case o.conn != nil && conn == nil:
				conn = o.conn
				cancel() // the other attempt ends, and is waited for
			case o.conn != nil:
				o.conn.Close()
			case o.primary:
				errs[0] = o.errs
			default:
				errs[1] = o.errs
			}
			if o.primary && conn == nil {
				running += startFallback()
			}
		}
	}
	if conn != nil {
		return conn, nil
	}
	return nil, furthest(append(errs[0], errs[1]...))
}

// dialSerial tries addrs in turn, each with an equal share of the time
// left, and returns the first connection or every attempt's error.
func dialSerial(ctx context.Context, addrs []netip.AddrPort) (net.Conn, []error) {
	var errs []error
	for i, ap := range addrs {
		actx, cancel := shareOf(ctx, len(addrs)-i)
		conn, err := dialer.DialContext(actx, "tcp", ap.String())
		cancel()
		if err == nil {
			return conn, nil
		}
		if errors.Is(err, syscall.ECONNRESET) {
			// The handshake completed and the peer reset before connect
			// returned: the same event settle sees a moment later.
			err = resetAfterOpen(ap.String(), err)
		}
		errs = append(errs, err)
		if expired(ctx) {
			break
		}
	}
	return nil, errs
}

// expired reports a context that is done or past its deadline (a dial
// can time out a moment before its context's timer marks it done).
func expired(ctx context.Context) bool {
	d, ok := ctx.Deadline()
	return ctx.Err() != nil || ok && !time.Now().Before(d)
}

// resetAfterOpen words a reset of a connection that had just opened, the
// same whether it lands inside connect or in settle's read.
func resetAfterOpen(addr string, err error) error {
	return fmt.Errorf("connection to %s reset right after it opened: %w", addr, err)
}

// furthest classifies the attempt that got furthest (a packet that got
// somewhere beats one that never left the host; ties go to the earlier,
// preferred address) and names the others in the detail.
func furthest(errs []error) *Error {
	best := 0
	for i, err := range errs {
		if progress(err) > progress(errs[best]) {
			best = i
		}
	}
	e := classifyTCP(errs[best])
	if len(errs) > 1 {
		var others []string
		for i, err := range errs {
			if i != best {
				others = append(others, err.Error())
			}
		}
		e.Err = fmt.Errorf("%w; also %s", e.Err, strings.Join(others, "; "))
	}
	return e
}

// progress ranks how far an attempt got: 2 when a packet reached
// something (a timeout, a refusal, a reset), 0 when nothing left this
// host (no route, no usable source address, an address the kernel
// rejects), 1 for anything else.
func progress(err error) int {
	switch {
	case isTimeout(err), errors.Is(err, syscall.ECONNREFUSED), isReset(err):
		return 2
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, syscall.EINVAL), errors.Is(err, syscall.EADDRNOTAVAIL),
		errors.Is(err, syscall.EAFNOSUPPORT):
		return 0
	}
	return 1
}

// classifyTCP names a connect failure from its errno or timeout.
func classifyTCP(err error) *Error {
	switch {
	case isTimeout(err):
		return fail(TCPTimeout, err)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fail(TCPRefused, err)
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return fail(TCPUnreachable, err)
	case errors.Is(err, syscall.ECONNRESET):
		return fail(TCPReset, err)
	}
	return fail(TCPError, err)
}

// isTimeout reports a deadline or a timeout anywhere in err's chain.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) ||
		errors.As(err, &ne) && ne.Timeout()
}

// isReset reports a connection torn down by the peer or a middlebox.
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// SettleTime is how long a probe whose deepest check is tcp watches a new
// connection: a firewall or IPS that accepts and then resets shows as
// tcp_reset instead of a success.
const SettleTime = 100 * time.Millisecond

func settle(ctx context.Context, conn net.Conn, window time.Duration) *Error {
	deadline := time.Now().Add(window)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	conn.SetReadDeadline(deadline)
	var b [1]byte
	if _, err := conn.Read(b[:]); isReset(err) {
		return fail(TCPReset, resetAfterOpen(conn.RemoteAddr().String(), err))
	}
	return nil
}
