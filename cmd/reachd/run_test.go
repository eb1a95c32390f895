package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/exporter-toolkit/web"

	"github.com/reachd/reachd/configs"
)

// syncLog is a log destination that tests read while the daemon writes,
// and that tells when a line containing a wanted string arrives.
type syncLog struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	waits map[string]chan struct{}
}

func newSyncLog() *syncLog { return &syncLog{waits: map[string]chan struct{}{}} }

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	l.check()
	return len(p), nil
}

func (l *syncLog) check() {
	for want, c := range l.waits {
		if strings.Contains(l.buf.String(), want) {
			close(c)
			delete(l.waits, want)
		}
	}
}

// arrived is closed once the log holds want.
func (l *syncLog) arrived(want string) <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := make(chan struct{})
	l.waits[want] = c
	l.check()
	return c
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func testWebFlags() *web.FlagConfig {
	addrs, systemd, file := []string{"127.0.0.1:0"}, false, ""
	return &web.FlagConfig{WebListenAddresses: &addrs, WebSystemdSocket: &systemd, WebConfigFile: &file}
}

// proxyConfig is a loopback config whose proxy path reads password_file.
func proxyConfig(passwordFile string) string {
	return loopbackConfig + "[[path]]\nname = \"corp\"\nproxy = \"http://127.0.0.1:1\"\nusername = \"u\"\npassword_file = \"" + passwordFile +
		"\"\n[[target]]\nname = \"a\"\nhost = \"127.0.0.1\"\nport = 1\nchecks = [\"tcp\"]\n"
}

// A reload stuck on a password file on a hung mount (a FIFO nobody
// writes) fails with a named error after the file timeout, and neither it
// nor a reload that would hang for an hour keeps SIGTERM from stopping
// the daemon.
func TestReloadNeverBlocksSignals(t *testing.T) {
	for _, tt := range []struct {
		name    string
		timeout time.Duration
	}{{"times out", 100 * time.Millisecond}, {"still reading", time.Hour}} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			pass := writeFile(t, dir, "proxy.pass", "pw\n")
			fifo := filepath.Join(dir, "hung.pass")
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { // release the read left in open(2)
				if f, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
					f.Close()
				}
			})
			file := writeFile(t, dir, "reachd.toml", proxyConfig(pass))
			log := newSyncLog()
			logger := slog.New(slog.NewTextHandler(log, nil))
			sig := make(chan os.Signal, 1)
			done := make(chan int, 1)
			loaded := log.arrived(`msg="config loaded"`)
			go func() {
				done <- run(runOptions{configFile: file, web: testWebFlags(), load: configs.Options{FileTimeout: tt.timeout}, signals: sig}, logger)
			}()
			select {
			case <-loaded:
			case <-done:
				t.Fatalf("the daemon stopped:\n%s", log)
			}
			writeFile(t, dir, "reachd.toml", proxyConfig(fifo))
			reloading := log.arrived(`msg="reloading the config"`)
			sig <- syscall.SIGHUP
			// Once the reload reads the FIFO, the cleanup's writer can
			// release it; a reload never started would leave it waiting.
			select {
			case <-reloading:
			case <-done:
				t.Fatalf("the daemon stopped:\n%s", log)
			}
			if tt.timeout != time.Hour {
				select {
				case <-log.arrived("reading " + fifo + " timed out after 100ms"):
				case <-done:
					t.Fatalf("the daemon stopped:\n%s", log)
				}
			}
			sig <- syscall.SIGTERM
			if code := <-done; code != exitOK {
				t.Errorf("exit %d\n%s", code, log)
			}
			out := log.String()
			for _, w := range []string{`msg="starting reachd" version=`, `msg="config loaded" file=` + file + ` site=test probes=2 targets=1 paths=direct,corp resolvers=1`, `msg="shutting down" signal=terminated`} {
				if !strings.Contains(out, w) {
					t.Errorf("log lacks %q:\n%s", w, out)
				}
			}
			if strings.Contains(out, "pw") && !strings.Contains(out, "password_file") {
				t.Errorf("the log reveals the password:\n%s", out)
			}
		})
	}
}
