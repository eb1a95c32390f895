//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// traceNet is a site, three routers and a target in network namespaces
// of their own, chained by veth pairs (DESIGN §5's path trace):
//
//	site 10.210.1.2 — 10.210.1.1 r1 10.210.2.1 — 10.210.2.2 r2 10.210.3.1 — 10.210.3.2 r3 10.210.4.1 — 10.210.4.2 target
//
// and the same in IPv6, fd00:210:N::/64. The site's only route is its
// default route to r1: nothing leaves the namespaces.
type traceNet struct {
	ns [5]string // site, r1, r2, r3, target
}

func traceSh(t *testing.T, script string) {
	t.Helper()
	out, err := exec.Command("sh", "-ec", script).CombinedOutput()
	if err != nil {
		t.Fatalf("%s\n%v: %s", script, err, out)
	}
}

func newTraceNet(t *testing.T) *traceNet {
	t.Helper()
	n := &traceNet{}
	tag := fmt.Sprintf("%d", os.Getpid()%100000)
	for i, name := range []string{"site", "r1", "r2", "r3", "tgt"} {
		n.ns[i] = "rdtr-" + name + "-" + tag
	}
	t.Cleanup(func() {
		for _, ns := range n.ns {
			exec.Command("ip", "netns", "del", ns).Run()
		}
	})
	var b strings.Builder
	for _, ns := range n.ns {
		fmt.Fprintf(&b, "ip netns add %s\n", ns)
		fmt.Fprintf(&b, "ip netns exec %s sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1\n", ns)
		fmt.Fprintf(&b, "ip -n %s link set lo up\n", ns)
	}
	// Link k joins ns[k-1] (address .1 / ::1 on the router side towards the
	// site, except the site itself which is .2) and ns[k].
	for k := 1; k <= 4; k++ {
		left, right := n.ns[k-1], n.ns[k]
		a, z := fmt.Sprintf("rdtr%da%s", k, tag), fmt.Sprintf("rdtr%dz%s", k, tag)
		fmt.Fprintf(&b, "ip link add %s netns %s type veth peer name %s netns %s\n", a, left, z, right)
		// Towards the site the lower side is .1, except on link 1 where r1
		// (the right side) is .1 and the site .2.
		la, ra := 1, 2
		if k == 1 {
			la, ra = 2, 1
		}
		fmt.Fprintf(&b, "ip -n %s addr add 10.210.%d.%d/24 dev %s\nip -n %s addr add fd00:210:%d::%d/64 dev %s nodad\n", left, k, la, a, left, k, la, a)
		fmt.Fprintf(&b, "ip -n %s addr add 10.210.%d.%d/24 dev %s\nip -n %s addr add fd00:210:%d::%d/64 dev %s nodad\n", right, k, ra, z, right, k, ra, z)
		fmt.Fprintf(&b, "ip -n %s link set %s up\nip -n %s link set %s up\n", left, a, right, z)
	}
	route := func(ns, v4, v6 string) {
		fmt.Fprintf(&b, "ip -n %s route add default via %s\nip -n %s -6 route add default via %s\n", ns, v4, ns, v6)
	}
	route(n.ns[0], "10.210.1.1", "fd00:210:1::1") // site → r1
	route(n.ns[1], "10.210.2.2", "fd00:210:2::2") // r1 → r2
	route(n.ns[3], "10.210.3.1", "fd00:210:3::1") // r3 → r2 (back towards the site)
	route(n.ns[4], "10.210.4.1", "fd00:210:4::1") // target → r3
	// r2 knows both ends.
	fmt.Fprintf(&b, "ip -n %s route add 10.210.1.0/24 via 10.210.2.1\nip -n %s -6 route add fd00:210:1::/64 via fd00:210:2::1\n", n.ns[2], n.ns[2])
	fmt.Fprintf(&b, "ip -n %s route add 10.210.4.0/24 via 10.210.3.2\nip -n %s -6 route add fd00:210:4::/64 via fd00:210:3::2\n", n.ns[2], n.ns[2])
	traceSh(t, b.String())
	return n
}

