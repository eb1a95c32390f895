package probe

import (
	"crypto/tls"
	"io"
	"net"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/goleak"

	"github.com/reachd/reachd/configs"
	"github.com/reachd/reachd/probe/probetest"
	"github.com/reachd/reachd/targets"
)

// hostileTimeout is the probe timeout of every hostile case; hangMargin is
// what a case may take beyond its bound before it counts as a hang. The
// margin is generous on purpose: this is a hang guard, not a speed test.
const (
	hostileTimeout = time.Second
	hangMargin     = 3 * time.Second
)

// hostileCase is one misbehaving endpoint and the failure it must give.
type hostileCase struct {
	name   string
	target targets.Target
	cfg    func(*configs.Config)
	path   *url.URL // a proxy; nil: direct
	stage  Stage
	reason Reason // empty: the probe must pass
	detail string
}

// runHostile probes c once and proves it ends classified, in time, and
// leaves no goroutine or file descriptor behind.
func runHostile(t *testing.T, l *lab, c hostileCase) {
	t.Helper()
	cfg := l.config()
	if c.cfg != nil {
		c.cfg(cfg)
	}
	// The prober and its Env (which loads the system roots) exist before
	// the count: only what the run itself opens is measured.
	path := configs.Path{Name: configs.DirectPath}
	if c.path != nil {
		path = configs.Path{Name: "proxy", Proxy: c.path}
	}
	p := New(c.target, path, NewEnv(cfg, "reachd-test"))
	ignore := goleak.IgnoreCurrent()
	before := fdCount(t)

	start := time.Now()
	r := p.Probe(t.Context())
	elapsed := time.Since(start)

	assertOutcome(t, r, c.stage, c.reason, c.detail)
	// The run is bounded by the timeout of its stages, then (on a first
	// run, even after a tls failure) the sweep's handshakes with a timeout
	// of their own: MaxRun.
	if elapsed > p.MaxRun()+hangMargin {
		t.Errorf("the run took %v, more than its bound %v: a hang", elapsed, p.MaxRun())
	}
	var failing time.Duration
	if n := len(r.Stages); n > 0 {
		failing = r.Stages[n-1].Duration
	}
	if failing > c.target.Timeout+hangMargin {
		t.Errorf("the last stage took %v, more than the timeout %v: a hang", failing, c.target.Timeout)
	}
	// Fewer after is no leak: the server side of an earlier case's
	// connections (the sweep's, which now follows the stages) may close
	// during the run.
	after := settleFDs(t, before)
	if after > before {
		t.Errorf("file descriptors: %d before the run, %d after: a leak", before, after)
	}
	goleak.VerifyNone(t, ignore)
	got := "success"
	if r.Err != nil {
		got = string(r.Err.Stage) + "/" + string(r.Err.Reason) + " (" + r.Err.Error() + ")"
	}
	t.Logf("outcome %s: run %v, last stage %v (timeout %v); fds %d before, %d after", got,
		elapsed.Round(time.Millisecond), failing.Round(time.Millisecond), c.target.Timeout, before, after)
}

// fdCount is the number of open file descriptors of this process.
func fdCount(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count file descriptors: %v", err)
	}
	return len(entries)
}

// settleFDs waits up to two seconds for the descriptor count to come back
// to want or below (closes on both ends of a loopback connection are asynchronous)
// and returns the last count.
func settleFDs(t *testing.T, want int) int {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		n := fdCount(t)
		if n <= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tlsRaw starts a raw TCP server that completes a TLS handshake as
// raw.reachd.test (issued by the lab CA) and then hands the connection to
// serve. wrap, when set, wraps the TCP connection under TLS. Each
// connection is closed when serve returns.
func tlsRaw(t *testing.T, l *lab, wrap func(net.Conn) net.Conn, serve func(*tls.Conn)) int {
	t.Helper()
	cert := l.ca.Issue(t, []string{"raw.reachd.test"}, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	conf := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}}
	l.dns.Set("raw.reachd.test", probetest.Entry{A: []string{"127.0.0.1"}})
	return rawServer(t, func(c net.Conn) {
		defer c.Close()
		var under net.Conn = c
		if wrap != nil {
			under = wrap(c)
		}
		tc := tls.Server(under, conf)
		if tc.Handshake() != nil {
			return
		}
		serve(tc)
	})
}

// dripConn writes one byte every 50 ms: a server (or a middlebox) that
// answers, but so slowly that the handshake never completes in time.
type dripConn struct{ net.Conn }

func (d dripConn) Write(b []byte) (int, error) {
	for i := range b {
		time.Sleep(50 * time.Millisecond)
		if _, err := d.Conn.Write(b[i : i+1]); err != nil {
			return i, err
		}
	}
	return len(b), nil
}

// rawDNS answers every UDP query with the packets answer makes of it; it
// stops and waits for its goroutine at cleanup. It returns the address.
func rawDNS(t *testing.T, answer func(query *dns.Msg, raw []byte) [][]byte) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 4096)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			q := new(dns.Msg)
			if q.Unpack(buf[:n]) != nil || len(q.Question) != 1 {
				continue
			}
			for _, p := range answer(q, buf[:n]) {
				pc.WriteTo(p, from)
			}
		}
	})
	t.Cleanup(func() {
		pc.Close()
		wg.Wait()
	})
	return pc.LocalAddr().String()
}

