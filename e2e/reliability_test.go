//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/reachd/reachd/probe/probetest"
)

// reliabConfig is a loopback config: n targets on port, IP literals, with
// the given timeout (the interval is twice that, at least a minute).
func reliabConfig(port, n int, timeout time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "site = \"reliability\"\n[defaults]\ninterval = %q\ntimeout = %q\n\n[[resolver]]\nname = \"lab\"\nservers = [\"127.0.0.1:1\"]\n",
		max(2*timeout, time.Minute).String(), timeout.String())
	for i := range n {
		fmt.Fprintf(&b, "\n[[target]]\nname = \"t%d\"\nhost = \"127.0.0.1\"\nport = %d\n", i, port)
	}
	return b.String()
}

var inflightRE = regexp.MustCompile(`(?m)^reachd_scheduler_inflight (\S+)$`)

func TestReliabilitySIGTERMCancelsInflightProbes(t *testing.T) {
	tarpit := probetest.NewTarpit(t)
	port := tarpit.Port
	const timeout = 30 * time.Second
	file := writeFile(t, t.TempDir(), "reachd.toml", reliabConfig(port, 4, timeout))
	d := startDaemon(t, "--config.file", file)

	// The first runs start within 10 s; each stalls in its TLS handshake
	// for up to 30 s.
	deadline := time.Now().Add(15 * time.Second)
	inflight := 0.0
	for tarpit.Accepted() < 4 || inflight < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("no probes in flight after 15s: %d connections to the tarpit, inflight %v", tarpit.Accepted(), inflight)
		}
		time.Sleep(100 * time.Millisecond)
		if _, body, err := d.get("/metrics"); err == nil {
			if m := inflightRE.FindStringSubmatch(body); m != nil {
				inflight, _ = strconv.ParseFloat(m[1], 64)
			}
		}
	}

	start := time.Now()
	d.cmd.Process.Signal(syscall.SIGTERM)
	var err error
	select {
	case err = <-d.done:
		d.done <- err // for the cleanup
	case <-time.After(10 * time.Second):
		t.Fatalf("reachd did not exit within 10s of SIGTERM with %v probes in flight (timeout %v)", inflight, timeout)
	}
	took := time.Since(start)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		t.Fatalf("exit %d after SIGTERM, want 0", ee.ExitCode())
	} else if err != nil {
		t.Fatal(err)
	}
	t.Logf("SIGTERM with %v probes in flight against a tarpit (timeout %v): exit 0 after %v", inflight, timeout, took.Round(time.Millisecond))
	if !strings.Contains(d.stderr.String(), "shutting down") {
		t.Errorf("no shutdown logged:\n%s", d.stderr)
	}
}

// reliabWeb is a daemon behind --web.config.file: TLS from a test CA and
// basic auth.
type reliabWeb struct {
	base   string
	client *http.Client // trusts the test CA
	user   string
	pass   string
}

