package probetest

import (
	"context"
	"errors"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func exchange(t *testing.T, addr, network, name string, qtype uint16, timeout time.Duration) (*dns.Msg, error) {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	c := &dns.Client{Net: network, Timeout: timeout}
	r, _, err := c.Exchange(m, addr)
	return r, err
}

func answerAddrs(m *dns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		switch rr := rr.(type) {
		case *dns.A:
			out = append(out, rr.A.String())
		case *dns.AAAA:
			out = append(out, rr.AAAA.String())
		}
	}
	return out
}

func TestDNSAnswers(t *testing.T) {
	s := NewDNSServer(t, Records{
		"www.reachd.test":      {A: []string{"127.0.0.1", "127.0.0.2"}, AAAA: []string{"::1"}},
		"V4ONLY.reachd.test.":  {A: []string{"127.0.0.3"}},
		"servfail.reachd.test": {Rcode: dns.RcodeServerFailure},
		"refused.reachd.test":  {Rcode: dns.RcodeRefused},
		"nx.reachd.test":       {Rcode: dns.RcodeNameError},
	})
	tests := []struct {
		name      string
		qtype     uint16
		wantRcode int
		want      []string
	}{
		{"www.reachd.test", dns.TypeA, dns.RcodeSuccess, []string{"127.0.0.1", "127.0.0.2"}},
		{"WWW.Reachd.Test", dns.TypeAAAA, dns.RcodeSuccess, []string{"::1"}},
		{"v4only.reachd.test", dns.TypeA, dns.RcodeSuccess, []string{"127.0.0.3"}},
		{"v4only.reachd.test", dns.TypeAAAA, dns.RcodeSuccess, nil}, // NODATA
		{"v4only.reachd.test", dns.TypeMX, dns.RcodeSuccess, nil},
		{"missing.reachd.test", dns.TypeA, dns.RcodeNameError, nil},
		{"nx.reachd.test", dns.TypeA, dns.RcodeNameError, nil},
		{"servfail.reachd.test", dns.TypeA, dns.RcodeServerFailure, nil},
		{"refused.reachd.test", dns.TypeAAAA, dns.RcodeRefused, nil},
	}
	for _, tt := range tests {
		for _, network := range []string{"udp", "tcp"} {
			t.Run(network+"/"+tt.name+"/"+dns.TypeToString[tt.qtype], func(t *testing.T) {
				r, err := exchange(t, s.Addr, network, tt.name, tt.qtype, 2*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				if r.Rcode != tt.wantRcode {
					t.Errorf("rcode = %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tt.wantRcode])
				}
				if got := answerAddrs(r); !slices.Equal(got, tt.want) {
					t.Errorf("answers = %v, want %v", got, tt.want)
				}
				for _, rr := range r.Answer {
					if rr.Header().Ttl != 60 {
						t.Errorf("TTL %d", rr.Header().Ttl)
					}
				}
			})
		}
	}
	if got := s.Queries("WWW.reachd.test.", dns.TypeAAAA, "tcp"); got != 1 {
		t.Errorf("Queries(www AAAA tcp) = %d, want 1", got)
	}
}

func TestDNSTruncate(t *testing.T) {
	s := NewDNSServer(t, Records{"big.reachd.test": {A: []string{"127.0.0.9"}, Truncate: true}})

	t.Run("miekg client", func(t *testing.T) {
		r, err := exchange(t, s.Addr, "udp", "big.reachd.test", dns.TypeA, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if !r.Truncated || len(r.Answer) != 0 {
			t.Fatalf("UDP answer TC=%v answers=%v, want TC and none", r.Truncated, r.Answer)
		}
		r, err = exchange(t, s.Addr, "tcp", "big.reachd.test", dns.TypeA, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if r.Truncated || !slices.Equal(answerAddrs(r), []string{"127.0.0.9"}) {
			t.Fatalf("TCP answer TC=%v answers=%v", r.Truncated, r.Answer)
		}
		if u, c := s.Queries("big.reachd.test", dns.TypeA, "udp"), s.Queries("big.reachd.test", dns.TypeA, "tcp"); u != 1 || c != 1 {
			t.Fatalf("queries udp=%d tcp=%d, want 1 and 1", u, c)
		}
	})

	t.Run("go resolver", func(t *testing.T) {
		// The pure Go resolver retries over TCP by itself; Dial pins it
		// to this server whatever /etc/resolv.conf says.
		res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, s.Addr)
		}}
		udpBefore := s.Queries("big.reachd.test", dns.TypeA, "udp")
		tcpBefore := s.Queries("big.reachd.test", dns.TypeA, "tcp")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		addrs, err := res.LookupNetIP(ctx, "ip4", "big.reachd.test.")
		if err != nil {
			t.Fatal(err)
		}
		if len(addrs) != 1 || addrs[0].String() != "127.0.0.9" {
			t.Fatalf("addrs = %v", addrs)
		}
		if u := s.Queries("big.reachd.test", dns.TypeA, "udp") - udpBefore; u < 1 {
			t.Errorf("%d UDP queries", u)
		}
		if c := s.Queries("big.reachd.test", dns.TypeA, "tcp") - tcpBefore; c < 1 {
			t.Errorf("%d TCP queries, want a retry over TCP", c)
		}
	})
}

func TestDNSDropDelaySet(t *testing.T) {
	s := NewDNSServer(t, Records{
		"drop.reachd.test":  {A: []string{"127.0.0.1"}, Drop: true},
		"slow.reachd.test":  {A: []string{"127.0.0.1"}, Delay: 300 * time.Millisecond},
		"stuck.reachd.test": {A: []string{"127.0.0.1"}, Delay: time.Hour},
		"fast.reachd.test":  {A: []string{"127.0.0.4"}},
	})

	t.Run("drop times out", func(t *testing.T) {
		for _, network := range []string{"udp", "tcp"} {
			_, err := exchange(t, s.Addr, network, "drop.reachd.test", dns.TypeA, 200*time.Millisecond)
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Errorf("%s: err = %v, want a timeout", network, err)
			}
		}
	})

	t.Run("delay does not block other queries", func(t *testing.T) {
		start := time.Now()
		slow := make(chan error, 1)
		go func() {
			_, err := exchange(t, s.Addr, "udp", "slow.reachd.test", dns.TypeA, 5*time.Second)
			slow <- err
		}()
		r, err := exchange(t, s.Addr, "udp", "fast.reachd.test", dns.TypeA, 5*time.Second)
		if err != nil || len(r.Answer) != 1 {
			t.Fatalf("fast query: %v %v", r, err)
		}
		select {
		case err := <-slow:
			t.Fatalf("slow query finished before the fast one: %v", err)
		default:
		}
		if err := <-slow; err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < 300*time.Millisecond {
			t.Fatalf("slow query answered after %v", d)
		}
	})

	t.Run("set", func(t *testing.T) {
		s.Set("fast.reachd.test.", Entry{Rcode: dns.RcodeServerFailure})
		s.Set("new.reachd.test", Entry{AAAA: []string{"::1"}})
		r, err := exchange(t, s.Addr, "udp", "fast.reachd.test", dns.TypeA, 2*time.Second)
		if err != nil || r.Rcode != dns.RcodeServerFailure {
			t.Fatalf("after Set: %v %v", r, err)
		}
		r, err = exchange(t, s.Addr, "udp", "new.reachd.test", dns.TypeAAAA, 2*time.Second)
		if err != nil || !slices.Equal(answerAddrs(r), []string{"::1"}) {
			t.Fatalf("after Set: %v %v", r, err)
		}
	})

	t.Run("close cuts delays short", func(t *testing.T) {
		for _, network := range []string{"udp", "tcp"} {
			_, err := exchange(t, s.Addr, network, "stuck.reachd.test", dns.TypeA, 100*time.Millisecond)
			if err == nil {
				t.Fatalf("%s: stuck query answered", network)
			}
		}
		done := make(chan struct{})
		go func() {
			s.Close()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("Close waits for a delayed answer")
		}
	})
}