// reply is a well-formed answer to q: 127.0.0.1 for A, nothing for AAAA.
func reply(t *testing.T, q *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(q)
	if q.Question[0].Qtype == dns.TypeA {
		rr, err := dns.NewRR(q.Question[0].Name + " 60 IN A 127.0.0.1")
		if err != nil {
			t.Error(err)
			return m
		}
		m.Answer = append(m.Answer, rr)
	}
	return m
}

func pack(t *testing.T, m *dns.Msg) []byte {
	b, err := m.Pack()
	if err != nil {
		t.Error(err)
	}
	return b
}

func TestHostileTLSAndHTTP(t *testing.T) {
	l := newLab(t)
	bounded := func(tg *targets.Target) { tg.Timeout = hostileTimeout }

	// A real ServerHello, one byte every 50 ms: a handshake of a couple of
	// kilobytes would take minutes.
	drip := tlsRaw(t, l, func(c net.Conn) net.Conn { return dripConn{c} }, func(*tls.Conn) {})

	// The handshake completes, then the request is read and never answered.
	mute := tlsRaw(t, l, nil, func(tc *tls.Conn) { io.Copy(io.Discard, tc) })

	// A 50 MB body; the server counts what it got rid of before the probe
	// hung up.
	const huge = 50 << 20
	var written atomic.Int64
	big := tlsRaw(t, l, nil, func(tc *tls.Conn) {
		tc.Write([]byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 52428800\r\n\r\n"))
		chunk := []byte(strings.Repeat("x", 64<<10))
		for sent := 0; sent < huge; sent += len(chunk) {
			n, err := tc.Write(chunk)
			written.Add(int64(n))
			if err != nil {
				return
			}
		}
	})

	// Accepts and never speaks.
	tarpit := rawServer(t, func(c net.Conn) {
		defer c.Close()
		hold(c)
	})

	// Headers without end after a completed handshake.
	endless := tlsRaw(t, l, nil, func(tc *tls.Conn) {
		tc.Write([]byte("HTTP/1.1 200 OK\r\n"))
		line := []byte("X-Filler: " + strings.Repeat("x", 1000) + "\r\n")
		for {
			if _, err := tc.Write(line); err != nil {
				return
			}
		}
	})

	for _, c := range []hostileCase{
		{"tarpit", target("raw.reachd.test", tarpit, bounded), nil, nil, StageTLS, TLSTimeout, "handshake stalled"},
		{"endless headers", target("raw.reachd.test", endless, bounded), nil, nil, StageHTTP, HTTPError, "EOF"},
		{"slow-drip ServerHello", target("raw.reachd.test", drip, bounded), nil, nil, StageTLS, TLSTimeout, "handshake stalled"},
		{"handshake, then no HTTP answer", target("raw.reachd.test", mute, bounded), nil, nil, StageHTTP, HTTPTimeout, "timeout"},
		{"huge body, no body check", target("raw.reachd.test", big, bounded), nil, nil, "", "", ""},
		{"huge body, expect_body matches the first bytes", target("raw.reachd.test", big, bounded, func(tg *targets.Target) {
			tg.HTTP.ExpectBody = regexp.MustCompile("^x+$")
		}), nil, nil, "", "", ""},
		{"huge body, expect_body never matches", target("raw.reachd.test", big, bounded, func(tg *targets.Target) {
			tg.HTTP.ExpectBody = regexp.MustCompile("needle")
		}), nil, nil, StageHTTP, HTTPBodyMismatch, "first 65536 bytes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			written.Store(0)
			runHostile(t, l, c)
			if c.target.Port == big {
				// Socket buffers take some megabytes; the rest was never read.
				if n := written.Load(); n >= huge {
					t.Errorf("the server wrote all %d bytes: the probe read the whole body", n)
				} else {
					t.Logf("the server got %d of %d bytes out before the probe hung up", n, huge)
				}
			}
		})
	}
}

