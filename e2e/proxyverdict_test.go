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
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reachd/reachd/probe/probetest"
)

// verdict is what a probe must report: reason "" is success.
type verdict struct {
	probe, stage, reason string
	details              []string
}

// checkVerdicts runs `reachd check` on config and compares each result.
func checkVerdicts(t *testing.T, dir, config string, want []verdict) map[string]checkResult {
	t.Helper()
	file := writeFile(t, dir, "reachd.toml", config)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, out, stderr := runReachd(t, ctx, nil, "check", "--config.file", file, "--format", "json")
	var doc struct{ Results []checkResult }
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("%v\n%s\n%s", err, out, stderr)
	}
	got := map[string]checkResult{}
	for _, r := range doc.Results {
		got[r.Target+"/"+r.Path] = r
		t.Logf("%s/%s: success=%v %s %s %s", r.Target, r.Path, r.Success, r.Stage, r.Reason, r.Detail)
	}
	if len(got) != len(want) {
		t.Errorf("%d probes, want %d", len(got), len(want))
	}
	for _, w := range want {
		r, ok := got[w.probe]
		switch {
		case !ok:
			t.Errorf("%s: no result", w.probe)
		case w.reason == "" && !r.Success:
			t.Errorf("%s: %s %s %q, want success", w.probe, r.Stage, r.Reason, r.Detail)
		case w.reason != "" && (r.Success || r.Stage != w.stage || r.Reason != w.reason):
			t.Errorf("%s: success=%v %s %s %q, want %s %s", w.probe, r.Success, r.Stage, r.Reason, r.Detail, w.stage, w.reason)
		default:
			for _, d := range w.details {
				if !strings.Contains(r.Detail, d) {
					t.Errorf("%s: detail %q lacks %q", w.probe, r.Detail, d)
				}
			}
		}
	}
	return got
}

