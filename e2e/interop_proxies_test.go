//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reachd/reachd/probe/probetest"
)

// The proxies of the interop suite: tinyproxy, apache mod_proxy_connect,
// mitmproxy (a real intercepting proxy) and squid, each answering CONNECT
// in its own dialect.

const interopProxyPassword = "Interop-Proxy-s3cret"

// proxyWorld is the loopback internet behind the proxies: nginx upstreams
// and names the proxies resolve through the test's DNS server.
type proxyWorld struct {
	dir    string
	dns    *probetest.DNSServer
	pki    *interopPKI
	resolv string // resolv.conf naming the test's DNS (through a relay on port 53)
	// good: nginx 1.2+1.3 with a trusted certificate; other: the same
	// on a port the proxies do not allow; stranger: a certificate from
	// a CA nobody trusts; closed: nothing listens.
	goodPort, otherPort, strangerPort, closedPort int
	goodPass, wrongPass                           string
}

func newProxyWorld(t *testing.T) *proxyWorld {
	t.Helper()
	requireRoot(t) // the proxies run in a mount namespace that names the test's DNS
	requireTool(t, "unshare", "util-linux")
	w := &proxyWorld{dir: t.TempDir()}
	w.dns = probetest.NewDNSServer(t, probetest.Records{
		"good.reachd.test":     {A: []string{"127.0.0.1"}},
		"blocked.reachd.test":  {A: []string{"127.0.0.1"}},
		"refused.reachd.test":  {A: []string{"127.0.0.1"}},
		"stranger.reachd.test": {A: []string{"127.0.0.1"}},
		"aia.reachd.test":      {A: []string{"127.0.0.1"}},
		// missing.reachd.test: NXDOMAIN
	})
	w.pki = newInteropPKI(t, "aia.reachd.test")
	stranger := newInteropPKI(t, "aia.reachd.test")
	ups := []*tlsServerConfig{
		{name: "good", min: "1.2", max: "1.3", cert: w.pki.Good},
		{name: "other-port", min: "1.2", max: "1.3", cert: w.pki.Good},
		{name: "stranger", min: "1.2", max: "1.3", cert: stranger.Good},
	}
	// The upstreams all share the key of w.pki's leaves; the stranger's
	// certificate is for its own key.
	startNginx(t, w.pki, ups[:2])
	startNginx(t, stranger, ups[2:])
	w.goodPort, w.otherPort, w.strangerPort = ups[0].port, ups[1].port, ups[2].port
	w.closedPort = freePort(t)
	w.resolv = writeFile(t, w.dir, "resolv.conf", "nameserver "+dnsRelay(t, w.dns.Addr)+"\noptions timeout:2 attempts:1\n")
	if err := os.Chmod(w.resolv, 0o644); err != nil { // tinyproxy reads it as nobody
		t.Fatal(err)
	}
	w.goodPass = writeFile(t, w.dir, "good.pass", interopProxyPassword+"\n")
	w.wrongPass = writeFile(t, w.dir, "wrong.pass", "not-the-password\n")
	return w
}

// allowedPorts are the ports the proxies allow CONNECT to.
func (w *proxyWorld) allowedPorts() []int { return []int{w.goodPort, w.closedPort, w.strangerPort} }

// withResolv runs argv in a private mount namespace whose /etc/resolv.conf
// names the test's DNS server: the proxies resolve targets themselves,
// through the C library, and must never ask the machine's resolver.
func (w *proxyWorld) withResolv(argv ...string) []string {
	return append([]string{"unshare", "-m", "sh", "-c", `mount --bind "$0" /etc/resolv.conf && exec "$@"`, w.resolv}, argv...)
}

