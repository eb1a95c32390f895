//go:build e2e

package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// alertsNet is the test's network: a "site" namespace without a default route, where
// reachd, Prometheus and Alertmanager run, and an "internet" namespace with the targets,
// joined by one veth pair (10.200.0.1 <-> 10.200.0.2). Nothing else is connected.
type alertsNet struct {
	site, inet         string // namespace names
	siteVeth, inetVeth string
	dir                string // logs
}

func alertsIP(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// alertsNewNet creates both namespaces and the veth pair; t.Cleanup deletes them (and so
// the veth) after the processes in them have been stopped.
func alertsNewNet(t *testing.T, dir string) *alertsNet {
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	sfx := hex.EncodeToString(b)
	n := &alertsNet{
		site: "reachd-site-" + sfx, inet: "reachd-inet-" + sfx,
		siteVeth: "rs" + sfx, inetVeth: "ri" + sfx,
		dir: dir,
	}
	for _, ns := range []string{n.site, n.inet} {
		alertsIP(t, "netns", "add", ns)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v\n%s", ns, err, out)
			}
		})
		alertsIP(t, "-n", ns, "link", "set", "lo", "up")
	}
	alertsIP(t, "-n", n.site, "link", "add", n.siteVeth, "type", "veth", "peer", "name", n.inetVeth, "netns", n.inet)
	alertsIP(t, "-n", n.site, "addr", "add", alertsSiteAddr+"/24", "dev", n.siteVeth)
	alertsIP(t, "-n", n.inet, "addr", "add", alertsInetAddr+"/24", "dev", n.inetVeth)
	alertsIP(t, "-n", n.site, "link", "set", n.siteVeth, "up")
	alertsIP(t, "-n", n.inet, "link", "set", n.inetVeth, "up")
	return n
}

// setLink cuts or restores the site's only link to the internet namespace.
func (n *alertsNet) setLink(t *testing.T, state string) {
	t.Helper()
	alertsIP(t, "-n", n.site, "link", "set", n.siteVeth, state)
}

// iptables runs iptables inside the site namespace.
func (n *alertsNet) iptables(t *testing.T, args ...string) {
	t.Helper()
	alertsIP(t, append([]string{"netns", "exec", n.site, "iptables"}, args...)...)
}

// start runs a program inside namespace ns, its output in <dir>/<name>.log. t.Cleanup kills
// it, and shows the end of its log when the test failed.
func (n *alertsNet) start(t *testing.T, name, ns string, env []string, args ...string) *exec.Cmd {
	t.Helper()
	logPath := filepath.Join(n.dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	return n.run(t, name, cmd, logf, logPath)
}

func (n *alertsNet) run(t *testing.T, name string, cmd *exec.Cmd, logf *os.File, logPath string) *exec.Cmd {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill() // ip netns exec execs the program: this is its pid
		cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			t.Logf("--- end of %s log (%s) ---\n%s", name, logPath, b)
		}
	})
	return cmd
}

// startHelper re-executes this test binary in the internet namespace as the DNS and HTTPS
// servers, and waits until it listens. Its stdin is a pipe: it exits when the test does.
func (n *alertsNet) startHelper(t *testing.T, certDir string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(n.dir, "internet.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", n.inet, self, "-test.run=^$")
	cmd.Env = append(os.Environ(), alertsHelperEnv+"=internet", alertsDirEnv+"="+certDir)
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close() })
	n.run(t, "internet", cmd, logf, logPath)
	alertsWaitLine(t, stdout, "ready")
	go io.Copy(io.Discard, stdout)
}

// client returns an HTTP client whose connections are opened inside the site namespace,
// where Prometheus, Alertmanager and reachd listen on 127.0.0.1.
func (n *alertsNet) client() *http.Client { return nsClient(n.site) }

// nsClient returns an HTTP client whose connections are opened inside the named network
// namespace.
func nsClient(ns string) *http.Client {
	nsPath := filepath.Join("/var/run/netns", ns)
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		type result struct {
			c   net.Conn
			err error
		}
		ch := make(chan result, 1)
		go func() {
			// Never unlocked: the thread, switched to the site namespace, ends with this
			// goroutine. The socket keeps the namespace it was created in.
			runtime.LockOSThread()
			f, err := os.Open(nsPath)
			if err != nil {
				ch <- result{nil, err}
				return
			}
			defer f.Close()
			if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
				ch <- result{nil, err}
				return
			}
			var d net.Dialer
			c, err := d.DialContext(ctx, network, addr)
			ch <- result{c, err}
		}()
		r := <-ch
		return r.c, r.err
	}
	return &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true, Proxy: nil},
	}
}