// TestSquidBumpedVerdicts probes through squid 5.7's ssl-bump port, where
// squid answers every CONNECT 200, bumps, and serves its own error pages
// inside the tunnel, and through its plain port, where it refuses the
// CONNECT: both read alike, as the proxy's verdicts (issue 17).
func TestSquidBumpedVerdicts(t *testing.T) {
	labCA, bumpCA := probetest.NewCA(t, "E2E Lab Root CA"), probetest.NewCA(t, "Squid Bump CA")
	otherCA := probetest.NewCA(t, "Unknown Origin CA")
	good := probetest.NewTLSServer(t, probetest.Issuer(labCA), probetest.Hosts("good.reachd.test"))
	denied := probetest.NewTLSServer(t, probetest.Issuer(labCA), probetest.Hosts("denied.reachd.test"))
	badTLS := probetest.NewTLSServer(t, probetest.Issuer(otherCA), probetest.Hosts("badtls.reachd.test"))
	closed := freePort(t)
	dnsSrv := probetest.NewDNSServer(t, probetest.Records{
		"good.reachd.test":    {A: []string{"127.0.0.1"}},
		"denied.reachd.test":  {A: []string{"127.0.0.1"}},
		"badtls.reachd.test":  {A: []string{"127.0.0.1"}},
		"refused.reachd.test": {A: []string{"127.0.0.1"}},
	})
	// CONNECT to the denied server's port is not allowed.
	sq := startSquid(t, dnsSrv.Addr, labCA, bumpCA, good.Port, badTLS.Port, closed)
	dir := t.TempDir()
	cfg := fmt.Sprintf(`site = "bump-e2e"
direct = false
[defaults]
timeout = "5s"
[[resolver]]
name = "lab"
servers = [%q]
[trust]
ca_files = [%q]
[[path]]
name = "bump"
proxy = %q
ca_file = %q
[[path]]
name = "open"
proxy = %q
`, dnsSrv.Addr, writeFile(t, dir, "lab.pem", string(labCA.PEM)), sq.url(sq.BumpPort),
		writeFile(t, dir, "bump.pem", string(bumpCA.PEM)), sq.url(sq.OpenPort))
	for _, tg := range []struct {
		name, host string
		port       int
	}{
		{"good", "good.reachd.test", good.Port},
		{"denied", "denied.reachd.test", denied.Port},
		{"refused", "refused.reachd.test", closed},
		{"nxdomain", "nx.reachd.test", good.Port},
		{"badtls", "badtls.reachd.test", badTLS.Port},
	} {
		cfg += fmt.Sprintf("[[target]]\nvendor = \"acme\"\nregion = \"jp\"\nname = %q\nhost = %q\nport = %d\n", tg.name, tg.host, tg.port)
	}
	// What squid 5.7 really answered (its pages quoted in
	// probe/proxy_verdict_test.go): on the bump port, CONNECT 200 and then
	// 403 ERR_ACCESS_DENIED, 503 ERR_CONNECT_FAIL 111, 502 ERR_READ_ERROR
	// (a name that does not resolve), 503 ERR_SECURE_CONNECT_FAIL "(TLS
	// code: SQUID_TLS_ERR_CONNECT+TLS_IO_ERR=1)"; on the open port the
	// same refusals to CONNECT, and 500 ERR_CANNOT_FORWARD for the name.
	inside := `itself, inside the tunnel`
	got := checkVerdicts(t, dir, cfg, []verdict{
		{"good/bump", "", "", nil},
		{"good/open", "", "", nil},
		{"denied/bump", "proxy", "proxy_denied", []string{`answered "403 Forbidden" ` + inside + ` (X-Squid-Error "ERR_ACCESS_DENIED 0")`}},
		{"denied/open", "proxy", "proxy_denied", []string{`answered "403 Forbidden" (X-Squid-Error "ERR_ACCESS_DENIED 0")`}},
		{"refused/bump", "proxy", "proxy_upstream_failed", []string{`answered "503 Service Unavailable" ` + inside + ` (X-Squid-Error "ERR_CONNECT_FAIL 111")`}},
		{"refused/open", "proxy", "proxy_upstream_failed", []string{`answered "503 Service Unavailable" (X-Squid-Error "ERR_CONNECT_FAIL 111")`}},
		{"nxdomain/bump", "proxy", "proxy_upstream_failed", []string{inside, `X-Squid-Error "ERR_READ_ERROR 0"`}},
		{"nxdomain/open", "proxy", "proxy_upstream_failed", []string{`answered "500 Internal Server Error" (X-Squid-Error "ERR_CANNOT_FORWARD 0")`}},
		{"badtls/bump", "proxy", "proxy_upstream_failed", []string{inside, `X-Squid-Error "ERR_SECURE_CONNECT_FAIL 0"`, "TLS code: SQUID_TLS_ERR_CONNECT", "the proxy's own TLS connection to the origin failed"}},
		// Not bumped, reachd sees the origin's chain itself.
		{"badtls/open", "tls", "tls_untrusted_ca", []string{`"Unknown Origin CA"`}},
	})
	if r := got["good/bump"]; r.TLS == nil || !r.TLS.Intercepted {
		t.Errorf("good/bump: tls %+v, want intercepted", r.TLS)
	}
}