// proxyPaths is the TOML of reachd's paths through one proxy at url:
// <name>-open, and with auth <name>-auth-none, <name>-auth, <name>-auth-wrong.
func (w *proxyWorld) proxyPaths(name, openURL, authURL, user, goodPass, caFile string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[[path]]\nname = %q\nproxy = %q\n", name+"-open", openURL)
	if caFile != "" {
		fmt.Fprintf(&b, "ca_file = %q\n", caFile)
	}
	if authURL != "" {
		fmt.Fprintf(&b, "\n[[path]]\nname = %q\nproxy = %q\n", name+"-auth-none", authURL)
		fmt.Fprintf(&b, "\n[[path]]\nname = %q\nproxy = %q\nusername = %q\npassword_file = %q\n", name+"-auth", authURL, user, goodPass)
		fmt.Fprintf(&b, "\n[[path]]\nname = %q\nproxy = %q\nusername = %q\npassword_file = %q\n", name+"-auth-wrong", authURL, user, w.wrongPass)
	}
	return b.String() + "\n"
}

// standardCases are the cases every CONNECT proxy is asked: open, missing
// and wrong credentials, a denied port and host, an upstream that refuses
// and one that does not resolve.
func (w *proxyWorld) standardCases(proxy string, deniedHost, nxdomain bool) []*interopCase {
	host := func(h string) string { return h + ".reachd.test" }
	cs := []*interopCase{
		{config: "open", host: host("good"), port: w.goodPort, path: proxy + "-open", status: 200, extra: "http = { expect_status = [200] }\n"},
		{config: "no credentials", host: host("good"), port: w.goodPort, path: proxy + "-auth-none", stage: "proxy", reason: "proxy_auth_required"},
		{config: "credentials", host: host("good"), port: w.goodPort, path: proxy + "-auth", status: 200},
		{config: "wrong credentials", host: host("good"), port: w.goodPort, path: proxy + "-auth-wrong", stage: "proxy", reason: "proxy_auth_rejected"},
		{config: "denied port", host: host("good"), port: w.otherPort, path: proxy + "-open", stage: "proxy", reason: "proxy_denied"},
		{config: "upstream refused", host: host("refused"), port: w.closedPort, path: proxy + "-open", stage: "proxy", reason: "proxy_upstream_failed"},
	}
	if nxdomain {
		cs = append(cs, &interopCase{config: "upstream nxdomain", host: host("missing"), port: w.goodPort, path: proxy + "-open", stage: "proxy", reason: "proxy_upstream_failed"})
	}
	if deniedHost {
		cs = append(cs, &interopCase{config: "denied host", host: host("blocked"), port: w.goodPort, path: proxy + "-open", stage: "proxy", reason: "proxy_denied"})
	}
	for _, c := range cs {
		c.server = proxy
	}
	return cs
}

// startTinyproxy starts two tinyproxies, open and with Basic auth, that
// allow CONNECT to ports and filter blocked.reachd.test.
func (w *proxyWorld) startTinyproxy(t *testing.T) (openURL, authURL string) {
	t.Helper()
	bin := requireTool(t, "tinyproxy", "tinyproxy")
	dir, err := os.MkdirTemp("", "reachd-tinyproxy-") // tinyproxy drops to nobody: not under t.TempDir
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	filter := writeFile(t, dir, "filter", "^blocked\\.reachd\\.test$\n")
	os.Chmod(filter, 0o644)
	var urls []string
	for _, auth := range []bool{false, true} {
		port := freePort(t)
		var b strings.Builder
		fmt.Fprintf(&b, "User nobody\nGroup nogroup\nPort %d\nListen 127.0.0.1\nTimeout 10\nMaxClients 50\nLogLevel Info\n", port)
		fmt.Fprintf(&b, "LogFile %q\nFilter %q\nFilterDefaultDeny No\nFilterExtended Yes\n", filepath.Join(dir, fmt.Sprintf("tinyproxy-%d.log", port)), filter)
		for _, p := range w.allowedPorts() {
			fmt.Fprintf(&b, "ConnectPort %d\n", p)
		}
		if auth {
			fmt.Fprintf(&b, "BasicAuth svc %s\n", interopProxyPassword)
		}
		conf := writeFile(t, dir, fmt.Sprintf("tinyproxy-%d.conf", port), b.String())
		os.Chmod(conf, 0o644)
		interopProc(t, "tinyproxy", []int{port}, []string{filepath.Join(dir, fmt.Sprintf("tinyproxy-%d.log", port))},
			w.withResolv(bin, "-d", "-c", conf)...)
		urls = append(urls, "http://127.0.0.1:"+strconv.Itoa(port))
	}
	return urls[0], urls[1]
}

