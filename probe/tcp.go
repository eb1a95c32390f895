package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"syscall"
	"time"
)

// dialer connects to the first address that answers, IPv4 first and the
// other family as fallback (DESIGN §5).
var dialer = &net.Dialer{}

func dialAddrs(ctx context.Context, addrs []netip.Addr, port int) (net.Conn, *Error) {
	ordered := slices.Clone(addrs)
	slices.SortStableFunc(ordered, func(a, b netip.Addr) int {
		switch {
		case a.Is4() == b.Is4():
			return 0
		case a.Is4():
			return -1
		}
		return 1
	})
	last := fail(TCPError, errors.New("no address to connect to")) // never nil, nil
	for i, ip := range ordered {
		actx, cancel := shareOf(ctx, len(ordered)-i)
		conn, err := dialer.DialContext(actx, "tcp", netip.AddrPortFrom(ip, uint16(port)).String())
		cancel()
		if err == nil {
			return conn, nil
		}
		last = classifyTCP(err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, last
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
		return fail(TCPReset, fmt.Errorf("connection to %s reset right after it opened: %w", conn.RemoteAddr(), err))
	}
	return nil
}
