//go:build e2e

package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/reachd/reachd/probe/probetest"
)

// middlebox is one haproxy frontend in TCP mode in front of a healthy
// nginx: it reads the ClientHello and closes ("reject") or silently drops
// ("silent-drop", nothing is sent, not even a reset) the connections a
// condition selects, as firewalls and DPI boxes do.
type middlebox struct {
	name   string
	action string // reject | silent-drop
	cond   string // haproxy ACL condition on the ClientHello
	port   int
}

func startMiddleboxes(t *testing.T, backendPort int, boxes []*middlebox) {
	t.Helper()
	bin := requireTool(t, "haproxy", "haproxy")
	var b strings.Builder
	b.WriteString(haproxyHead)
	var ports []int
	for _, m := range boxes {
		m.port = freePort(t)
		ports = append(ports, m.port)
		fmt.Fprintf(&b, `frontend %s
  mode tcp
  bind 127.0.0.1:%d
  tcp-request inspect-delay 10s
  tcp-request content %s if { req.ssl_hello_type 1 } %s
  tcp-request content accept if { req.ssl_hello_type 1 }
  default_backend nginx

`, m.name, m.port, m.action, m.cond)
	}
	fmt.Fprintf(&b, "backend nginx\n  mode tcp\n  server nginx 127.0.0.1:%d\n", backendPort)
	conf := writeFile(t, t.TempDir(), "haproxy.cfg", b.String())
	interopProc(t, "haproxy (middleboxes)", ports, nil, bin, "-db", "-f", conf)
}

// TestInteropMiddleboxes puts haproxy in TCP mode between reachd and a
// healthy nginx that speaks TLS 1.0 to 1.3, dropping or closing legacy
// ClientHellos, or ClientHellos for one name (an SNI filter).
func TestInteropMiddleboxes(t *testing.T) {
	dns := probetest.NewDNSServer(t, probetest.Records{"aia.reachd.test": {A: []string{"127.0.0.1"}}})
	pki := newInteropPKI(t, "aia.reachd.test")
	healthy := &tlsServerConfig{name: "healthy1.0-1.3", min: "1.0", max: "1.3", cert: pki.Good}
	startNginx(t, pki, []*tlsServerConfig{healthy})

	legacy := "{ req.ssl_ver lt 3.3 }"
	blocked := "{ req.ssl_sni -m beg blocked }"
	boxes := []*middlebox{
		{name: "drop-below-1.2", action: "silent-drop", cond: legacy},
		{name: "close-below-1.2", action: "reject", cond: legacy},
		{name: "sni-close", action: "reject", cond: blocked},
		{name: "sni-drop", action: "silent-drop", cond: blocked},
	}
	startMiddleboxes(t, healthy.port, boxes)
	port := map[string]int{}
	for _, m := range boxes {
		port[m.name] = m.port
	}

	cases := []*interopCase{
		{server: "nginx", config: "healthy1.0-1.3", host: "healthy.reachd.test", port: healthy.port, offers: "yyyy", versions: "yyyy"},
		// A stall answering a legacy ClientHello is not a rejection on the
		// wire: those versions stay unknown, and the probe itself (1.2+)
		// passes.
		{server: "haproxy-tcp", config: "drop-below-1.2", host: "drop-legacy.reachd.test", port: port["drop-below-1.2"],
			offers: "nnyy", versions: "??yy", note: "a drop is no answer: reachd leaves 1.0/1.1 unknown, sslscan counts its timeout as not enabled"},
		{server: "haproxy-tcp", config: "close-below-1.2", host: "close-legacy.reachd.test", port: port["close-below-1.2"],
			offers: "nnyy", versions: "nnyy"},
		{server: "haproxy-tcp", config: "sni-close allowed", host: "allowed-close.reachd.test", port: port["sni-close"],
			offers: "yyyy", versions: "yyyy"},
		// Every version closed or dropped: nothing to tell a rejected
		// version from the filter, so all unknown.
		{server: "haproxy-tcp", config: "sni-close blocked", host: "blocked-close.reachd.test", port: port["sni-close"],
			offers: "nnnn", versions: "????", stage: "tls", reason: "tls_reset",
			note: "every version closed: the filter, not the versions; sslscan counts each close as not enabled"},
		{server: "haproxy-tcp", config: "sni-drop allowed", host: "allowed-drop.reachd.test", port: port["sni-drop"],
			offers: "yyyy", versions: "yyyy"},
		{server: "haproxy-tcp", config: "sni-drop blocked", host: "blocked-drop.reachd.test", port: port["sni-drop"],
			offers: "nnnn", versions: "????", stage: "tls", reason: "tls_timeout",
			note: "every version dropped: unknown; sslscan counts each timeout as not enabled"},
	}
	for _, c := range cases {
		dns.Set(c.host, probetest.Entry{A: []string{"127.0.0.1"}})
	}
	timeout := 4 * time.Second
	file := interopConfig(t, t.TempDir(), dns.Addr, []string{pki.RootFile}, "", cases, timeout)
	scans := interopScan(t, cases)
	got := interopCheck(t, file, 2*time.Minute)
	interopAssert(t, "Middleboxes (haproxy in TCP mode in front of nginx 1.0-1.3)", cases, got, scans)
}
