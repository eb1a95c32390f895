//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/reachd/reachd/probe/probetest"
)

// secretUser is the proxy user of the secrets test; each of its passwords
// is a string that appears nowhere else.
const secretUser = "svc-reachd"

var secretPasswords = map[string]string{
	"password_file":        "PwFromFile-7f3a9c1e",
	"password_env":         "PwFromEnv-51d0e2b8",
	"HTTPS_PROXY userinfo": "PwInProxyURL-c84b6d",
}

// authSecrets are the NTLM and Kerberos secrets of the test: an NTLM
// password, a Kerberos password and the bytes of a keytab. The proxy
// speaks only Basic, so they are sent (NTLM) or used (Kerberos, against a
// KDC that does not answer) and fail: every failure must leave them out.
var authSecrets = map[string]string{
	"ntlm password_file":     "NtlmPw-2b7e41d9",
	"negotiate password_env": "KrbPw-93c0aa17",
	"keytab contents":        "KeytabBytes-5e1f77c3",
}

// leaks returns every form of a secret found in out: the password itself,
// percent-encoded, and the base64 user:password of a Basic
// Proxy-Authorization.
func leaks(out string) []string {
	var found []string
	for source, pw := range authSecrets {
		for _, form := range []string{pw, base64.StdEncoding.EncodeToString([]byte(pw))} {
			if strings.Contains(out, form) {
				found = append(found, fmt.Sprintf("%q (the %s)", form, source))
			}
		}
	}
	for source, pw := range secretPasswords {
		for _, form := range []string{pw, url.QueryEscape(pw), url.PathEscape(pw), base64.StdEncoding.EncodeToString([]byte(secretUser + ":" + pw))} {
			if strings.Contains(out, form) {
				found = append(found, fmt.Sprintf("%q (the %s password)", form, source))
			}
		}
	}
	return found
}

// outputs collects everything reachd wrote or served, by where it came from.
type outputs struct {
	t    *testing.T
	seen []string
}

func (o *outputs) add(where, text string) {
	o.t.Helper()
	if text == "" {
		return
	}
	o.seen = append(o.seen, where)
	if found := leaks(text); len(found) > 0 {
		o.t.Errorf("%s reveals %s:\n%s", where, strings.Join(found, ", "), text)
	}
}

