//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// startUnbound runs a real unbound on loopback that answers only from its
// own static zone and refuses everything else, so it never recurses out.
func startUnbound(t *testing.T) string {
	t.Helper()
	bin := requireTool(t, "unbound", "unbound")
	dir := t.TempDir()
	port := freeUDPPort(t)
	conf := fmt.Sprintf(`server:
  interface: 127.0.0.1
  port: %d
  do-ip6: no
  do-daemonize: no
  chroot: ""
  username: ""
  directory: %q
  pidfile: %q
  use-syslog: no
  logfile: ""
  verbosity: 0
  access-control: 127.0.0.0/8 allow
  module-config: "iterator"
  local-zone: "." refuse
  local-zone: "reachd.test." static
  local-data: "good.reachd.test. 60 IN A 127.0.0.1"
  local-data: "good.reachd.test. 60 IN AAAA ::1"
  local-data: "nodata.reachd.test. 60 IN TXT \"a name with no address\""
remote-control:
  control-enable: no
`, port, dir, filepath.Join(dir, "unbound.pid"))
	file := writeFile(t, dir, "unbound.conf", conf)
	cmd := exec.Command(bin, "-d", "-c", file)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	addr := "127.0.0.1:" + strconv.Itoa(port)
	c := &dns.Client{Timeout: 200 * time.Millisecond}
	m := new(dns.Msg)
	m.SetQuestion("good.reachd.test.", dns.TypeA)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if r, _, err := c.Exchange(m, addr); err == nil && r.Rcode == dns.RcodeSuccess {
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatal("unbound did not answer within 20s")
		}
		time.Sleep(50 * time.Millisecond) // polling for readiness, bounded by the deadline
	}
}

func freeUDPPort(t *testing.T) int {
	t.Helper()
	for range 20 {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := c.LocalAddr().(*net.UDPAddr).Port
		c.Close()
		if ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
			ln.Close()
			return port
		}
	}
	t.Fatal("no port free for both UDP and TCP")
	return 0
}

func TestUnboundAnswers(t *testing.T) {
	addr := startUnbound(t)
	dir := t.TempDir()
	file := writeFile(t, dir, "reachd.toml", fmt.Sprintf(`site = "unbound"
[[resolver]]
name = "unbound"
servers = [%q]

[[target]]
vendor = "acme"
region = "jp"
name = "good"
host = "good.reachd.test"
checks = ["dns"]

[[target]]
vendor = "acme"
region = "jp"
name = "missing"
host = "missing.reachd.test"
checks = ["dns"]

[[target]]
vendor = "acme"
region = "jp"
name = "nodata"
host = "nodata.reachd.test"
checks = ["dns"]

[[target]]
vendor = "acme"
region = "jp"
name = "refused"
host = "vendor.example"
checks = ["dns"]
`, addr))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code, out, stderr := runReachd(t, ctx, nil, "check", "--config.file", file, "--format", "json")
	if code != 1 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	var doc struct {
		Results []struct{ Target, Stage, Reason string }
		DNS     []struct {
			Target, Resolver, QType, Rcode, Reason string
			Success                                bool
			Answers                                []string
		}
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"good": "", "missing": "dns_nxdomain", "nodata": "dns_no_records", "refused": "dns_refused"}
	for _, r := range doc.Results {
		if r.Reason != want[r.Target] {
			t.Errorf("%s: reason %q, want %q", r.Target, r.Reason, want[r.Target])
		}
	}
	wantRcode := map[string]string{"good": "NOERROR", "missing": "NXDOMAIN", "nodata": "NOERROR", "refused": "REFUSED"}
	if len(doc.DNS) != 8 {
		t.Fatalf("%d per-resolver DNS entries, want 4 targets x A, AAAA", len(doc.DNS))
	}
	for _, d := range doc.DNS {
		if d.Resolver != "unbound" || d.Rcode != wantRcode[d.Target] {
			t.Errorf("%s %s: resolver %q rcode %q, want %q", d.Target, d.QType, d.Resolver, d.Rcode, wantRcode[d.Target])
		}
		if d.Target == "good" && (!d.Success || len(d.Answers) != 1) {
			t.Errorf("good %s: %+v", d.QType, d)
		}
		if d.Target == "nodata" && (!d.Success || len(d.Answers) != 0) {
			t.Errorf("NODATA per-resolver entry must be a success with no answers: %+v", d)
		}
	}
}
