package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

// floor does the probe's work with nothing around it — one DNS query, a
// dial, a TLS handshake with verification, a GET — n times in a bare
// loop, and returns the CPU time per iteration of this process. With
// every > 0 the iterations are paced one per every, as a daemon's probes
// arrive: waking an idle process costs CPU a hot loop never pays.
func floor(info serverInfo, n int, every time.Duration) (time.Duration, error) {
	pem, err := os.ReadFile(info.CAFile)
	if err != nil {
		return 0, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	_, port, _ := net.SplitHostPort(info.HTTPS)
	client := &dns.Client{Net: "udp", Timeout: 5 * time.Second}

	var tick <-chan time.Time
	if every > 0 {
		t := time.NewTicker(every)
		defer t.Stop()
		tick = t.C
	}
	start := cpuSelf()
	for i := range n {
		if tick != nil {
			<-tick
		}
		host := fmt.Sprintf("t%d.%s", i%1000, Zone[:len(Zone)-1])
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(host), dns.TypeA)
		r, _, err := client.Exchange(m, info.DNS)
		if err != nil || len(r.Answer) == 0 {
			return 0, fmt.Errorf("floor dns: %v", err)
		}
		ip := r.Answer[0].(*dns.A).A
		conn, err := net.DialTimeout("tcp", net.JoinHostPort(ip.String(), port), 5*time.Second)
		if err != nil {
			return 0, err
		}
		// The key exchange groups reachd offers (the agents', SChannel's
		// order): the floor does the same handshake.
		tc := tls.Client(conn, &tls.Config{ServerName: host, RootCAs: pool, NextProtos: []string{"http/1.1"},
			CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP256, tls.CurveP384}})
		if err := tc.Handshake(); err != nil {
			conn.Close()
			return 0, err
		}
		fmt.Fprintf(tc, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", host)
		resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
		if err != nil {
			tc.Close()
			return 0, err
		}
		resp.Body.Close()
		tc.Close()
	}
	return (cpuSelf() - start) / time.Duration(n), nil
}

// cpuSelf is the user and system CPU time this process has used.
func cpuSelf() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
