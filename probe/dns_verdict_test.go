package probe

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/reachd/reachd/configs"
	"github.com/reachd/reachd/probe/probetest"
	"github.com/reachd/reachd/targets"
)

// udpDNS serves handle on a UDP port of 127.0.0.1 only, and returns its
// address; TCP on that port is whatever the test puts there.
func udpDNS(t *testing.T, handle dns.HandlerFunc) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: handle, NotifyStartedFunc: func() { close(started) }}
	done := make(chan struct{})
	go func() { defer close(done); srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { srv.Shutdown(); <-done })
	return pc.LocalAddr().String()
}

// answerA answers req with one A record 127.0.0.1 for name and type qtype
// in the question section, whatever was asked.
func answerA(w dns.ResponseWriter, req *dns.Msg, name string, qtype uint16) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Question[0].Name, m.Question[0].Qtype = name, qtype
	m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(127, 0, 0, 1)}}
	w.WriteMsg(m)
}

func TestDNSAnswerForAnotherQuestion(t *testing.T) {
	l := newLab(t)
	otherName := udpDNS(t, func(w dns.ResponseWriter, req *dns.Msg) { answerA(w, req, "other.reachd.test.", req.Question[0].Qtype) })
	otherType := udpDNS(t, func(w dns.ResponseWriter, req *dns.Msg) { answerA(w, req, req.Question[0].Name, dns.TypeMX) })
	tcpOnly := func(t *targets.Target) { t.Checks = []string{"dns"} }
	for _, tt := range []struct {
		name, server, detail string
	}{
		{"another name", otherName, "answered a question about other.reachd.test. A, not the q.reachd.test. A asked"},
		{"another type", otherType, "answered a question about q.reachd.test. MX, not the q.reachd.test. A asked"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := l.config()
			cfg.Resolvers[0].Servers = []string{tt.server}
			r := l.probe(target("q.reachd.test", 443, tcpOnly), configs.Path{Name: "direct"}, cfg)
			assertOutcome(t, r, StageDNS, DNSError, tt.server+" "+tt.detail)
		})
	}
}

func TestDNSTruncatedAndTCPFails(t *testing.T) {
	l := newLab(t)
	truncated := func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		m.Truncated = true
		w.WriteMsg(m)
	}
	refusing := udpDNS(t, truncated) // nothing listens on its TCP port
	closing := udpDNS(t, truncated)
	ln, err := net.Listen("tcp", closing)
	if err != nil {
		t.Fatal(err)
	}
	probetest.ServeRaw(t, ln, readQueryAndClose)
	silent := udpDNS(t, truncated)
	ln, err = net.Listen("tcp", silent)
	if err != nil {
		t.Fatal(err)
	}
	probetest.ServeRaw(t, ln, probetest.Hold)
	for _, tt := range []struct {
		name, server string
		reason       Reason
		detail       string
	}{
		{"TCP silent", silent, DNSTimeout, "the UDP answer was truncated and TCP to " + silent + " got no answer"},
		{"TCP refused", refusing, DNSError, "the UDP answer was truncated and TCP to " + refusing + " failed: connection refused"},
		{"TCP closed without an answer", closing, DNSError, "the UDP answer was truncated and TCP to " + closing + " failed: the server closed the connection without an answer"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := l.config()
			cfg.Resolvers[0].Servers = []string{tt.server}
			r := l.probe(target("big.reachd.test", 443, func(t *targets.Target) { t.Checks, t.Timeout = []string{"dns"}, 500*time.Millisecond }), configs.Path{Name: "direct"}, cfg)
			assertOutcome(t, r, StageDNS, tt.reason, tt.detail)
		})
	}
}

// readQueryAndClose reads one DNS-over-TCP query and closes the
// connection without an answer (a FIN, not a reset: nothing is left unread).
func readQueryAndClose(c net.Conn) {
	var n [2]byte
	if _, err := io.ReadFull(c, n[:]); err == nil {
		io.ReadFull(c, make([]byte, binary.BigEndian.Uint16(n[:])))
	}
	c.Close()
}

// TestLookupAsksBothOnOneSocket: the dns stage sends A and AAAA together
// from one UDP socket, as stub resolvers do, and each question moves on
// to the next server on its own: an AAAA SERVFAIL at the first server is
// asked again at the second, the A answer of the first stands.
func TestLookupAsksBothOnOneSocket(t *testing.T) {
	srv := probetest.NewDNSServer(t, probetest.Records{"both.reachd.test": {A: []string{"127.0.0.1"}, AAAA: []string{"::1"}}})
	res := newResolver(configs.Resolver{Name: "lab", Servers: []string{srv.Addr}, Protocol: "udp"})
	addrs, err, both := res.lookup(context.Background(), "both.reachd.test")
	if err != nil || len(addrs) != 2 {
		t.Fatalf("lookup: %v %v", addrs, err)
	}
	a, aaaa := srv.Clients("both.reachd.test", dns.TypeA, "udp"), srv.Clients("both.reachd.test", dns.TypeAAAA, "udp")
	if len(a) != 1 || len(aaaa) != 1 || a[0] != aaaa[0] {
		t.Errorf("A asked from %v, AAAA from %v: want one query each, from one socket", a, aaaa)
	}
	if both[0].duration <= 0 || both[1].duration <= 0 {
		t.Errorf("durations %v %v", both[0].duration, both[1].duration)
	}

	var mu sync.Mutex
	asked := map[string]int{}
	serve := func(name string, servfailAAAA bool) dns.HandlerFunc {
		return func(w dns.ResponseWriter, req *dns.Msg) {
			q := req.Question[0]
			mu.Lock()
			asked[name+" "+dns.TypeToString[q.Qtype]]++
			mu.Unlock()
			if q.Qtype == dns.TypeAAAA && servfailAAAA {
				m := new(dns.Msg)
				m.SetRcode(req, dns.RcodeServerFailure)
				w.WriteMsg(m)
				return
			}
			if q.Qtype == dns.TypeA {
				answerA(w, req, q.Name, q.Qtype)
				return
			}
			m := new(dns.Msg)
			m.SetReply(req) // NODATA
			w.WriteMsg(m)
		}
	}
	first, second := udpDNS(t, serve("first", true)), udpDNS(t, serve("second", false))
	res = newResolver(configs.Resolver{Name: "lab", Servers: []string{first, second}, Protocol: "udp"})
	_, err, both = res.lookup(context.Background(), "split.reachd.test")
	if err != nil {
		t.Fatalf("lookup: %v", err)
	}
	if both[0].source != first || both[1].source != second || both[1].err != nil {
		t.Errorf("A from %q, AAAA from %q (%v); want the first server's A and the second's AAAA", both[0].source, both[1].source, both[1].err)
	}
	mu.Lock()
	defer mu.Unlock()
	if asked["first A"] != 1 || asked["first AAAA"] != 1 || asked["second A"] != 0 || asked["second AAAA"] != 1 {
		t.Errorf("queries %v: the A answered by the first server was asked again", asked)
	}
}
