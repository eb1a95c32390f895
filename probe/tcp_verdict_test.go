package probe

import (
	"context"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reachd/reachd/configs"
	"github.com/reachd/reachd/probe/probetest"
	"github.com/reachd/reachd/targets"
)

// noRouteV6 is an IPv6 address the kernel refuses to connect to without
// sending a packet (a link-local address without a zone: EINVAL), as a
// site without IPv6 fails its AAAA addresses at once. Nothing leaves the
// machine, whatever its routes.
const noRouteV6 = "fe80::1"

// fullListener is a loopback port whose accept queue is full: the kernel
// drops further SYNs, so a connect to it times out (as at a site whose
// firewall drops the traffic), without leaving the machine.
func fullListener(t *testing.T) int {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	port := sa.(*syscall.SockaddrInet4).Port
	// Fill the queue: with a backlog of 0 one connection waiting for
	// accept is all it holds.
	for range 2 {
		if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 200*time.Millisecond); err == nil {
			t.Cleanup(func() { c.Close() })
		}
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 200*time.Millisecond); err == nil {
		c.Close()
		t.Fatal("the full listener still accepts connections")
	}
	return port
}

func TestDualStackVerdicts(t *testing.T) {
	l := newLab(t)
	tcpOnly := func(t *targets.Target) { t.Checks = []string{"dns", "tcp"} }
	timeout := func(t *targets.Target) { t.Timeout = time.Second }
	refused := closedPort(t)
	open := probetest.NewTarpit(t).Port
	v6ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	v6 := probetest.ServeRaw(t, v6ln, probetest.Hold)
	l.dns.Set("dual.reachd.test", probetest.Entry{A: []string{"127.0.0.1"}, AAAA: []string{noRouteV6}})
	l.dns.Set("v6works.reachd.test", probetest.Entry{A: []string{"127.0.0.1"}, AAAA: []string{"::1"}})

	for _, tt := range []struct {
		name   string
		target targets.Target
		reason Reason
		detail []string
	}{
		{"v4 refused beats v6 never sent", target("dual.reachd.test", refused, tcpOnly), TCPRefused,
			[]string{"127.0.0.1:" + strconv.Itoa(refused) + ": connect: connection refused", "also dial tcp [" + noRouteV6 + "]:" + strconv.Itoa(refused), "invalid argument"}},
		{"v4 connects while v6 is unusable", target("dual.reachd.test", open, tcpOnly), "", nil},
		{"v6 connects after v4 refused", target("v6works.reachd.test", v6.Port, tcpOnly), "", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := l.probe(tt.target, configs.Path{Name: "direct"}, l.config())
			assertDetails(t, r, StageTCP, tt.reason, tt.detail)
		})
	}

	t.Run("v4 dropped keeps the whole budget beside a v6 never sent", func(t *testing.T) {
		dropped := fullListener(t)
		tg := target("dual.reachd.test", dropped, tcpOnly, timeout)
		r := l.probe(tg, configs.Path{Name: "direct"}, l.config())
		assertDetails(t, r, StageTCP, TCPTimeout, []string{"127.0.0.1:" + strconv.Itoa(dropped), "i/o timeout", "also dial tcp [" + noRouteV6 + "]", "invalid argument"})
		// Cut to half by the failed v6 attempt, the stage would end at
		// about 0.5s; a v4 attempt alive to the deadline takes it all.
		if d := stageDuration(r, StageTCP); d < 900*time.Millisecond {
			t.Errorf("tcp stage took %v: the v4 attempt did not get the whole second", d)
		}
	})

	t.Run("v6 connects while v4 hangs", func(t *testing.T) {
		dropped := fullListener(t)
		ln, err := net.Listen("tcp", "[::1]:"+strconv.Itoa(dropped))
		if err != nil {
			t.Fatal(err)
		}
		probetest.ServeRaw(t, ln, probetest.Hold)
		r := l.probe(target("v6works.reachd.test", dropped, tcpOnly, timeout), configs.Path{Name: "direct"}, l.config())
		assertOutcome(t, r, "", "", "")
	})

	t.Run("a budget shorter than the fallback delay leaves v6 untried, and says so", func(t *testing.T) {
		dropped := fullListener(t)
		ctx, cancel := context.WithTimeout(t.Context(), FallbackDelay/3)
		defer cancel()
		conn, err := dialAddrs(ctx, []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr(noRouteV6)}, dropped)
		if conn != nil {
			conn.Close()
			t.Fatal("connected to a full listener")
		}
		if want := "[" + noRouteV6 + "]:" + strconv.Itoa(dropped) + " not tried: no time was left"; err.Reason != TCPTimeout || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want tcp_timeout naming %q", err, want)
		}
	})

	t.Run("proxy with a dual-stack name", func(t *testing.T) {
		l.dns.Set("proxy.reachd.test", probetest.Entry{A: []string{"127.0.0.1"}, AAAA: []string{noRouteV6}})
		proxy := &url.URL{Scheme: "http", Host: "proxy.reachd.test:" + strconv.Itoa(refused)}
		r := l.probe(target("ok.reachd.test", 443), configs.Path{Name: "p", Proxy: proxy}, l.config())
		assertDetails(t, r, StageProxy, ProxyUnreachable, []string{"connection refused", "also dial tcp [" + noRouteV6 + "]"})
	})
}

// assertDetails is assertOutcome with several expected parts of the detail.
func assertDetails(t *testing.T, r Result, stage Stage, reason Reason, details []string) {
	t.Helper()
	if len(details) == 0 {
		details = []string{""}
	}
	for _, d := range details {
		assertOutcome(t, r, stage, reason, d)
	}
}

func stageDuration(r Result, stage Stage) time.Duration {
	for _, s := range r.Stages {
		if s.Stage == stage {
			return s.Duration
		}
	}
	return 0
}

// TestFurthestAttempt ranks the attempts of a failed dial.
func TestFurthestAttempt(t *testing.T) {
	unreach := &net.OpError{Op: "dial", Net: "tcp", Err: &osSyscallError{"connect", syscall.ENETUNREACH}}
	timeout := &net.OpError{Op: "dial", Net: "tcp", Err: timeoutErr{}}
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: &osSyscallError{"connect", syscall.ECONNREFUSED}}
	for _, tt := range []struct {
		name string
		errs []error
		want Reason
	}{
		{"v4 timeout beats v6 unreachable", []error{timeout, unreach}, TCPTimeout},
		{"v6 refused beats v4 unreachable", []error{unreach, refused}, TCPRefused},
		{"a tie goes to the preferred family", []error{timeout, refused}, TCPTimeout},
		{"nothing left the host", []error{unreach, unreach}, TCPUnreachable},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := furthest(tt.errs); got.Reason != tt.want {
				t.Errorf("got %s (%v), want %s", got.Reason, got.Err, tt.want)
			}
		})
	}
}

type osSyscallError struct {
	call string
	err  syscall.Errno
}

func (e *osSyscallError) Error() string { return e.call + ": " + e.err.Error() }
func (e *osSyscallError) Unwrap() error { return e.err }

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }
