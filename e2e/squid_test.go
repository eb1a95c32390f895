//go:build e2e

package e2e

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/miekg/dns"

	"github.com/reachd/reachd/probe/probetest"
)

const (
	squidPkg      = "squid-openssl"
	squidLibexec  = "/usr/lib/squid"
	squidPassword = "Squid-E2E-s3cret" // the test user's password in the htpasswd file
)

// squid is a real squid on 127.0.0.1 with three ports: open (no
// authentication), auth (Basic, user svc) and bump (ssl-bump with the
// test's CA). It can connect only to 127.0.0.0/8 and resolves only
// through the test's DNS server. It is killed when the test ends.
type squid struct {
	OpenPort, AuthPort, BumpPort int
	Dir                          string // config, logs, the certificate database; owned by proxy
	DNSServer                    string // the relay squid asks, an IP on port 53
	AllowedPorts                 string // CONNECT to other ports is denied (403)
}

func (s *squid) url(port int) string { return "http://127.0.0.1:" + strconv.Itoa(port) }

// startSquid starts squid with the config of testdata/squid.conf.tmpl,
// resolving through dnsAddr (a probetest DNS server), trusting upstreamCA
// for the servers it bumps, re-signing with bumpCA, allowing CONNECT to
// allowedPorts only. It returns once every port accepts connections.
func startSquid(t *testing.T, dnsAddr string, upstreamCA, bumpCA *probetest.CA, allowedPorts ...int) *squid {
	t.Helper()
	requireRoot(t)
	bin := requireTool(t, "squid", squidPkg)
	requireFile(t, filepath.Join(squidLibexec, "basic_ncsa_auth"), squidPkg)
	certgen := requireFile(t, filepath.Join(squidLibexec, "security_file_certgen"), squidPkg)
	htpasswd := requireTool(t, "htpasswd", "apache2-utils")
	if out, _ := exec.Command(bin, "-v").Output(); !strings.Contains(string(out), "--with-openssl") {
		t.Fatalf("%s is built without OpenSSL: install %s (it replaces squid) for ssl-bump", bin, squidPkg)
	}
	proxyUser, err := user.Lookup("proxy")
	if err != nil {
		t.Fatalf("no proxy user to run squid as (%v): install %s", err, squidPkg)
	}
	uid, _ := strconv.Atoi(proxyUser.Uid)
	gid, _ := strconv.Atoi(proxyUser.Gid)

	// Not t.TempDir: its parents are closed to the proxy user.
	dir, err := os.MkdirTemp("", "reachd-squid-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	var ports []string
	for _, p := range allowedPorts {
		ports = append(ports, strconv.Itoa(p))
	}
	s := &squid{OpenPort: freePort(t), AuthPort: freePort(t), BumpPort: freePort(t), Dir: dir,
		DNSServer: dnsRelay(t, dnsAddr), AllowedPorts: strings.Join(ports, " ")}

	tmpl := template.Must(template.ParseFiles("testdata/squid.conf.tmpl"))
	var conf strings.Builder
	if err := tmpl.Execute(&conf, s); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "squid.conf", conf.String())
	writeFile(t, dir, "upstream-ca.pem", string(upstreamCA.PEM))
	writeFile(t, dir, "bump-ca.pem", string(bumpCA.PEM)+string(keyPEM(t, bumpCA)))
	cmd := exec.Command(htpasswd, "-i", "-c", "-m", filepath.Join(dir, "htpasswd"), "svc")
	cmd.Stdin = strings.NewReader(squidPassword)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("htpasswd: %v\n%s", err, out)
	}
	if out, err := exec.Command(certgen, "-c", "-s", filepath.Join(dir, "ssl_db"), "-M", "4MB").CombinedOutput(); err != nil {
		t.Fatalf("security_file_certgen -c: %v\n%s", err, out)
	}
	if err := chownTree(dir, uid, gid); err != nil {
		t.Fatal(err)
	}

	sq := exec.Command(bin, "-N", "-f", filepath.Join(dir, "squid.conf"))
	sq.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // squid and its helpers: one group to kill
	out := &lockedWriter{w: &strings.Builder{}}
	sq.Stdout, sq.Stderr = out, out
	if err := sq.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sq.Wait() }()
	t.Cleanup(func() {
		syscall.Kill(-sq.Process.Pid, syscall.SIGKILL)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("squid (process group %d) did not die within 10s of SIGKILL", sq.Process.Pid)
		}
		if t.Failed() {
			t.Logf("squid output:\n%s\ncache.log:\n%s\naccess.log:\n%s", out.w, readFile(dir, "cache.log"), readFile(dir, "access.log"))
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for _, port := range []int{s.OpenPort, s.AuthPort, s.BumpPort} {
		for {
			c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case err := <-done:
				done <- err
				t.Fatalf("squid exited before listening on %d: %v\n%s\n%s", port, err, out.w, readFile(dir, "cache.log"))
			case <-time.After(50 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("squid not listening on %d within 30s\n%s", port, readFile(dir, "cache.log"))
			}
		}
	}
	return s
}

// accessLog is what squid logged so far.
func (s *squid) accessLog() string { return readFile(s.Dir, "access.log") }

// requireFile is requireTool for a file outside $PATH.
func requireFile(t *testing.T, path, pkg string) string {
	t.Helper()
	if _, err := os.Stat(path); err == nil {
		return path
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s not found: .ci/run must install the Debian package %s", path, pkg)
	}
	t.Skipf("SKIPPED LOUDLY: %s not found; install the Debian package %s (CI fails here)", path, pkg)
	return ""
}

func readFile(dir, name string) string {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return err.Error()
	}
	return string(b)
}