// startApache starts apache2 with mod_proxy_connect on two ports: open,
// and with Basic auth. AllowCONNECT names the allowed ports; a Require
// expr denies blocked.reachd.test (ProxyBlock would block its address,
// 127.0.0.1, and so every target).
func (w *proxyWorld) startApache(t *testing.T) (openURL, authURL string) {
	t.Helper()
	bin := requireTool(t, "apache2", "apache2")
	htpasswd := requireTool(t, "htpasswd", "apache2-utils")
	mods := "/usr/lib/apache2/modules"
	requireFile(t, filepath.Join(mods, "mod_proxy_connect.so"), "apache2")
	dir, err := os.MkdirTemp("", "reachd-apache-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	cmd := exec.Command(htpasswd, "-i", "-c", "-B", filepath.Join(dir, "htpasswd"), "svc")
	cmd.Stdin = strings.NewReader(interopProxyPassword)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("htpasswd: %v\n%s", err, out)
	}
	os.Chmod(filepath.Join(dir, "htpasswd"), 0o644)
	open, auth := freePort(t), freePort(t)
	var allowed []string
	for _, p := range w.allowedPorts() {
		allowed = append(allowed, strconv.Itoa(p))
	}
	var b strings.Builder
	for _, m := range []string{"mpm_event", "authz_core", "authz_user", "authn_core", "authn_file", "auth_basic", "proxy", "proxy_connect"} {
		fmt.Fprintf(&b, "LoadModule %s_module %s/mod_%s.so\n", m, mods, m)
	}
	fmt.Fprintf(&b, `ServerRoot %[1]q
ServerName reachd-interop
Listen 127.0.0.1:%[2]d
Listen 127.0.0.1:%[3]d
User www-data
Group www-data
PidFile %[1]s/httpd.pid
DefaultRuntimeDir %[1]s
Mutex file:%[1]s default
ErrorLog %[1]s/error.log
LogLevel warn
StartServers 1
ServerLimit 1
ThreadsPerChild 25
ProxyRequests On
AllowCONNECT %[4]s
<VirtualHost 127.0.0.1:%[2]d>
  <Proxy "*">
    Require expr "! (%%{THE_REQUEST} =~ m#^CONNECT blocked\.reachd\.test:#)"
  </Proxy>
</VirtualHost>
<VirtualHost 127.0.0.1:%[3]d>
  <Proxy "*">
    AuthType Basic
    AuthName "reachd interop"
    AuthBasicProvider file
    AuthUserFile %[1]s/htpasswd
    Require valid-user
  </Proxy>
</VirtualHost>
`, dir, open, auth, strings.Join(allowed, " "))
	conf := writeFile(t, dir, "httpd.conf", b.String())
	os.Chmod(conf, 0o644)
	interopProc(t, "apache2", []int{open, auth}, []string{filepath.Join(dir, "error.log")},
		w.withResolv(bin, "-DFOREGROUND", "-d", dir, "-f", conf)...)
	return "http://127.0.0.1:" + strconv.Itoa(open), "http://127.0.0.1:" + strconv.Itoa(auth)
}

// startMitmproxy starts one mitmdump that intercepts every tunnel,
// verifying upstreams against the test's root; it returns its URL and
// the CA it re-signs with.
func (w *proxyWorld) startMitmproxy(t *testing.T, args ...string) (url, caFile string) {
	t.Helper()
	bin := requireTool(t, "mitmdump", "mitmproxy")
	dir := t.TempDir()
	port := freePort(t)
	argv := append([]string{bin, "--listen-host", "127.0.0.1", "--listen-port", strconv.Itoa(port),
		"--set", "confdir=" + dir, "--set", "ssl_verify_upstream_trusted_ca=" + w.pki.RootFile,
		"--set", "termlog_verbosity=warn", "--set", "flow_detail=0"}, args...)
	interopProc(t, "mitmdump", []int{port}, nil, w.withResolv(argv...)...)
	caFile = filepath.Join(dir, "mitmproxy-ca-cert.pem")
	if _, err := os.Stat(caFile); err != nil {
		t.Fatalf("mitmproxy wrote no CA: %v", err)
	}
	return "http://127.0.0.1:" + strconv.Itoa(port), caFile
}