// TestSecretsNeverShown runs every command and endpoint of reachd with
// proxy passwords from a file, an environment variable and HTTPS_PROXY,
// has each sent to a proxy (which rejects two of them: 407, "probe down"),
// loads configs that carry a password inline and in a proxy URL, and
// searches every byte of stdout, stderr and every HTTP body for them.
func TestSecretsNeverShown(t *testing.T) {
	ca := probetest.NewCA(t, "Secrets Lab CA")
	srv := probetest.NewTLSServer(t, probetest.Issuer(ca), probetest.Hosts("vendor.reachd.test"))
	dnsSrv := probetest.NewDNSServer(t, probetest.Records{"vendor.reachd.test": {A: []string{"127.0.0.1"}}})
	target := "vendor.reachd.test:" + strconv.Itoa(srv.Port)
	// The proxy accepts the file's password only.
	proxy := probetest.NewProxy(t, probetest.BasicAuth(secretUser, secretPasswords["password_file"]),
		probetest.Upstream(map[string]string{target: srv.Addr}))
	t.Setenv("REACHD_E2E_PROXY_PASSWORD", secretPasswords["password_env"])
	t.Setenv("HTTPS_PROXY", (&url.URL{Scheme: "http", User: url.UserPassword(secretUser, secretPasswords["HTTPS_PROXY userinfo"]), Host: proxy.Addr}).String())
	t.Setenv("NO_PROXY", "")

	dir := t.TempDir()
	caFile := writeFile(t, dir, "ca.pem", string(ca.PEM))
	passFile := writeFile(t, dir, "proxy.pass", secretPasswords["password_file"]+"\n")
	ntlmFile := writeFile(t, dir, "ntlm.pass", authSecrets["ntlm password_file"]+"\n")
	keytab := writeFile(t, dir, "svc.keytab", "\x05\x02"+authSecrets["keytab contents"])
	krb5 := writeFile(t, dir, "krb5.conf", "[libdefaults]\ndefault_realm = REACHD.TEST\n[realms]\nREACHD.TEST = {\n kdc = 127.0.0.1:1\n}\n")
	t.Setenv("REACHD_E2E_KRB_PASSWORD", authSecrets["negotiate password_env"])
	good := fmt.Sprintf(`site = "secrets"
[defaults]
interval = "2s"
timeout = "2s"

[[resolver]]
name = "lab"
servers = [%q]

[trust]
ca_files = [%q]

[[path]]
name = "corp"
proxy = %q
username = %q
password_file = %q

[[path]]
name = "stale"
proxy = %q
username = %q
password_env = "REACHD_E2E_PROXY_PASSWORD"

[[path]]
name = "env"
proxy = "environment"

[[path]]
name = "ntlm"
proxy = %[9]q
auth = "ntlm"
username = 'CORP\svc'
password_file = %[10]q

[[path]]
name = "krb-password"
proxy = %[9]q
auth = "negotiate"
username = "svc"
password_env = "REACHD_E2E_KRB_PASSWORD"
krb5_conf = %[11]q

[[path]]
name = "krb-keytab"
proxy = %[9]q
auth = "negotiate"
keytab = %[12]q
principal = "svc@REACHD.TEST"
krb5_conf = %[11]q

[[target]]
vendor = "acme"
region = "jp"
name = "vendor"
host = "vendor.reachd.test"
port = %[8]d
`, dnsSrv.Addr, caFile, proxy.URL, secretUser, passFile, proxy.URL, secretUser, srv.Port, proxy.URL.String(), ntlmFile, krb5, keytab)
	// A config that writes the password where it must not be: inline, and
	// in the proxy URL. Loading it fails; the errors must not quote it.
	withCreds := *proxy.URL
	withCreds.User = url.UserPassword(secretUser, secretPasswords["password_file"])
	bad := good + fmt.Sprintf(`
[[path]]
name = "inline"
proxy = %q
username = %q
password = %q
`, withCreds.String(), secretUser, secretPasswords["password_file"])
	goodFile := writeFile(t, dir, "reachd.toml", good)
	badFile := writeFile(t, dir, "bad.toml", bad)

	out := &outputs{t: t}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run := func(wantCode int, args ...string) {
		t.Helper()
		code, stdout, stderr := runReachd(t, ctx, nil, args...)
		name := "reachd " + strings.Join(args, " ")
		if wantCode >= 0 && code != wantCode {
			t.Errorf("%s: exit %d, want %d\n%s\n%s", name, code, wantCode, stdout, stderr)
		}
		out.add(name+" stdout", stdout)
		out.add(name+" stderr", stderr)
	}
	run(0, "validate", "--config.file", goodFile)
	run(2, "validate", "--config.file", badFile)
	for _, format := range []string{"text", "json", "markdown"} {
		run(1, "check", "--config.file", goodFile, "--log.level=debug", "--format", format)
	}
	run(2, "check", "--config.file", badFile, "--log.level=debug")

	// Ad hoc: a password in --proxy is refused, and the refusal shows the
	// URL redacted.
	code, stdout, stderr := runReachd(t, ctx, nil, "check", "--host", target, "--resolver", dnsSrv.Addr, "--proxy", withCreds.String())
	if code != 2 || !strings.Contains(stderr, "carries credentials") || !strings.Contains(stderr, secretUser+":xxxxx@"+proxy.Addr) {
		t.Errorf("check --proxy with a password: exit %d, want 2 and the URL redacted\n%s", code, stderr)
	}
	out.add("reachd check --proxy URL-with-password stdout", stdout)
	out.add("reachd check --proxy URL-with-password stderr", stderr)
	// Ad hoc with --proxy-user: the password comes from the environment.
	cmd := exec.CommandContext(ctx, reachdBin(t), "check", "--host", target, "--resolver", dnsSrv.Addr, "--proxy", proxy.URL.String(),
		"--proxy-user", secretUser, "--log.level=debug", "--format", "json")
	cmd.Env = append(cmd.Environ(), "REACHD_PROXY_PASSWORD="+secretPasswords["password_env"])
	combined, _ := cmd.CombinedOutput()
	out.add("reachd check --proxy-user (REACHD_PROXY_PASSWORD)", string(combined))

	testDaemonSecrets(t, out, goodFile, badFile)

	// The secrets really were in play: the proxy received each of them.
	sent := map[string]bool{}
	for _, r := range proxy.Requests() {
		sent[r.ProxyAuthorization] = true
	}
	ntlmSent := false
	for auth := range sent {
		ntlmSent = ntlmSent || strings.HasPrefix(auth, "NTLM ")
	}
	if !ntlmSent {
		t.Error("the proxy never received an NTLM message: the test proves nothing about the NTLM path")
	}
	for source, pw := range secretPasswords {
		if !sent["Basic "+base64.StdEncoding.EncodeToString([]byte(secretUser+":"+pw))] {
			t.Errorf("the proxy never received the %s password: the test proves nothing about it", source)
		}
	}
	t.Logf("searched %d outputs: %s", len(out.seen), strings.Join(out.seen, "; "))
}

