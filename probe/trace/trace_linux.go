package trace

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// pollSlice bounds one wait, so a cancelled ctx ends a hop promptly.
const pollSlice = 100 * time.Millisecond

// probeHop sends one SYN to dst with the given TTL and waits for what comes
// back: an ICMP error in the socket's error queue (a router on the way), a
// SYN-ACK or a reset (the target), or nothing within timeout.
func probeHop(ctx context.Context, dst netip.AddrPort, ttl int, timeout time.Duration) (Hop, error) {
	h := Hop{TTL: ttl}
	addr := dst.Addr().Unmap()
	v6 := addr.Is6()
	fd, err := openSocket(v6, ttl)
	if err != nil {
		return h, err
	}
	defer unix.Close(fd)
	var sa unix.Sockaddr
	if v6 {
		sa = &unix.SockaddrInet6{Port: int(dst.Port()), Addr: addr.As16()}
	} else {
		sa = &unix.SockaddrInet4{Port: int(dst.Port()), Addr: addr.As4()}
	}
	start := time.Now()
	if err := unix.Connect(fd, sa); err != nil && !errors.Is(err, unix.EINPROGRESS) {
		return h, fmt.Errorf("path trace: connect to %s: %w", dst, err)
	}
	deadline := start.Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	for {
		wait := min(time.Until(deadline), pollSlice)
		if wait <= 0 || ctx.Err() != nil {
			return h, nil // no answer at this TTL
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		n, err := unix.Poll(fds, int(wait.Milliseconds())+1)
		if errors.Is(err, unix.EINTR) || n == 0 {
			continue
		}
		if err != nil {
			return h, fmt.Errorf("path trace: poll: %w", err)
		}
		h.RTT = time.Since(start)
		if fds[0].Revents&unix.POLLERR != 0 {
			if ok, err := readErrQueue(fd, &h); err != nil || ok {
				return h, err
			}
		}
		soerr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			return h, fmt.Errorf("path trace: SO_ERROR: %w", err)
		}
		switch unix.Errno(soerr) {
		case 0:
			if fds[0].Revents&unix.POLLOUT == 0 {
				continue
			}
			h.Addr, h.Reached = addr, true
		case unix.ECONNREFUSED:
			h.Addr, h.Reached, h.Refused = addr, true, true
		default:
			// An error without an ICMP message queued (a local route
			// vanished): the trace cannot say more about this hop.
			return h, fmt.Errorf("path trace: hop %d: %w", ttl, unix.Errno(soerr))
		}
		return h, nil
	}
}

// openSocket returns a non-blocking TCP socket that sends with ttl and
// queues the ICMP errors it receives.
func openSocket(v6 bool, ttl int) (int, error) {
	family, level, ttlOpt, recverr := unix.AF_INET, unix.IPPROTO_IP, unix.IP_TTL, unix.IP_RECVERR
	if v6 {
		family, level, ttlOpt, recverr = unix.AF_INET6, unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, unix.IPV6_RECVERR
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return -1, fmt.Errorf("path trace: socket: %w", err)
	}
	if err := unix.SetsockoptInt(fd, level, ttlOpt, ttl); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("path trace: setting the TTL: %w", err)
	}
	if err := unix.SetsockoptInt(fd, level, recverr, 1); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	return fd, nil
}

// readErrQueue reads one queued ICMP error into h; ok is false when the
// queue held none.
func readErrQueue(fd int, h *Hop) (ok bool, _ error) {
	var payload [64]byte
	oob := make([]byte, 512)
	_, oobn, _, _, err := unix.Recvmsg(fd, payload[:], oob, unix.MSG_ERRQUEUE)
	if errors.Is(err, unix.EAGAIN) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("path trace: reading the error queue: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return false, fmt.Errorf("path trace: %w", err)
	}
	for _, m := range msgs {
		if e, ok := parseExtendedErr(m.Header.Level, m.Header.Type, m.Data); ok {
			h.Addr, h.ICMP = e.offender, e.icmp
			return true, nil
		}
	}
	return false, nil
}

// extendedErr is an ICMP error as the kernel queues it.
type extendedErr struct {
	offender netip.Addr
	icmp     string
}

// parseExtendedErr reads a control message of the error queue: a struct
// sock_extended_err followed by the offender's sockaddr (SO_EE_OFFENDER).
// Only errors that came in an ICMP or ICMPv6 message count.
func parseExtendedErr(level, typ int32, data []byte) (extendedErr, bool) {
	const eeLen = 16 // sizeof(struct sock_extended_err)
	v6 := level == unix.IPPROTO_IPV6 && typ == unix.IPV6_RECVERR
	if !v6 && (level != unix.IPPROTO_IP || typ != unix.IP_RECVERR) || len(data) < eeLen+4 {
		return extendedErr{}, false
	}
	origin, icmpType, icmpCode := data[4], data[5], data[6]
	if origin != unix.SO_EE_ORIGIN_ICMP && origin != unix.SO_EE_ORIGIN_ICMP6 {
		return extendedErr{}, false
	}
	sa := data[eeLen:]
	var offender netip.Addr
	switch binary.NativeEndian.Uint16(sa[0:2]) {
	case unix.AF_INET:
		if len(sa) >= 8 {
			offender = netip.AddrFrom4([4]byte(sa[4:8]))
		}
	case unix.AF_INET6:
		if len(sa) >= 24 {
			offender = netip.AddrFrom16([16]byte(sa[8:24])).Unmap()
		}
	}
	if !offender.IsValid() {
		return extendedErr{}, false
	}
	return extendedErr{offender: offender, icmp: icmpName(origin == unix.SO_EE_ORIGIN_ICMP6, icmpType, icmpCode)}, true
}