// TestInteropProxies runs the proxy half of the matrix: every proxy is
// asked the same questions, and mitmproxy and squid's ssl-bump also answer
// from inside an intercepted tunnel, for targets with and without
// expect_status.
func TestInteropProxies(t *testing.T) {
	w := newProxyWorld(t)
	var paths strings.Builder
	var cases []*interopCase

	tpOpen, tpAuth := w.startTinyproxy(t)
	paths.WriteString(w.proxyPaths("tinyproxy", tpOpen, tpAuth, "svc", w.goodPass, ""))
	cases = append(cases, w.standardCases("tinyproxy", true, true)...)

	apOpen, apAuth := w.startApache(t)
	paths.WriteString(w.proxyPaths("apache", apOpen, apAuth, "svc", w.goodPass, ""))
	cases = append(cases, w.standardCases("apache", true, true)...)

	cases = append(cases, w.mitmproxyCases(t, &paths)...)
	cases = append(cases, w.squidCases(t, &paths)...)

	file := interopConfig(t, w.dir, w.dns.Addr, []string{w.pki.RootFile}, paths.String(), cases, 5*time.Second)
	got := interopCheck(t, file, 2*time.Minute)
	interopAssert(t, "Proxies (CONNECT through each to nginx upstreams)", cases, got, nil)
}

// intercepted are the cases of an intercepting proxy: the tunnel is
// re-signed, and the proxy's own answers arrive inside it.
// badTLS is what the detail must quote of the proxy's account of the
// origin's untrusted certificate.
func (w *proxyWorld) interceptedCases(proxy, caPath, noCAPath, badTLS string) []*interopCase {
	host := func(h string) string { return h + ".reachd.test" }
	withStatus := "http = { expect_status = [200] }\n"
	cs := []*interopCase{
		{config: "intercepted, CA", host: host("good"), port: w.goodPort, path: caPath, intercepted: true, status: 200},
		{config: "intercepted, no CA", host: host("good"), port: w.goodPort, path: noCAPath, stage: "tls", reason: "tls_untrusted_ca"},
	}
	for _, s := range []struct{ config, extra string }{{"", ""}, {", expect 200", withStatus}} {
		cs = append(cs,
			&interopCase{config: "in-tunnel refused" + s.config, host: host("refused"), port: w.closedPort, path: caPath, extra: s.extra, stage: "proxy", reason: "proxy_upstream_failed"},
			&interopCase{config: "in-tunnel nxdomain" + s.config, host: host("missing"), port: w.goodPort, path: caPath, extra: s.extra, stage: "proxy", reason: "proxy_upstream_failed"},
			&interopCase{config: "in-tunnel bad TLS" + s.config, host: host("stranger"), port: w.strangerPort, path: caPath, extra: s.extra, stage: "proxy", reason: "proxy_upstream_failed", detail: badTLS},
		)
	}
	for _, c := range cs {
		c.server = proxy
	}
	return cs
}

