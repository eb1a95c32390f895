package probe

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/reachd/reachd/configs"
)

// BenchmarkProbe is one full probe (dns, tcp, tls, http) against loopback
// servers in this process. Compare with BenchmarkFloor; cmd/reachbench
// measures the same with the servers in another process.
func BenchmarkProbe(b *testing.B) {
	l := newLab(b)
	s := l.server("bench.reachd.test").Port
	p := New(target("bench.reachd.test", s), configs.Path{Name: "direct"}, NewEnv(l.config(), "reachd-bench"))
	p.dnsChecks = true
	p.Probe(b.Context()) // the first run sweeps
	b.ReportAllocs()
	start := cpuTime()
	for b.Loop() {
		if r := p.Probe(b.Context()); r.Err != nil {
			b.Fatal(r.Err)
		}
	}
	reportCPU(b, start)
}

// reportCPU reports the process's CPU time per op, servers included: the
// servers' share is the same in BenchmarkProbe and BenchmarkFloor.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime()-start)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkFloor does the same work in a bare loop: one DNS query, a dial,
// a verified TLS handshake, a GET.
func BenchmarkFloor(b *testing.B) {
	l := newLab(b)
	s := l.server("bench.reachd.test").Port
	c := &dns.Client{Net: "udp"}
	conf := &tls.Config{ServerName: "bench.reachd.test", RootCAs: l.ca.Pool(), NextProtos: []string{"http/1.1"}}
	b.ReportAllocs()
	start := cpuTime()
	for b.Loop() {
		m := new(dns.Msg)
		m.SetQuestion("bench.reachd.test.", dns.TypeA)
		r, _, err := c.Exchange(m, l.dns.Addr)
		if err != nil {
			b.Fatal(err)
		}
		conn, err := net.Dial("tcp", net.JoinHostPort(r.Answer[0].(*dns.A).A.String(), fmt.Sprint(s)))
		if err != nil {
			b.Fatal(err)
		}
		tc := tls.Client(conn, conf)
		fmt.Fprintf(tc, "GET / HTTP/1.1\r\nHost: bench.reachd.test\r\nConnection: close\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		tc.Close()
	}
	reportCPU(b, start)
}
