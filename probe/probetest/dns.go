package probetest

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Entry is what DNSServer answers for one name.
type Entry struct {
	// A and AAAA are the addresses answered for A and AAAA queries, with a
	// TTL of 60 seconds. A name with no address of the queried type gets
	// NOERROR with an empty answer (NODATA).
	A, AAAA []string
	// Rcode, when not 0 (NOERROR), is answered for every query type with
	// no records, e.g. dns.RcodeNameError, dns.RcodeServerFailure or
	// dns.RcodeRefused.
	Rcode int
	// Drop makes the server never answer, for timeout tests.
	Drop bool
	// Delay makes the server wait this long before answering. A delayed
	// answer holds up only its own query (and later queries on the same
	// TCP connection), and ends early, unanswered, when the server closes.
	Delay time.Duration
	// Truncate makes the server answer UDP queries with the TC bit set and
	// no records, so the client retries over TCP, where it gets the real
	// answer.
	Truncate bool
}

// Records maps names to entries. Names are case-insensitive, with or
// without the trailing dot. A name that is not in Records is answered
// NXDOMAIN.
type Records map[string]Entry

// DNSServer is an in-process DNS server that serves UDP and TCP on the
// same 127.0.0.1 port.
type DNSServer struct {
	// Addr is "127.0.0.1:port", for UDP and TCP alike.
	Addr string
	// Port is the port.
	Port int

	mu      sync.Mutex
	records map[string]Entry // keyed by canonical name
	queries map[queryKey]int
	clients map[queryKey][]string // the source address of each query

	udp, tcp  *dns.Server
	done      chan struct{} // closed by Close; ends delays
	closeOnce sync.Once
}

type queryKey struct {
	name    string
	qtype   uint16
	network string
}

// NewDNSServer starts a DNS server for records on 127.0.0.1 and closes it
// when the test ends. Its addresses must be IP literals of the right
// family.
func NewDNSServer(t testing.TB, records Records) *DNSServer {
	t.Helper()
	s := &DNSServer{
		records: make(map[string]Entry, len(records)),
		queries: make(map[queryKey]int),
		clients: make(map[queryKey][]string),
		done:    make(chan struct{}),
	}
	for name, e := range records {
		if err := checkEntry(e); err != nil {
			t.Fatalf("probetest: DNS server: record %q: %v", name, err)
		}
		s.records[canonicalName(name)] = e
	}
	pc, ln, err := listenUDPAndTCP()
	if err != nil {
		t.Fatalf("probetest: DNS server: %v", err)
	}
	s.Addr = pc.LocalAddr().String()
	s.Port = pc.LocalAddr().(*net.UDPAddr).Port
	s.udp = &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(s.serveDNS)}
	s.tcp = &dns.Server{Listener: ln, Handler: dns.HandlerFunc(s.serveDNS)}
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		if err := startDNS(srv); err != nil {
			s.Close()
			_ = pc.Close()
			_ = ln.Close()
			t.Fatalf("probetest: DNS server: %v", err)
		}
	}
	t.Cleanup(s.Close)
	return s
}

// Set replaces the entry for name while the server runs. It is safe to call
// from any goroutine, and panics when an address is not an IP literal of
// the right family.
func (s *DNSServer) Set(name string, e Entry) {
	if err := checkEntry(e); err != nil {
		panic(fmt.Sprintf("probetest: DNS server: record %q: %v", name, err))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records[canonicalName(name)] = e
}

// Clients returns the source addresses ("127.0.0.1:port") of the queries
// for name and qtype that arrived over network, in arrival order.
func (s *DNSServer) Clients(name string, qtype uint16, network string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.clients[queryKey{canonicalName(name), qtype, network}])
}

// Queries returns how many queries for name and qtype (such as dns.TypeA)
// arrived over network, "udp" or "tcp".
func (s *DNSServer) Queries(name string, qtype uint16, network string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries[queryKey{canonicalName(name), qtype, network}]
}

// Close stops the server and waits for its goroutines, cutting delayed
// answers short. It is safe to call more than once.
func (s *DNSServer) Close() {
	s.closeOnce.Do(func() {
		close(s.done)
		for _, srv := range []*dns.Server{s.udp, s.tcp} {
			if srv != nil {
				_ = srv.Shutdown() // an error means it never started: nothing to wait for
			}
		}
	})
}

func (s *DNSServer) serveDNS(w dns.ResponseWriter, req *dns.Msg) {
	if len(req.Question) != 1 {
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeFormatError)
		_ = w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	network := w.RemoteAddr().Network() // "udp" or "tcp"
	name := canonicalName(q.Name)
	s.mu.Lock()
	s.queries[queryKey{name, q.Qtype, network}]++
	s.clients[queryKey{name, q.Qtype, network}] = append(s.clients[queryKey{name, q.Qtype, network}], w.RemoteAddr().String())
	e, found := s.records[name]
	s.mu.Unlock()

	if e.Drop {
		return
	}
	if e.Delay > 0 {
		timer := time.NewTimer(e.Delay)
		select {
		case <-timer.C:
		case <-s.done:
			timer.Stop()
			return
		}
	}
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	m.RecursionAvailable = true
	switch {
	case !found:
		m.Rcode = dns.RcodeNameError
	case e.Rcode != dns.RcodeSuccess:
		m.Rcode = e.Rcode
	case e.Truncate && network == "udp":
		m.Truncated = true
	default:
		m.Answer = answers(q, e)
	}
	_ = w.WriteMsg(m)
}

// answers returns the records of e that answer q.
func answers(q dns.Question, e Entry) []dns.RR {
	hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Rrtype: q.Qtype, Ttl: 60}
	var rrs []dns.RR
	switch q.Qtype {
	case dns.TypeA:
		for _, a := range e.A {
			rrs = append(rrs, &dns.A{Hdr: hdr, A: net.ParseIP(a).To4()})
		}
	case dns.TypeAAAA:
		for _, a := range e.AAAA {
			rrs = append(rrs, &dns.AAAA{Hdr: hdr, AAAA: net.ParseIP(a)})
		}
	}
	return rrs
}

func checkEntry(e Entry) error {
	for _, a := range e.A {
		if ip := net.ParseIP(a); ip == nil || ip.To4() == nil {
			return fmt.Errorf("A %q is not an IPv4 address", a)
		}
	}
	for _, a := range e.AAAA {
		if ip := net.ParseIP(a); ip == nil || ip.To4() != nil {
			return fmt.Errorf("AAAA %q is not an IPv6 address", a)
		}
	}
	return nil
}

func canonicalName(name string) string {
	return strings.ToLower(dns.Fqdn(name))
}

// listenUDPAndTCP opens a UDP socket and a TCP listener on the same
// 127.0.0.1 port. The UDP port is chosen by the kernel; when its TCP twin is
// taken by another process, it tries another.
func listenUDPAndTCP() (net.PacketConn, net.Listener, error) {
	var errs []error
	for range 10 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, err
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, ln, nil
		}
		_ = pc.Close()
		errs = append(errs, err)
	}
	return nil, nil, fmt.Errorf("no port free for both UDP and TCP: %w", errors.Join(errs...))
}

// startDNS starts srv and returns once it is serving, so that Shutdown
// finds it started.
func startDNS(srv *dns.Server) error {
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	errc := make(chan error, 1)
	go func() { errc <- srv.ActivateAndServe() }()
	select {
	case <-started:
		return nil
	case err := <-errc:
		return err
	}
}