func (n *traceNet) in(t *testing.T, i int, args ...string) {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", n.ns[i]}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("%v in %s: %v: %s", args, n.ns[i], err, out)
	}
}

type traceDoc struct {
	Results []struct {
		Success       bool
		Stage, Reason string
		Detail        string
		Trace         *struct {
			Target, Verdict, Unsupported string
			Hops                         []struct {
				TTL        int
				Addr, ICMP string
				RTTSeconds float64 `json:"rtt_seconds"`
			}
		}
	}
}

// check runs `reachd check` against host in the site namespace as nobody,
// without any privilege.
func (n *traceNet) check(t *testing.T, bin, host string) traceDoc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code, out, stderr := runCommand(t, ctx, "ip", "netns", "exec", n.ns[0], "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
		bin, "check", "--host", host, "--resolver", "127.0.0.1:53", "--timeout", "1s", "--format", "json")
	if code != 1 {
		t.Fatalf("exit %d, want 1\nstdout: %s\nstderr: %s", code, out, stderr)
	}
	var doc traceDoc
	if err := json.Unmarshal([]byte(out), &doc); err != nil || len(doc.Results) != 1 {
		t.Fatalf("%v\n%s", err, out)
	}
	return doc
}

// daemonSeries runs `reachd run` in the site namespace as nobody and
// waits for the DESIGN §7 trace series of the failing probe of host.
func (n *traceNet) daemonSeries(t *testing.T, bin, host, hop string) {
	t.Helper()
	dir := filepath.Dir(bin)
	port := 9717
	cfg := filepath.Join(dir, "trace.toml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`site = "trace"
[defaults]
timeout = "1s"
interval = "30s"

[[resolver]]
name = "none"
servers = ["127.0.0.1:1"]

[[target]]
vendor = "acme"
region = "jp"
name = "api"
host = %q
port = 443
checks = ["tcp", "tls"]
`, strings.Trim(strings.TrimSuffix(host, ":443"), "[]"))), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", n.ns[0], "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
		bin, "run", "--config.file="+cfg, fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port))
	var stderr lockedWriter
	stderr.w = &strings.Builder{}
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	c := nsClient(n.ns[0])
	var body string
	for deadline := time.Now().Add(40 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		if hasSeries(body, "reachd_path_trace_last_hop", map[string]string{"hop": hop, "target": "api"}, "1") &&
			hasSeries(body, "reachd_path_trace_hops", map[string]string{"target": "api"}, "2") {
			return
		}
	}
	stderr.mu.Lock()
	defer stderr.mu.Unlock()
	t.Errorf("no trace series for hop %s within 40s:\n%s\nreachd stderr:\n%s", hop, grepLines(body, "reachd_path_trace"), stderr.w)
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// unprivilegedBin copies the binary where nobody can run it.
func unprivilegedBin(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "reachd-trace-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(reachdBin(t))
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "reachd")
	if err := os.WriteFile(bin, src, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestPathTrace: a DROP on the third router gives tcp_timeout with a
// trace that stops after hop 2; an ICMP admin-prohibited REJECT names hop
// 3; in IPv4 and IPv6, run as an unprivileged user.
func TestPathTrace(t *testing.T) {
	requireRoot(t)
	requireTool(t, "ip", "iproute2")
	requireTool(t, "iptables", "iptables")
	requireTool(t, "ip6tables", "iptables")
	requireTool(t, "setpriv", "util-linux")
	bin := unprivilegedBin(t)
	n := newTraceNet(t)

	for _, fam := range []struct {
		name, iptables, target, hop2, hop3, prohibited string
	}{
		{"IPv4", "iptables", "10.210.4.2", "10.210.2.2", "10.210.3.2", "icmp-admin-prohibited"},
		{"IPv6", "ip6tables", "fd00:210:4::2", "fd00:210:2::2", "fd00:210:3::2", "icmp6-adm-prohibited"},
	} {
		host := fam.target + ":443"
		if strings.Contains(fam.target, ":") {
			host = "[" + fam.target + "]:443"
		}
		t.Run(fam.name+"/drop", func(t *testing.T) {
			// Dropped before routing: r3 never sees the SYN's TTL expire,
			// so hop 3 stays silent (a FORWARD drop would still let r3
			// answer TTL 3 with time exceeded).
			n.in(t, 3, fam.iptables, "-t", "raw", "-A", "PREROUTING", "-p", "tcp", "--dport", "443", "-j", "DROP")
			defer n.in(t, 3, fam.iptables, "-t", "raw", "-F", "PREROUTING")
			var doc traceDoc
			// Neighbour discovery (IPv6) may leave the first trace silent
			// at hop 1: retry until hop 1 answers, a readiness signal.
			for try := 0; try < 3; try++ {
				doc = n.check(t, bin, host)
				if tr := doc.Results[0].Trace; tr != nil && len(tr.Hops) > 0 && tr.Hops[0].Addr != "" {
					break
				}
			}
			r := doc.Results[0]
			if r.Stage != "tcp" || r.Reason != "tcp_timeout" {
				t.Fatalf("%s/%s %q, want tcp/tcp_timeout", r.Stage, r.Reason, r.Detail)
			}
			if r.Trace == nil {
				t.Fatal("no trace in the report")
			}
			if want := "no answer past hop 2 (" + fam.hop2 + ")"; r.Trace.Verdict != want {
				t.Errorf("verdict %q, want %q; hops %+v", r.Trace.Verdict, want, r.Trace.Hops)
			}
			if len(r.Trace.Hops) < 3 || r.Trace.Hops[1].Addr != fam.hop2 || r.Trace.Hops[1].ICMP != "time exceeded" || r.Trace.Hops[1].RTTSeconds <= 0 || r.Trace.Hops[2].Addr != "" {
				t.Errorf("hops %+v", r.Trace.Hops)
			}
			t.Logf("%s: %s, %d hops", r.Reason, r.Trace.Verdict, len(r.Trace.Hops))
			if len(r.Trace.Hops) > 2+3 {
				t.Errorf("%d hops: the trace went on past three silent hops", len(r.Trace.Hops))
			}
			if fam.name == "IPv4" {
				n.daemonSeries(t, bin, host, fam.hop2)
			}
		})
		t.Run(fam.name+"/reject", func(t *testing.T) {
			n.in(t, 3, fam.iptables, "-A", "FORWARD", "-p", "tcp", "--dport", "443", "-j", "REJECT", "--reject-with", fam.prohibited)
			defer n.in(t, 3, fam.iptables, "-F", "FORWARD")
			doc := n.check(t, bin, host)
			r := doc.Results[0]
			if r.Stage != "tcp" || r.Reason != "tcp_unreachable" && r.Reason != "tcp_timeout" {
				t.Fatalf("%s/%s %q, want a tcp_unreachable (or timeout)", r.Stage, r.Reason, r.Detail)
			}
			if r.Trace == nil {
				t.Fatalf("no trace in the report (%s)", r.Reason)
			}
			if want := "rejected by hop 3 (" + fam.hop3 + ") with admin prohibited"; r.Trace.Verdict != want {
				t.Errorf("verdict %q, want %q; hops %+v", r.Trace.Verdict, want, r.Trace.Hops)
			}
			t.Logf("%s: %s", r.Reason, r.Trace.Verdict)
			last := r.Trace.Hops[len(r.Trace.Hops)-1]
			if last.Addr != fam.hop3 || last.ICMP != "admin prohibited" {
				t.Errorf("last hop %+v", last)
			}
		})
	}
}