func startWebConfigDaemon(t *testing.T, lifecycle bool) *reliabWeb {
	t.Helper()
	dir := t.TempDir()
	ca := probetest.NewCA(t, "E2E Web CA")
	leaf := ca.Issue(t, []string{"127.0.0.1"}, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
	key, err := x509.MarshalPKCS8PrivateKey(leaf.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile := writeFile(t, dir, "cert.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Certificate[0]})))
	keyFile := writeFile(t, dir, "key.pem", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key})))
	w := &reliabWeb{user: "prometheus", pass: "scrape-secret-42"}
	hash, err := bcrypt.GenerateFromPassword([]byte(w.pass), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webConfig := writeFile(t, dir, "web.yml", fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\nbasic_auth_users:\n  %s: %s\n",
		certFile, keyFile, w.user, hash))
	port := probetest.NewTarpit(t).Port
	config := writeFile(t, dir, "reachd.toml", reliabConfig(port, 1, 2*time.Second)+"checks = [\"tcp\"]\n")

	listen := "127.0.0.1:" + strconv.Itoa(freePort(t))
	w.base = "https://" + listen
	w.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	t.Cleanup(w.client.CloseIdleConnections)
	args := []string{"run", "--web.listen-address", listen, "--web.config.file", webConfig, "--config.file", config}
	if lifecycle {
		args = append(args, "--web.enable-lifecycle")
	}
	cmd := exec.Command(reachdBin(t), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &lockedWriter{w: &stderr}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("reachd stderr:\n%s", stderr.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if code, _, err := w.do("GET", "/-/ready", true); err == nil && code == 200 {
			return w
		}
		if time.Now().After(deadline) {
			t.Fatal("reachd behind TLS and basic auth was not ready in 30s")
		}
		select {
		case err := <-done:
			t.Fatalf("reachd exited: %v\n%s", err, stderr.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (w *reliabWeb) do(method, path string, auth bool) (int, string, error) {
	req, err := http.NewRequest(method, w.base+path, nil)
	if err != nil {
		return 0, "", err
	}
	if auth {
		req.SetBasicAuth(w.user, w.pass)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

func TestWebConfigTLSAndBasicAuth(t *testing.T) {
	endpoints := []struct {
		method, path string
		want         int // with TLS and credentials, without --web.enable-lifecycle
		body         string
	}{
		{"GET", "/metrics", 200, "reachd_config_last_reload_successful 1"},
		{"GET", "/", 200, "reliability"},
		{"GET", "/api/v1/results", 200, `"site": "reliability"`},
		{"GET", "/api/v1/targets", 200, `"target": "t0"`},
		{"GET", "/probe?target=local/local/t0", 200, "reachd_probe_success"},
		{"GET", "/-/healthy", 200, "healthy"},
		{"GET", "/-/ready", 200, "ready"},
		{"POST", "/-/reload", 403, "Lifecycle API is not enabled"},
	}
	w := startWebConfigDaemon(t, false)
	plain := &http.Client{Timeout: 10 * time.Second}
	for _, e := range endpoints {
		t.Run(e.method+" "+e.path, func(t *testing.T) {
			// Plain HTTP: the TLS listener answers 400 and nothing else.
			req, _ := http.NewRequest(e.method, strings.Replace(w.base, "https://", "http://", 1)+e.path, nil)
			req.SetBasicAuth(w.user, w.pass)
			if resp, err := plain.Do(req); err != nil {
				t.Errorf("plain HTTP: %v, want 400 from the TLS listener", err)
			} else {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusBadRequest || strings.Contains(string(body), "reachd") {
					t.Errorf("plain HTTP: %d %q, want 400 from the TLS listener", resp.StatusCode, body)
				}
			}
			// TLS, no credentials and wrong credentials: 401.
			if code, body, err := w.do(e.method, e.path, false); err != nil || code != http.StatusUnauthorized || strings.Contains(body, "reachd_") {
				t.Errorf("TLS without credentials: %d %v, want 401", code, err)
			}
			saved := w.pass
			w.pass = "wrong"
			code, _, err := w.do(e.method, e.path, true)
			w.pass = saved
			if err != nil || code != http.StatusUnauthorized {
				t.Errorf("TLS with a wrong password: %d %v, want 401", code, err)
			}
			// TLS with credentials.
			code, body, err := w.do(e.method, e.path, true)
			if err != nil || code != e.want || !strings.Contains(body, e.body) {
				t.Errorf("TLS with credentials: %d %v, want %d with %q:\n%.300s", code, err, e.want, e.body, body)
			}
		})
	}

	// TLS below 1.2 is refused by the toolkit's default.
	conn, err := tls.Dial("tcp", strings.TrimPrefix(w.base, "https://"), &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11})
	if err == nil {
		conn.Close()
		t.Errorf("a TLS 1.1 client completed a handshake")
	}

	t.Run("lifecycle enabled", func(t *testing.T) {
		w := startWebConfigDaemon(t, true)
		if code, _, err := w.do("POST", "/-/reload", false); err != nil || code != http.StatusUnauthorized {
			t.Errorf("reload without credentials: %d %v, want 401", code, err)
		}
		if code, body, err := w.do("POST", "/-/reload", true); err != nil || code != 200 {
			t.Errorf("reload with credentials: %d %v %s, want 200", code, err, body)
		}
	})
}

func TestReliabilityHTTPLimits(t *testing.T) {
	port := probetest.NewTarpit(t).Port
	file := writeFile(t, t.TempDir(), "reachd.toml", reliabConfig(port, 1, 2*time.Second))
	d := startDaemon(t, "--config.file", file)
	addr := strings.TrimPrefix(d.base, "http://")

	t.Run("1 MB of headers: 431", func(t *testing.T) {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(15 * time.Second))
		var req bytes.Buffer
		req.WriteString("GET /metrics HTTP/1.1\r\nHost: reachd\r\n")
		line := "X-Filler: " + strings.Repeat("x", 1000) + "\r\n"
		for req.Len() < 1<<20 {
			req.WriteString(line)
		}
		req.WriteString("\r\n")
		// The server answers and hangs up before reading it all: write
		// beside the read, and let the write fail.
		go c.Write(req.Bytes())
		status, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || !strings.HasPrefix(status, "HTTP/1.1 431 ") {
			t.Fatalf("status %q (%v), want 431 Request Header Fields Too Large", status, err)
		}
	})

	t.Run("headers dripped slower than ReadHeaderTimeout are cut off", func(t *testing.T) {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		closed := make(chan time.Duration, 1)
		go func() {
			// The server closes without an answer when the header
			// timeout (10 s) fires.
			c.SetReadDeadline(time.Now().Add(20 * time.Second))
			io.Copy(io.Discard, c)
			closed <- time.Since(start)
		}()
		drip := []byte("GET /metrics HTTP/1.1\r\nHost: reachd\r\nX-Slow: " + strings.Repeat("a", 100))
		for i := 0; ; i++ {
			select {
			case took := <-closed:
				if took < 8*time.Second || took > 15*time.Second {
					t.Fatalf("cut off after %v, want about the 10s ReadHeaderTimeout", took)
				}
				t.Logf("a client dripping one header byte every 500ms was cut off after %v", took.Round(time.Millisecond))
				return
			case <-time.After(500 * time.Millisecond):
			}
			if _, err := c.Write(drip[i%len(drip) : i%len(drip)+1]); err != nil {
				took := time.Since(start)
				if took < 8*time.Second || took > 15*time.Second {
					t.Fatalf("write failed after %v (%v), want about the 10s ReadHeaderTimeout", took, err)
				}
				t.Logf("a client dripping one header byte every 500ms was cut off after %v", took.Round(time.Millisecond))
				return
			}
			if time.Since(start) > 16*time.Second {
				t.Fatal("a dripping client was still connected after 16s: no header timeout")
			}
		}
	})
}
