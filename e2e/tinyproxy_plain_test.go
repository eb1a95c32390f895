//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestTinyproxyPlainHTTP: plain-HTTP targets on port 80 through a real
// tinyproxy (ConnectPort 443, its stock CONNECT policy): a GET in absolute
// form reaches the origin, and tinyproxy's own "500 Unable to connect"
// reads as the proxy's upstream failure, not as the origin's answer. The
// hosts are IP literals: tinyproxy resolves names with the system
// resolver, which a test must not use.
func TestTinyproxyPlainHTTP(t *testing.T) {
	bin := requireTool(t, "tinyproxy", "tinyproxy")
	ln, err := net.Listen("tcp", "127.0.80.82:80")
	if err != nil {
		t.Fatalf("listen on port 80: %v", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("crl")) })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	dir := t.TempDir()
	port := freePort(t)
	conf := writeFile(t, dir, "tinyproxy.conf", fmt.Sprintf("Port %d\nListen 127.0.0.1\nTimeout 5\nMaxClients 20\nAllow 127.0.0.1\nConnectPort 443\nLogLevel Info\n", port))
	tp := exec.Command(bin, "-d", "-c", conf)
	tp.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	log := &lockedWriter{w: &strings.Builder{}}
	tp.Stdout, tp.Stderr = log, log
	logText := func() string {
		log.mu.Lock()
		defer log.mu.Unlock()
		return log.w.(*strings.Builder).String()
	}
	if err := tp.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-tp.Process.Pid, syscall.SIGKILL); tp.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("tinyproxy is not listening within 10s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	file := writeFile(t, dir, "reachd.toml", fmt.Sprintf(`site = "tinyproxy-plain"
direct = false
[defaults]
timeout = "5s"

[[resolver]]
name = "none"
servers = ["127.0.0.1:1"]

[[path]]
name = "tiny"
proxy = "http://127.0.0.1:%d"

[[target]]
vendor = "acme"
region = "jp"
name = "crl"
host = "127.0.80.82"
port = 80
checks = ["tcp", "http"]
http = { path = "/pki/crl/root.crl", expect_status = [200] }

[[target]]
vendor = "acme"
region = "jp"
name = "gone"
host = "127.0.80.83"
port = 80
checks = ["tcp", "http"]
`, port))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code, out, stderr := runReachd(t, ctx, nil, "check", "--config.file", file, "--format", "json")
	var doc struct{ Results []checkResult }
	if err := json.Unmarshal([]byte(out), &doc); err != nil || len(doc.Results) != 2 {
		t.Fatalf("exit %d: %v\n%s\n%s", code, err, out, stderr)
	}
	got := map[string]checkResult{}
	for _, r := range doc.Results {
		got[r.Target] = r
	}
	if r := got["crl"]; !r.Success || r.HTTP == nil || r.HTTP.Status != 200 {
		t.Errorf("crl: success %v %s %s %q http %+v, want success with 200\ntinyproxy:\n%s", r.Success, r.Stage, r.Reason, r.Detail, r.HTTP, logText())
	}
	if r := got["gone"]; r.Success || r.Stage != "proxy" || r.Reason != "proxy_upstream_failed" || !strings.Contains(r.Detail, `"500 Unable to connect"`) {
		t.Errorf("gone: success %v %s %s %q, want proxy proxy_upstream_failed quoting tinyproxy", r.Success, r.Stage, r.Reason, r.Detail)
	}
	if strings.Contains(logText(), "): CONNECT ") {
		t.Errorf("reachd sent CONNECT:\n%s", logText())
	}
}
