package main

import (
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestHelpAndVersionRunNothing asks every command for help and the version
// and requires exit 0 with no probe sent and no listener opened. The config
// points every command at a loopback listener that counts connections, and
// the daemon's listen address at a port this test holds open: a command that
// ran would connect to the first or fail to bind the second.
func TestHelpAndVersionRunNothing(t *testing.T) {
	target, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	var accepted atomic.Int32
	go func() {
		for {
			c, err := target.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	port := target.Addr().(*net.TCPAddr).Port
	cfg := writeFile(t, t.TempDir(), "reachd.toml", loopbackConfig+fmt.Sprintf("[[target]]\nname = \"a\"\nhost = \"127.0.0.1\"\nport = %d\nchecks = [\"dns\", \"tcp\"]\n", port))
	listen := target.Addr().String() // already taken: run would fail to bind, not serve

	commands := [][]string{
		{},
		{"run", "--config.file", cfg, "--web.listen-address", listen},
		{"check", "--config.file", cfg},
		{"check", "--host", fmt.Sprintf("127.0.0.1:%d", port), "--resolver", "127.0.0.1:1"},
		{"validate", "--config.file", cfg},
		{"targets"},
		{"version"},
	}
	asks := [][]string{{"--help"}, {"-h"}, {"--help-long"}, {"--version"}}
	for _, cmd := range commands {
		for _, ask := range asks {
			args := append(append([]string{}, cmd...), ask...)
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				done := make(chan struct{})
				var code int
				var stdout, stderr string
				go func() {
					defer close(done)
					code, stdout, stderr = reachd(t, args...)
				}()
				select {
				case <-done:
				case <-time.After(time.Minute):
					t.Fatal("still running a minute after asking for help: the command ran")
				}
				if code != exitOK {
					t.Errorf("exit %d, want 0\n%s", code, stderr)
				}
				if ask[0] == "--version" && !strings.Contains(stdout, "reachd, version") {
					t.Errorf("no version printed:\n%s", stdout)
				}
				if ask[0] == "--help" || ask[0] == "-h" {
					if !strings.Contains(stdout, "usage: reachd") {
						t.Errorf("no usage printed:\n%s", stdout)
					}
				}
				if strings.Contains(stdout, "vendor") && ask[0] != "--help" && ask[0] != "-h" && ask[0] != "--help-long" {
					t.Errorf("targets listed on %s:\n%s", ask[0], stdout)
				}
			})
		}
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("%d connections reached the target: a help or version request probed", n)
	}
	help := [][]string{{"help"}, {"help", "check"}, {"help", "run"}}
	for _, args := range help {
		if code, stdout, _ := reachd(t, args...); code != exitOK || !strings.Contains(stdout, "usage: reachd") {
			t.Errorf("reachd %s: exit %d\n%s", strings.Join(args, " "), code, stdout)
		}
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("%d connections reached the target after help commands", n)
	}
}
