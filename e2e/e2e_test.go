//go:build e2e

// Package e2e runs the built reachd binary against real components:
// loopback scenario servers, promtool, Prometheus and Alertmanager, and
// network namespaces. `make e2e` builds the binary and runs it; it needs
// root for the namespace tests and the Debian packages .ci/run installs.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// reachdBin is the binary under test: $REACHD_BIN, or ../bin/reachd.
func reachdBin(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("REACHD_BIN")
	if bin == "" {
		bin = "../bin/reachd"
	}
	abs, err := filepath.Abs(bin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(abs); err != nil {
		t.Fatalf("no reachd binary at %s: run make e2e (it builds bin/reachd first)", abs)
	}
	return abs
}

// requireTool returns the path of a command. Without it the test fails in
// CI (CI is set) and is skipped, loudly, elsewhere.
func requireTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s not found: .ci/run must install the Debian package %s", name, pkg)
	}
	t.Skipf("SKIPPED LOUDLY: %s not found; install the Debian package %s (CI fails here)", name, pkg)
	return ""
}

// requireRoot fails in CI and skips elsewhere when not root.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal("this test needs root (network namespaces); CI runs as root")
	}
	t.Skip("SKIPPED LOUDLY: needs root for network namespaces")
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// daemon is a running `reachd run`.
type daemon struct {
	cmd    *exec.Cmd
	base   string
	stderr *bytes.Buffer
	done   chan error
}

func startDaemon(t *testing.T, args ...string) *daemon {
	t.Helper()
	port := freePort(t)
	d := &daemon{base: "http://127.0.0.1:" + strconv.Itoa(port), stderr: &bytes.Buffer{}, done: make(chan error, 1)}
	d.cmd = exec.Command(reachdBin(t), append([]string{"run", "--web.listen-address", "127.0.0.1:" + strconv.Itoa(port)}, args...)...)
	d.cmd.Stderr = &lockedWriter{w: d.stderr}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(func() {
		d.cmd.Process.Kill()
		<-d.done
		if t.Failed() {
			t.Logf("reachd stderr:\n%s", d.stderr)
		}
	})
	d.waitFor(t, "/-/ready", func(code int, _ string) bool { return code == 200 })
	return d
}

func (d *daemon) get(path string) (int, string, error) {
	resp, err := http.Get(d.base + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// waitFor polls path until ok holds, or fails the test after 30 s.
func (d *daemon) waitFor(t *testing.T, path string, ok func(code int, body string) bool) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body, err := d.get(path)
		if err == nil && ok(code, body) {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not reach the wanted state in 30s (last: %d %v)\n%s", path, code, err, body)
		}
		select {
		case err := <-d.done:
			d.done <- err // for the clean-up, which waits for it
			t.Fatalf("reachd exited while waiting for %s: %v", path, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stop sends SIGTERM and returns the exit code.
func (d *daemon) stop(t *testing.T) int {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		d.done <- err
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		return 0
	case <-time.After(30 * time.Second):
		t.Fatal("reachd did not stop within 30s of SIGTERM")
	}
	return -1
}

// runReachd runs a reachd command to completion with a hang guard.
func runReachd(t *testing.T, ctx context.Context, prefix []string, args ...string) (int, string, string) {
	t.Helper()
	argv := append(append(prefix, reachdBin(t)), args...)
	return runCommand(t, ctx, argv[0], argv[1:]...)
}

// runCommand runs a command to completion; ctx is its hang guard.
func runCommand(t *testing.T, ctx context.Context, name string, args ...string) (int, string, string) {
	t.Helper()
	argv := append([]string{name}, args...)
	cmd := exec.CommandContext(ctx, name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%v hung: killed after its deadline", argv)
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%v: %v", argv, err)
	}
	return code, out.String(), errb.String()
}

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func contains(s string, subs ...string) error {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return fmt.Errorf("missing %q", sub)
		}
	}
	return nil
}