// testDaemonSecrets runs `reachd run` until the rejected paths log "probe
// down", reads every endpoint, fails a reload with the bad config, stops
// it, and adds everything it wrote and served to out.
func testDaemonSecrets(t *testing.T, out *outputs, file, badFile string) {
	t.Helper()
	d, stdout, stderr := startDaemonCapturing(t, "--config.file", file, "--web.enable-lifecycle", "--log.level=debug")
	d.waitFor(t, "/metrics", func(code int, body string) bool {
		return code == 200 && strings.Count(body, "reachd_probe_success{") == 7 && strings.Contains(body, "proxy_auth_rejected")
	})
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(stderr.String(), `msg="probe down"`) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the 407s were not logged as probe down within 30s:\n%s", stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, path := range []string{"/metrics", "/", "/api/v1/results", "/api/v1/targets", "/probe?target=acme/jp/vendor&path=stale",
		"/probe?target=acme/jp/vendor&path=env", "/-/healthy", "/-/ready"} {
		code, body, err := d.get(path)
		if err != nil || code != 200 {
			t.Errorf("GET %s: %d %v", path, code, err)
		}
		out.add("GET "+path, body)
	}

	bad, err := os.ReadFile(badFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(d.base+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var body strings.Builder
	io.Copy(&body, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 500 {
		t.Errorf("reload of the bad config: %d, want 500", resp.StatusCode)
	}
	out.add("POST /-/reload", body.String())
	d.cmd.Process.Signal(syscall.SIGHUP)
	d.waitFor(t, "/metrics", func(_ int, body string) bool {
		return strings.Contains(body, "reachd_config_last_reload_successful 0")
	})
	for _, path := range []string{"/", "/metrics"} { // the page shows the failed reload
		_, body, _ := d.get(path)
		out.add("GET "+path+" after the failed reload", body)
	}
	if code := d.stop(t); code != 0 {
		t.Errorf("exit %d after SIGTERM", code)
	}
	for _, want := range []string{`msg="probe down"`, "proxy_auth_rejected", "reloading the config failed"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("the daemon's log lacks %q: the search would miss what it should cover\n%s", want, stderr)
		}
	}
	out.add("reachd run stderr", stderr.String())
	out.add("reachd run stdout", stdout.String())
}

// syncBuffer is a buffer a child process writes while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startDaemonCapturing is startDaemon that keeps both stdout and stderr
// for the test to read while reachd runs. Its clean-up does not wait for
// an exit that waitFor already took from d.done, so the clean-ups
// registered before it (squid's) still run.
func startDaemonCapturing(t *testing.T, args ...string) (d *daemon, stdout, stderr *syncBuffer) {
	t.Helper()
	port := freePort(t)
	stdout, stderr = &syncBuffer{}, &syncBuffer{}
	d = &daemon{base: "http://127.0.0.1:" + strconv.Itoa(port), stderr: &bytes.Buffer{}, done: make(chan error, 1)}
	d.cmd = exec.Command(reachdBin(t), append([]string{"run", "--web.listen-address", "127.0.0.1:" + strconv.Itoa(port)}, args...)...)
	d.cmd.Stdout, d.cmd.Stderr = stdout, stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(func() {
		d.cmd.Process.Kill()
		select {
		case <-d.done:
		case <-time.After(10 * time.Second):
		}
		if t.Failed() {
			t.Logf("reachd stderr:\n%s", stderr)
		}
	})
	d.waitFor(t, "/-/ready", func(code int, _ string) bool { return code == 200 })
	return d, stdout, stderr
}