// TestTinyproxyDialect runs a real tinyproxy 1.11 with Basic auth. It
// answers wrong credentials with 401 and WWW-Authenticate, none with 407,
// and an upstream that refuses with 500 "Unable to connect". The targets
// are IP literals: tinyproxy resolves names with the system resolver,
// which a test never uses.
func TestTinyproxyDialect(t *testing.T) {
	requireRoot(t)
	bin := requireTool(t, "tinyproxy", "tinyproxy")
	labCA := probetest.NewCA(t, "E2E Lab Root CA")
	good := probetest.NewTLSServer(t, probetest.Issuer(labCA), probetest.Hosts("127.0.0.1"))
	closed := freePort(t)
	dir := t.TempDir()
	port := freePort(t)
	conf := writeFile(t, dir, "tinyproxy.conf", fmt.Sprintf(`User nobody
Group nogroup
Port %d
Listen 127.0.0.1
Timeout 10
MaxClients 20
LogLevel Info
Allow 127.0.0.1
BasicAuth svc Tiny-s3cret
`, port))
	startTool(t, "tinyproxy", port, exec.Command(bin, "-d", "-c", conf))

	proxy := "http://127.0.0.1:" + strconv.Itoa(port)
	cfg := fmt.Sprintf(`site = "tinyproxy-e2e"
direct = false
[defaults]
timeout = "5s"
[trust]
ca_files = [%q]
[[path]]
name = "none"
proxy = %q
[[path]]
name = "wrong"
proxy = %q
username = "svc"
password_file = %q
[[path]]
name = "auth"
proxy = %q
username = "svc"
password_file = %q
[[target]]
vendor = "acme"
region = "jp"
name = "good"
host = "127.0.0.1"
port = %d
[[target]]
vendor = "acme"
region = "jp"
name = "refused"
host = "127.0.0.1"
port = %d
paths = ["auth"]
`, writeFile(t, dir, "lab.pem", string(labCA.PEM)), proxy, proxy, writeFile(t, dir, "wrong.pass", "not-it\n"),
		proxy, writeFile(t, dir, "good.pass", "Tiny-s3cret\n"), good.Port, closed)
	got := checkVerdicts(t, dir, cfg, []verdict{
		{"good/auth", "", "", nil},
		{"good/none", "proxy", "proxy_auth_required", []string{"demands credentials (407; offers Basic) and the path has none"}},
		{"good/wrong", "proxy", "proxy_auth_rejected", []string{"rejected the configured credentials (401; offers Basic)"}},
		{"refused/auth", "proxy", "proxy_upstream_failed", []string{`answered "500 Unable to connect"`}},
	})
	for k, r := range got {
		if strings.Contains(r.Detail, "Tiny-s3cret") || strings.Contains(r.Detail, "not-it") {
			t.Errorf("%s: the detail shows a password: %s", k, r.Detail)
		}
	}
}

// TestMitmproxyPageInsideTheTunnel runs a real mitmproxy 8.1: it answers
// CONNECT 200, and when the origin's certificate does not verify it
// serves its own 502 "Certificate verify failed: ..." inside the tunnel;
// a refused upstream is a 502 to CONNECT with a text body.
func TestMitmproxyPageInsideTheTunnel(t *testing.T) {
	bin := requireTool(t, "mitmdump", "mitmproxy")
	otherCA := probetest.NewCA(t, "Unknown Origin CA")
	badTLS := probetest.NewTLSServer(t, probetest.Issuer(otherCA), probetest.Hosts("127.0.0.1"))
	closed := freePort(t)
	dir := t.TempDir()
	port := freePort(t)
	cmd := exec.Command(bin, "--listen-host", "127.0.0.1", "-p", strconv.Itoa(port), "--set", "confdir="+dir)
	startTool(t, "mitmdump", port, cmd)
	mitmCA := filepath.Join(dir, "mitmproxy-ca-cert.pem")
	if _, err := os.Stat(mitmCA); err != nil {
		t.Fatalf("mitmproxy wrote no CA: %v", err)
	}
	cfg := fmt.Sprintf(`site = "mitm-e2e"
direct = false
[defaults]
timeout = "5s"
[[path]]
name = "mitm"
proxy = "http://127.0.0.1:%d"
ca_file = %q
[[target]]
vendor = "acme"
region = "jp"
name = "badtls"
host = "127.0.0.1"
port = %d
[[target]]
vendor = "acme"
region = "jp"
name = "refused"
host = "127.0.0.1"
port = %d
`, port, mitmCA, badTLS.Port, closed)
	checkVerdicts(t, dir, cfg, []verdict{
		{"badtls/mitm", "proxy", "proxy_upstream_failed", []string{`answered "502 Bad Gateway" itself, inside the tunnel (Server "mitmproxy 8.1.1"): "Certificate verify failed: `,
			"the proxy's own TLS connection to the origin failed"}},
		{"refused/mitm", "proxy", "proxy_upstream_failed", []string{`answered "502 Bad Gateway": "Cannot connect to 127.0.0.1:` + strconv.Itoa(closed)}},
	})
}

// startTool starts cmd in a process group of its own, kills the group
// when the test ends, and returns once 127.0.0.1:port accepts connections.
func startTool(t *testing.T, name string, port int, cmd *exec.Cmd) {
	t.Helper()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out := &lockedWriter{w: &strings.Builder{}}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		if t.Failed() {
			t.Logf("%s output:\n%s", name, out.w)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case err := <-done:
			done <- err
			t.Fatalf("%s exited before listening on %d: %v\n%s", name, port, err, out.w)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not listening on %d within 30s\n%s", name, port, out.w)
		}
	}
}