func TestHostileDNS(t *testing.T) {
	l := newLab(t)
	mismatched := rawDNS(t, func(q *dns.Msg, _ []byte) [][]byte {
		// Right question, right answer, wrong ID: a spoofing attempt or a
		// broken middlebox. Several of them, none acceptable.
		var out [][]byte
		for i := range 3 {
			m := reply(t, q)
			m.Id = q.Id ^ uint16(0x5a5a+i)
			out = append(out, pack(t, m))
		}
		return out
	})
	garbage := rawDNS(t, func(*dns.Msg, []byte) [][]byte {
		return [][]byte{[]byte("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff this is not a DNS message \x00\x01\x02")}
	})
	short := rawDNS(t, func(*dns.Msg, []byte) [][]byte {
		return [][]byte{{0x12, 0x34, 0x81}} // three bytes: less than a header
	})
	cut := rawDNS(t, func(q *dns.Msg, _ []byte) [][]byte {
		// The right ID and a header announcing an answer, but the packet
		// stops in the middle of that answer.
		m := reply(t, q)
		m.Answer = append(m.Answer, m.Answer...) // AAAA queries get an answer to cut too
		if len(m.Answer) == 0 {
			rr, _ := dns.NewRR(q.Question[0].Name + " 60 IN AAAA ::1")
			m.Answer = []dns.RR{rr}
		}
		b := pack(t, m)
		return [][]byte{b[:len(b)-3]}
	})
	// TC set on UDP, and a tarpit where the TCP retry goes.
	tcTarpit := rawDNS(t, func(q *dns.Msg, _ []byte) [][]byte {
		m := new(dns.Msg)
		m.SetReply(q)
		m.Truncated = true
		return [][]byte{pack(t, m)}
	})
	tcTarpitPort := mustPort(t, tcTarpit)
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", tcTarpitPort))
	if err != nil {
		// Another process took the TCP port beside the UDP server: a
		// collision on a shared machine, not a failure of reachd.
		t.Fatalf("cannot listen on tcp %s beside the udp server: %v", tcTarpit, err)
	}
	probetest.ServeRaw(t, ln, hold)

	resolver := func(addr string) func(*configs.Config) {
		return func(c *configs.Config) { c.Resolvers[0].Servers = []string{addr} }
	}
	tg := target("hostile.reachd.test", 443, func(tg *targets.Target) { tg.Timeout = hostileTimeout })
	for _, c := range []hostileCase{
		{"answers with mismatched IDs only", tg, resolver(mismatched), nil, StageDNS, DNSTimeout, "no answer"},
		{"garbage bytes", tg, resolver(garbage), nil, StageDNS, DNSError, "dns:"},
		{"a packet shorter than a header", tg, resolver(short), nil, StageDNS, DNSError, "dns:"},
		{"a packet cut inside its answer", tg, resolver(cut), nil, StageDNS, DNSError, "dns:"},
		{"truncated over udp, tarpit over tcp", tg, resolver(tcTarpit), nil, StageDNS, DNSTimeout, "no answer"},
	} {
		t.Run(c.name, func(t *testing.T) { runHostile(t, l, c) })
	}
}

func mustPort(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

func TestHostileProxy(t *testing.T) {
	l := newLab(t)
	// A proxy that answers CONNECT with a status line and then headers
	// without end: the probe must stop reading at MaxHeader, not keep
	// every header line in memory until the timeout.
	var written atomic.Int64
	endless := rawServer(t, func(c net.Conn) {
		defer c.Close()
		c.Write([]byte("HTTP/1.1 407 Proxy Authentication Required\r\n"))
		line := []byte("Proxy-Authenticate: Basic realm=\"" + strings.Repeat("x", 1000) + "\"\r\n")
		for written.Load() < 1<<30 {
			n, err := c.Write(line)
			written.Add(int64(n))
			if err != nil {
				return
			}
		}
	})
	// A proxy that drips its answer one byte every 50 ms.
	drip := rawServer(t, func(c net.Conn) {
		defer c.Close()
		dripConn{c}.Write([]byte("HTTP/1.1 200 Connection established\r\nVia: 1.1 drip\r\n\r\n"))
		hold(c)
	})
	// A 407 with a body of a gigabyte: the answer is known from its
	// status line; the body is not read to its end.
	hugeBody := rawServer(t, func(c net.Conn) {
		defer c.Close()
		c.Write([]byte("HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"corp\"\r\nContent-Length: 1073741824\r\n\r\n"))
		chunk := make([]byte, 64<<10)
		for sent := 0; sent < 1<<30; sent += len(chunk) {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	})
	garbage := rawServer(t, func(c net.Conn) {
		defer c.Close()
		c.Write([]byte("SSH-2.0-OpenSSH_9.2\r\n\x00\xff\xfe garbage"))
		hold(c)
	})
	proxy := func(port int) *url.URL {
		return &url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
	}
	tg := target("vendor.reachd.test", 443, func(tg *targets.Target) { tg.Timeout = hostileTimeout })
	for _, c := range []hostileCase{
		{"endless headers after CONNECT", tg, nil, proxy(endless), StageProxy, ProxyError, "reading the answer to CONNECT"},
		{"slow-drip answer to CONNECT", tg, nil, proxy(drip), StageProxy, ProxyTimeout, "timeout"},
		{"garbage instead of an answer", tg, nil, proxy(garbage), StageProxy, ProxyError, "malformed HTTP"},
		{"a gigabyte of body after 407", tg, nil, proxy(hugeBody), StageProxy, ProxyAuthRequired, "demands credentials"},
	} {
		t.Run(c.name, func(t *testing.T) {
			written.Store(0)
			if c.path.Port() == strconv.Itoa(endless) {
				defer func() {
					// Socket buffers hold a few megabytes; far more means
					// the probe kept reading (and keeping) header lines.
					if n := written.Load(); n > 32<<20 {
						t.Errorf("the proxy got %d MB of headers out before the probe hung up: the answer to CONNECT is not bounded", n>>20)
					} else {
						t.Logf("the proxy got %d bytes of headers out before the probe hung up", n)
					}
				}()
			}
			runHostile(t, l, c)
		})
	}
}
