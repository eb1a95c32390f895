package trace

import (
	"context"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Control messages read from the error queue of real traces through a chain
// of router namespaces (10.210.x / fd00:210:x), unprivileged, on Linux 6.18.
var recorded = []struct {
	name       string
	level, typ int32
	hex        string
	addr, icmp string
	wantParsed bool
}{
	{"v4 time exceeded from hop 1", unix.IPPROTO_IP, unix.IP_RECVERR,
		"71000000020b00000000000000000000020000000ad201020000000000000000", "10.210.1.2", "time exceeded", true},
	{"v4 admin prohibited (iptables REJECT --reject-with icmp-admin-prohibited)", unix.IPPROTO_IP, unix.IP_RECVERR,
		"7100000002030d000000000000000000020000000ad203020000000000000000", "10.210.3.2", "admin prohibited", true},
	{"v6 time exceeded from hop 1", unix.IPPROTO_IPV6, unix.IPV6_RECVERR,
		"710000000303000000000000000000000a00000000000000fd00021000010000000000000000000200000000", "fd00:210:1::2", "time exceeded", true},
	{"v6 admin prohibited (ip6tables REJECT --reject-with adm-prohibited)", unix.IPPROTO_IPV6, unix.IPV6_RECVERR,
		"0d0000000301010000000000000000000a00000000000000fd00021000030000000000000000000200000000", "fd00:210:3::2", "admin prohibited", true},
	// The same bytes under another control message type, and a local
	// error (origin SO_EE_ORIGIN_LOCAL), are not ICMP errors.
	{"other cmsg type", unix.IPPROTO_IP, unix.IP_TTL,
		"71000000020b00000000000000000000020000000ad201020000000000000000", "", "", false},
	{"local origin", unix.IPPROTO_IP, unix.IP_RECVERR,
		"5a000000010000000000000000000000000000000000000000000000000000000", "", "", false},
	{"truncated", unix.IPPROTO_IP, unix.IP_RECVERR, "71000000020b0000", "", "", false},
}

func TestParseExtendedErr(t *testing.T) {
	for _, tt := range recorded {
		t.Run(tt.name, func(t *testing.T) {
			data, err := hex.DecodeString(tt.hex[:len(tt.hex)&^1])
			if err != nil {
				t.Fatal(err)
			}
			e, ok := parseExtendedErr(tt.level, tt.typ, data)
			if ok != tt.wantParsed {
				t.Fatalf("parsed %v, want %v (%+v)", ok, tt.wantParsed, e)
			}
			if !ok {
				return
			}
			if e.offender != netip.MustParseAddr(tt.addr) || e.icmp != tt.icmp {
				t.Errorf("got %s %q, want %s %q", e.offender, e.icmp, tt.addr, tt.icmp)
			}
		})
	}
}

func TestVerdict(t *testing.T) {
	a := netip.MustParseAddr
	ms := time.Millisecond
	tests := []struct {
		name string
		hops []Hop
		want string
	}{
		{"dropped after hop 2", []Hop{{TTL: 1, Addr: a("10.210.1.2"), RTT: ms, ICMP: "time exceeded"}, {TTL: 2, Addr: a("10.210.2.2"), RTT: ms, ICMP: "time exceeded"}, {TTL: 3}, {TTL: 4}, {TTL: 5}},
			"no answer past hop 2 (10.210.2.2)"},
		{"rejected by the third router", []Hop{{TTL: 1, Addr: a("10.210.1.2"), ICMP: "time exceeded"}, {TTL: 2, Addr: a("10.210.2.2"), ICMP: "time exceeded"}, {TTL: 3, Addr: a("10.210.3.2"), ICMP: "time exceeded"}, {TTL: 4, Addr: a("10.210.3.2"), ICMP: "admin prohibited"}},
			"rejected by hop 3 (10.210.3.2) with admin prohibited"},
		{"rejected by a router not seen before", []Hop{{TTL: 1}, {TTL: 2, Addr: a("10.210.3.2"), ICMP: "host unreachable"}},
			"rejected by hop 2 (10.210.3.2) with host unreachable"},
		{"reached", []Hop{{TTL: 1, Addr: a("10.210.1.2"), ICMP: "time exceeded"}, {TTL: 2, Addr: a("10.210.4.2"), Reached: true}},
			"reached the target at hop 2: the TCP path is open"},
		{"reset by the target", []Hop{{TTL: 1, Addr: a("10.210.4.2"), Reached: true, Refused: true}},
			"the SYN reaches 10.210.4.2 at hop 1, which resets it"},
		{"silent from the start", []Hop{{TTL: 1}, {TTL: 2}, {TTL: 3}},
			"no answer from any of 3 hops: the first router drops the SYN or sends no ICMP"},
		{"empty", nil, "no trace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Result{Target: netip.MustParseAddrPort("10.210.4.2:8443"), Hops: tt.hops}
			if got := r.Verdict(); got != tt.want {
				t.Errorf("verdict %q, want %q", got, tt.want)
			}
		})
	}
}

func TestICMPNames(t *testing.T) {
	for _, tt := range []struct {
		v6        bool
		typ, code uint8
		want      string
	}{
		{false, 11, 0, "time exceeded"}, {false, 3, 13, "admin prohibited"}, {false, 3, 1, "host unreachable"},
		{false, 3, 0, "network unreachable"}, {false, 3, 3, "port unreachable"}, {false, 5, 1, "ICMP type 5 code 1"},
		{true, 3, 0, "time exceeded"}, {true, 1, 1, "admin prohibited"}, {true, 1, 3, "address unreachable"},
		{true, 1, 0, "no route"}, {true, 1, 9, "destination unreachable (code 9)"},
	} {
		if got := icmpName(tt.v6, tt.typ, tt.code); got != tt.want {
			t.Errorf("icmpName(%v, %d, %d) = %q, want %q", tt.v6, tt.typ, tt.code, got, tt.want)
		}
	}
}

// TestRunLoopback traces to a listening and to a closed loopback port: the
// target answers at hop 1, with a SYN-ACK or a reset.
func TestRunLoopback(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	open := netip.MustParseAddrPort(ln.Addr().String())
	r, err := Run(context.Background(), open, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Reached() || len(r.Hops) != 1 || r.Hops[0].Refused || r.Hops[0].Addr != open.Addr() {
		t.Errorf("open port: %s", r)
	}
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := netip.MustParseAddrPort(ln2.Addr().String())
	ln2.Close()
	r, err = Run(context.Background(), closed, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Reached() || !r.Hops[0].Refused || r.Verdict() != "the SYN reaches 127.0.0.1 at hop 1, which resets it" {
		t.Errorf("closed port: %s", r)
	}
	// A cancelled context ends the trace with its error.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, open, Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled trace: %v", err)
	}
}