func keyPEM(t *testing.T, ca *probetest.CA) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func chownTree(dir string, uid, gid int) error {
	return filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

// dnsRelay forwards UDP queries from a free private loopback address on
// port 53 (squid's dns_nameservers takes no port) to the DNS server at
// upstream, and returns that address.
func dnsRelay(t *testing.T, upstream string) string {
	t.Helper()
	var pc net.PacketConn
	var ip string
	for range 20 {
		ip = fmt.Sprintf("127.53.%d.%d", 1+rand.IntN(254), 1+rand.IntN(254))
		var err error
		if pc, err = net.ListenPacket("udp", net.JoinHostPort(ip, "53")); err == nil {
			break
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatalf("DNS relay: %v", err)
		}
	}
	if pc == nil {
		t.Fatal("DNS relay: no free loopback address on port 53")
	}
	client := &dns.Client{Timeout: 2 * time.Second}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, m *dns.Msg) {
		in, _, err := client.Exchange(m, upstream)
		if err != nil {
			dns.HandleFailed(w, m)
			return
		}
		w.WriteMsg(in)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	served := make(chan error, 1)
	go func() { served <- srv.ActivateAndServe() }()
	select {
	case <-started:
	case err := <-served:
		t.Fatalf("DNS relay: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("DNS relay did not start within 10s")
	}
	t.Cleanup(func() {
		srv.Shutdown()
		<-served
	})
	return ip
}

// squidWorld is the loopback internet behind squid: TLS servers issued by
// a lab CA, named by a probetest DNS server that reachd and squid share.
type squidWorld struct {
	dir                   string
	dns                   *probetest.DNSServer
	labCA, bumpCA         *probetest.CA
	good, blocked         *probetest.TLSServer
	closedPort            int
	squid                 *squid
	labCAFile, bumpCAFile string
}

func newSquidWorld(t *testing.T) *squidWorld {
	t.Helper()
	w := &squidWorld{dir: t.TempDir(), labCA: probetest.NewCA(t, "E2E Lab Root CA"), bumpCA: probetest.NewCA(t, "Squid Bump CA")}
	w.good = probetest.NewTLSServer(t, probetest.Issuer(w.labCA), probetest.Hosts("good.reachd.test"))
	w.blocked = probetest.NewTLSServer(t, probetest.Issuer(w.labCA), probetest.Hosts("blocked.reachd.test"))
	w.closedPort = freePort(t)
	w.dns = probetest.NewDNSServer(t, probetest.Records{
		"good.reachd.test":    {A: []string{"127.0.0.1"}},
		"blocked.reachd.test": {A: []string{"127.0.0.1"}},
		"refused.reachd.test": {A: []string{"127.0.0.1"}},
	})
	// CONNECT to the blocked server's port is not allowed; the closed
	// port is, so squid tries it and is refused.
	w.squid = startSquid(t, w.dns.Addr, w.labCA, w.bumpCA, w.good.Port, w.closedPort)
	w.labCAFile = writeFile(t, w.dir, "lab-ca.pem", string(w.labCA.PEM))
	w.bumpCAFile = writeFile(t, w.dir, "squid-bump-ca.pem", string(w.bumpCA.PEM))
	return w
}

// config is a reachd config with the lab CA as legitimate, the paths
// through squid, and targets that each take the paths their scenario needs.
func (w *squidWorld) config(t *testing.T) string {
	t.Helper()
	good := writeFile(t, w.dir, "good.pass", squidPassword+"\n")
	wrong := writeFile(t, w.dir, "wrong.pass", "not-the-password\n")
	sq := w.squid
	return fmt.Sprintf(`site = "squid-e2e"
[defaults]
interval = "5s"
timeout = "5s"

[[resolver]]
name = "lab"
servers = [%q]

[trust]
ca_files = [%q]

[[path]]
name = "open"
proxy = %q

[[path]]
name = "auth-none"
proxy = %q

[[path]]
name = "auth"
proxy = %q
username = "svc"
password_file = %q

[[path]]
name = "auth-wrong"
proxy = %q
username = "svc"
password_file = %q

[[path]]
name = "bump-ca"
proxy = %q
ca_file = %q

[[path]]
name = "bump"
proxy = %q

[[target]]
vendor = "acme"
region = "jp"
name = "good"
host = "good.reachd.test"
port = %d
http = { expect_status = [200], expect_body = "^ok" }

[[target]]
vendor = "acme"
region = "jp"
name = "blocked"
host = "blocked.reachd.test"
port = %d
paths = ["open"]

[[target]]
vendor = "acme"
region = "jp"
name = "refused"
host = "refused.reachd.test"
port = %d
paths = ["open"]
`, w.dns.Addr, w.labCAFile,
		sq.url(sq.OpenPort), sq.url(sq.AuthPort), sq.url(sq.AuthPort), good, sq.url(sq.AuthPort), wrong,
		sq.url(sq.BumpPort), w.bumpCAFile, sq.url(sq.BumpPort),
		w.good.Port, w.blocked.Port, w.closedPort)
}

type checkResult struct {
	Target, Path, Stage, Reason, Detail string
	Success                             bool
	Stages                              []struct{ Stage string }
	TLS                                 *struct {
		Issuer      string
		Intercepted bool
	}
	HTTP *struct{ Status int }
}

// TestSquidPaths runs `reachd check` over every path through a real
// squid and checks each outcome: the reason, what the detail says, and
// what squid itself logged.
func TestSquidPaths(t *testing.T) {
	w := newSquidWorld(t)
	file := writeFile(t, w.dir, "reachd.toml", w.config(t))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code, out, stderr := runReachd(t, ctx, nil, "check", "--config.file", file, "--format", "json")
	if code != 1 {
		t.Fatalf("exit %d, want 1 (some paths fail)\n%s\n%s", code, stderr, out)
	}
	var doc struct{ Results []checkResult }
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	got := map[string]checkResult{}
	for _, r := range doc.Results {
		got[r.Target+"/"+r.Path] = r
		t.Logf("%s/%s: success=%v %s %s %s", r.Target, r.Path, r.Success, r.Stage, r.Reason, r.Detail)
	}

	tests := []struct {
		probe          string
		reason, detail string // reason "" is success
		issuer         string
		intercepted    bool
	}{
		{"good/direct", "", "", "E2E Lab Root CA", false},
		{"good/open", "", "", "E2E Lab Root CA", false},
		{"good/auth", "", "", "E2E Lab Root CA", false},
		{"good/auth-none", "proxy_auth_required", "demands credentials (407; offers Basic) and the path has none", "", false},
		{"good/auth-wrong", "proxy_auth_rejected", "rejected the configured credentials (407; offers Basic)", "", false},
		{"blocked/open", "proxy_denied", `answered "403 Forbidden" (X-Squid-Error "ERR_ACCESS_DENIED 0")`, "", false},
		{"refused/open", "proxy_upstream_failed", `answered "503 Service Unavailable" (X-Squid-Error "ERR_CONNECT_FAIL 111")`, "", false},
		{"good/bump-ca", "", "", "Squid Bump CA", true},
		{"good/bump", "tls_untrusted_ca", `the chain ends in "Squid Bump CA"`, "", false},
	}
	if len(got) != len(tests) {
		t.Errorf("%d probes, want %d", len(got), len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.probe, func(t *testing.T) {
			r, ok := got[tt.probe]
			if !ok {
				t.Fatalf("no result for %s", tt.probe)
			}
			if tt.reason == "" {
				if !r.Success || r.TLS == nil || r.TLS.Issuer != tt.issuer || r.TLS.Intercepted != tt.intercepted || r.HTTP == nil || r.HTTP.Status != 200 {
					t.Fatalf("%+v, want success with issuer %q intercepted %v and HTTP 200", r, tt.issuer, tt.intercepted)
				}
			} else if r.Success || r.Reason != tt.reason || !strings.Contains(r.Detail, tt.detail) {
				t.Fatalf("%s %s %q, want %s with %q", r.Stage, r.Reason, r.Detail, tt.reason, tt.detail)
			}
			if want := map[bool]string{true: "dns", false: "proxy"}[strings.HasSuffix(tt.probe, "/direct")]; r.Stages[0].Stage != want {
				t.Errorf("first stage %s, want %s", r.Stages[0].Stage, want)
			}
		})
	}

	// Squid saw the authenticated tunnel as user svc, and bumped.
	log := w.squid.accessLog()
	good := "good.reachd.test:" + strconv.Itoa(w.good.Port)
	for _, re := range []string{
		`TCP_TUNNEL/200 \d+ CONNECT ` + regexp.QuoteMeta(good) + ` svc `,
		`TCP_DENIED/407 \d+ CONNECT ` + regexp.QuoteMeta(good) + ` `,
		`TCP_DENIED/403 \d+ CONNECT blocked\.reachd\.test:` + strconv.Itoa(w.blocked.Port),
		`/503 \d+ CONNECT refused\.reachd\.test:` + strconv.Itoa(w.closedPort),
		`NONE_NONE/200 0 CONNECT ` + regexp.QuoteMeta(good),
	} {
		if !regexp.MustCompile(re).MatchString(log) {
			t.Errorf("squid's access.log lacks %s", re)
		}
	}

	// The text report shows a target's paths side by side.
	_, text, _ := runReachd(t, ctx, nil, "check", "--config.file", file, "--target", "good")
	for _, re := range []string{
		`(?m)^\s*OK\s+direct\b`,
		`(?m)^\s*OK\s+auth\b`,
		`(?m)^\s*FAIL\s+auth-none\b.*proxy_auth_required`,
		`(?m)^\s*OK\s+bump-ca\b.*issuer "Squid Bump CA".*INTERCEPTED`,
		`(?m)^\s*FAIL\s+bump\b.*tls_untrusted_ca`,
		// The agent's view: the same squid refuses the path without
		// credentials and lets the one with them through.
		`(?m)^\s*agents: proxy http://127\.0\.0\.1:\d+ lets 1 target\(s\) through only with credentials`,
	} {
		if !regexp.MustCompile(re).MatchString(text) {
			t.Errorf("text report lacks %s\n%s", re, text)
		}
	}
}

// TestSquidDaemonInterception runs `reachd run` through squid's ssl-bump
// and reads the interception from /metrics.
func TestSquidDaemonInterception(t *testing.T) {
	w := newSquidWorld(t)
	cfg := strings.Replace(w.config(t), "[[target]]", "[[target]]\npaths = [\"bump-ca\", \"open\"]", 1)
	file := writeFile(t, w.dir, "reachd.toml", cfg)
	d, _, _ := startDaemonCapturing(t, "--config.file", file)
	good := func(path string) map[string]string { return map[string]string{"target": "good", "path": path} }
	metrics := d.waitFor(t, "/metrics", func(code int, body string) bool {
		return code == 200 && strings.Count(body, "reachd_probe_success{") == 4 && // good on two paths, blocked, refused
			hasSeries(body, "reachd_probe_success", good("bump-ca"), "1") && hasSeries(body, "reachd_probe_success", good("open"), "1")
	})
	for _, want := range []struct {
		name   string
		labels map[string]string
		value  string
	}{
		{"reachd_tls_intercepted", good("bump-ca"), "1"},
		{"reachd_tls_issuer_info", map[string]string{"target": "good", "path": "bump-ca", "issuer": "Squid Bump CA"}, "1"},
		{"reachd_tls_intercepted", good("open"), "0"},
		{"reachd_tls_issuer_info", map[string]string{"target": "good", "path": "open", "issuer": "E2E Lab Root CA"}, "1"},
	} {
		if !hasSeries(metrics, want.name, want.labels, want.value) {
			t.Errorf("/metrics lacks %s%v %s", want.name, want.labels, want.value)
		}
	}
	// The status page shows the target's paths side by side, with the
	// interception and the failing paths' reasons.
	_, page, _ := d.get("/")
	for _, want := range []string{"bump-ca", "Squid Bump CA", "proxy_denied", "proxy_upstream_failed"} {
		if !strings.Contains(page, want) {
			t.Errorf("the status page lacks %q", want)
		}
	}
}

// hasSeries reports whether the exposition has a sample of name whose
// labels include labels, with value.
func hasSeries(exposition, name string, labels map[string]string, value string) bool {
	for _, line := range strings.Split(exposition, "\n") {
		rest, ok := strings.CutPrefix(line, name+"{")
		if !ok {
			continue
		}
		set, v, ok := strings.Cut(rest, "} ")
		if !ok || v != value {
			continue
		}
		all := true
		for k, want := range labels {
			all = all && strings.Contains(","+set+",", ","+k+"="+strconv.Quote(want)+",")
		}
		if all {
			return true
		}
	}
	return false
}

// TestSquidAdHocCheck runs `reachd check --host ... --proxy ...` without a
// config file: the quick test an operator runs at a site.
func TestSquidAdHocCheck(t *testing.T) {
	w := newSquidWorld(t)
	sq := w.squid
	t.Setenv("REACHD_PROXY_PASSWORD", squidPassword)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tests := []struct {
		name          string
		args          []string
		stage, reason string
		detail        string // in the detail of a failure, or the issuer on success
	}{
		{"no credentials", []string{"--proxy", sq.url(sq.AuthPort)}, "proxy", "proxy_auth_required", "offers Basic"},
		// Through the authenticated tunnel the lab CA is unknown: the probe
		// got past the proxy.
		{"credentials", []string{"--proxy", sq.url(sq.AuthPort), "--proxy-user", "svc"}, "tls", "tls_untrusted_ca", `"E2E Lab Root CA"`},
		{"interception CA", []string{"--proxy", sq.url(sq.BumpPort), "--ca-file", w.bumpCAFile}, "", "", "Squid Bump CA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"check", "--host", "good.reachd.test:" + strconv.Itoa(w.good.Port), "--resolver", w.dns.Addr,
				"--timeout", "5s", "--format", "json"}, tt.args...)
			code, out, stderr := runReachd(t, ctx, nil, args...)
			var doc struct{ Results []checkResult }
			if err := json.Unmarshal([]byte(out), &doc); err != nil || len(doc.Results) != 1 {
				t.Fatalf("exit %d: %v\n%s\n%s", code, err, out, stderr)
			}
			r := doc.Results[0]
			if r.Path != "proxy" || r.Stages[0].Stage != "proxy" {
				t.Errorf("path %q stages %v: want the proxy path only", r.Path, r.Stages)
			}
			if tt.reason == "" {
				if code != 0 || !r.Success || r.TLS == nil || !r.TLS.Intercepted || r.TLS.Issuer != tt.detail {
					t.Errorf("exit %d %+v, want success intercepted by %s", code, r, tt.detail)
				}
				return
			}
			if code != 1 || r.Stage != tt.stage || r.Reason != tt.reason || !strings.Contains(r.Detail, tt.detail) {
				t.Errorf("exit %d: %s %s %q, want %s %s with %q", code, r.Stage, r.Reason, r.Detail, tt.stage, tt.reason, tt.detail)
			}
		})
	}
}