// mitmproxyCases starts mitmproxy three ways: eager (it connects upstream
// before answering CONNECT: errors are CONNECT answers), eager with
// proxyauth, and lazy (it answers 200 first: errors are pages inside the
// intercepted tunnel).
func (w *proxyWorld) mitmproxyCases(t *testing.T, paths *strings.Builder) []*interopCase {
	t.Helper()
	block := []string{"--set", "block_list=:~d blocked.reachd.test:403"}
	eager, ca := w.startMitmproxy(t, block...)
	auth, authCA := w.startMitmproxy(t, "--set", "proxyauth=svc:"+interopProxyPassword)
	lazy, lazyCA := w.startMitmproxy(t, append(block, "--set", "connection_strategy=lazy")...)
	paths.WriteString(w.proxyPaths("mitmproxy", eager, auth, "svc", w.goodPass, ca))
	// The auth instance has its own CA.
	fmt.Fprintf(paths, "[[path]]\nname = \"mitmproxy-auth-ca\"\nproxy = %q\nusername = \"svc\"\npassword_file = %q\nca_file = %q\n\n", auth, w.goodPass, authCA)
	fmt.Fprintf(paths, "[[path]]\nname = \"mitmproxy-noca\"\nproxy = %q\n\n", eager)
	fmt.Fprintf(paths, "[[path]]\nname = \"mitmproxy-lazy\"\nproxy = %q\nca_file = %q\n\n", lazy, lazyCA)
	fmt.Fprintf(paths, "[[path]]\nname = \"mitmproxy-lazy-noca\"\nproxy = %q\n\n", lazy)

	var cs []*interopCase
	for _, c := range w.standardCases("mitmproxy", false, true) {
		switch c.config {
		case "denied port": // mitmproxy has no port policy
			continue
		case "open":
			c.intercepted = true
		case "credentials":
			c.path, c.intercepted = "mitmproxy-auth-ca", true
		}
		cs = append(cs, c)
	}
	for _, c := range w.interceptedCases("mitmproxy", "mitmproxy-open", "mitmproxy-noca", "certificate") {
		if strings.HasPrefix(c.config, "in-tunnel refused") || strings.HasPrefix(c.config, "in-tunnel nxdomain") {
			continue // eager: answered at CONNECT, above
		}
		cs = append(cs, c)
	}
	for _, c := range w.interceptedCases("mitmproxy-lazy", "mitmproxy-lazy", "mitmproxy-lazy-noca", "certificate") {
		cs = append(cs, c)
	}
	// block_list answers inside the tunnel.
	for _, s := range []struct{ config, extra string }{{"", ""}, {", expect 200", "http = { expect_status = [200] }\n"}} {
		for _, p := range []string{"mitmproxy", "mitmproxy-lazy"} {
			path := p
			if p == "mitmproxy" {
				path = "mitmproxy-open"
			}
			cs = append(cs, &interopCase{server: p, config: "in-tunnel denied host" + s.config, host: "blocked.reachd.test", port: w.goodPort,
				path: path, extra: s.extra, stage: "proxy", reason: "proxy_denied"})
		}
	}
	return cs
}

// squidCases runs the squid of squid_test.go (open, auth, ssl-bump) through
// the same questions, and its error pages inside a bumped tunnel.
func (w *proxyWorld) squidCases(t *testing.T, paths *strings.Builder) []*interopCase {
	t.Helper()
	bumpCA := probetest.NewCA(t, "Squid Bump CA")
	sq := startSquid(t, w.dns.Addr, w.pki.root, bumpCA, w.allowedPorts()...)
	good := writeFile(t, w.dir, "squid.pass", squidPassword+"\n")
	paths.WriteString(w.proxyPaths("squid", sq.url(sq.OpenPort), sq.url(sq.AuthPort), "svc", good, ""))
	bumpCAFile := writeFile(t, w.dir, "squid-bump-ca.pem", string(bumpCA.PEM))
	fmt.Fprintf(paths, "[[path]]\nname = \"squid-bump\"\nproxy = %q\nca_file = %q\n\n", sq.url(sq.BumpPort), bumpCAFile)
	fmt.Fprintf(paths, "[[path]]\nname = \"squid-bump-noca\"\nproxy = %q\n\n", sq.url(sq.BumpPort))
	// The shared squid.conf has no host policy, and its loopback-only
	// rule (deny !dst 127.0.0.0/8) denies a name that does not resolve
	// (403) before squid could fail to forward it: no nxdomain cases.
	cs := w.standardCases("squid", false, false)
	for _, c := range w.interceptedCases("squid-bump", "squid-bump", "squid-bump-noca", "ERR_SECURE_CONNECT_FAIL") {
		if !strings.HasPrefix(c.config, "in-tunnel nxdomain") {
			cs = append(cs, c)
		}
	}
	return cs
}
