//go:build e2e

package e2e

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reachd/reachd/probe/probetest"
)

// TestCheckOneConnectionAtATime: `openssl s_server -www` serves one
// connection at a time. reachd check passes against it, within the
// timeout plus one sweep handshake timeout: the TLS sweep runs after the
// stages closed their connection, not while the http stage waits for it.
func TestCheckOneConnectionAtATime(t *testing.T) {
	openssl := requireTool(t, "openssl", "openssl")
	dir := t.TempDir()
	ca := probetest.NewCA(t, "Serial Test CA")
	leaf := ca.Issue(t, []string{"127.0.0.1"}, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
	key, err := x509.MarshalPKCS8PrivateKey(leaf.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile := writeFile(t, dir, "leaf.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Certificate[0]})))
	keyFile := writeFile(t, dir, "leaf.key", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key})))
	caFile := writeFile(t, dir, "ca.pem", string(ca.PEM))
	port := freePort(t)
	srv := exec.Command(openssl, "s_server", "-accept", "127.0.0.1:"+strconv.Itoa(port), "-cert", certFile, "-key", keyFile, "-www", "-quiet")
	srv.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-srv.Process.Pid, syscall.SIGKILL); srv.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("openssl s_server is not listening within 10s")
		}
		time.Sleep(50 * time.Millisecond)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	code, out, stderr := runReachd(t, ctx, nil, "check", "--host", "127.0.0.1:"+strconv.Itoa(port), "--ca-file", caFile,
		"--resolver", "127.0.0.1:1", "--timeout", "3s", "--format", "json")
	took := time.Since(start)
	var doc struct {
		Results []struct {
			Success         bool
			Stage, Reason   string
			Detail          string
			DurationSeconds float64 `json:"duration_seconds"`
			Stages          []struct{ Stage string }
			TLS             *struct {
				VersionsAccepted map[string]bool `json:"versions_accepted"`
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || len(doc.Results) != 1 {
		t.Fatalf("exit %d: %v\n%s\n%s", code, err, out, stderr)
	}
	r := doc.Results[0]
	var stages []string
	for _, s := range r.Stages {
		stages = append(stages, s.Stage)
	}
	if code != 0 || !r.Success || strings.Join(stages, ",") != "tcp,tls,http" {
		t.Fatalf("exit %d: success %v %s %s %q stages %v, want success", code, r.Success, r.Stage, r.Reason, r.Detail, stages)
	}
	if r.TLS == nil || !r.TLS.VersionsAccepted["1.2"] {
		t.Errorf("tls %+v, want the sweep's verdicts with 1.2 accepted", r.TLS)
	}
	if r.DurationSeconds >= 3 || took > 7*time.Second {
		t.Errorf("probe %.3fs, check %s: want the stages under the 3s timeout and all under 3s + 3s + 1s", r.DurationSeconds, took)
	}
}
