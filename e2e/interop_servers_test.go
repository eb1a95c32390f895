//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reachd/reachd/probe/probetest"
)

// The TLS servers of the interop suite: nginx, haproxy and openssl
// s_server (OpenSSL 3), gnutls-serv (GnuTLS) and lighttpd with mbedTLS,
// each pinned to TLS versions the way their operators pin them.

// tlsServerConfig is one server configuration: the versions it accepts
// and what it presents.
type tlsServerConfig struct {
	name    string
	min     string // "1.0" .. "1.3"
	max     string
	cert    cert
	ciphers string // OpenSSL cipher string for <= 1.2; "" the server's default
	extra   string // server-specific lines
	port    int
}

// offers is the version string of min..max.
func (c *tlsServerConfig) offers() string {
	var b strings.Builder
	for _, v := range interopVersions {
		b.WriteString(map[bool]string{true: "y", false: "n"}[v >= c.min && v <= c.max])
	}
	return b.String()
}

// legacyCiphers lets OpenSSL 3 negotiate TLS 1.0 and 1.1 at all.
const legacyCiphers = "DEFAULT@SECLEVEL=0"

func opensslProtocols(min, max string) []string {
	var ps []string
	for _, v := range interopVersions {
		if v >= min && v <= max {
			ps = append(ps, map[string]string{"1.0": "TLSv1", "1.1": "TLSv1.1", "1.2": "TLSv1.2", "1.3": "TLSv1.3"}[v])
		}
	}
	return ps
}

// startNginx runs one nginx with a server block (its own port) per config.
func startNginx(t *testing.T, pki *interopPKI, configs []*tlsServerConfig) {
	t.Helper()
	bin := requireTool(t, "nginx", "nginx")
	dir := t.TempDir()
	var b strings.Builder
	fmt.Fprintf(&b, `daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
`, dir)
	var ports []int
	for _, c := range configs {
		c.port = freePort(t)
		ports = append(ports, c.port)
		ciphers := c.ciphers
		if ciphers == "" && c.min < "1.2" {
			ciphers = legacyCiphers
		}
		if ciphers != "" {
			ciphers = "ssl_ciphers " + ciphers + ";"
		}
		fmt.Fprintf(&b, `  server { # %s
    listen 127.0.0.1:%d ssl;
    ssl_certificate %s;
    ssl_certificate_key %s;
    ssl_protocols %s;
    %s
    %s
    location / { return 200 "ok\n"; }
  }
`, c.name, c.port, c.cert.Chain, pki.KeyFile, strings.Join(opensslProtocols(c.min, c.max), " "), ciphers, c.extra)
	}
	b.WriteString("}\n")
	conf := writeFile(t, dir, "nginx.conf", b.String())
	interopProc(t, "nginx", ports, []string{filepath.Join(dir, "error.log")}, bin, "-e", filepath.Join(dir, "error.log"), "-p", dir, "-c", conf)
}

// startHAProxy runs one haproxy with a TLS-terminating frontend per config.
func startHAProxy(t *testing.T, configs []*tlsServerConfig) {
	t.Helper()
	bin := requireTool(t, "haproxy", "haproxy")
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString(haproxyHead)
	var ports []int
	for _, c := range configs {
		c.port = freePort(t)
		ports = append(ports, c.port)
		ciphers := c.ciphers
		if ciphers == "" && c.min < "1.2" {
			ciphers = legacyCiphers
		}
		if ciphers != "" {
			ciphers = " ciphers " + ciphers
		}
		fmt.Fprintf(&b, "frontend %s\n  mode http\n  bind 127.0.0.1:%d ssl crt %s ssl-min-ver %s ssl-max-ver %s%s\n  http-request return status 200 content-type text/plain string \"ok\"\n\n",
			strings.NewReplacer(".", "", "+", "-").Replace(c.name), c.port, c.cert.Combined, haproxyVersion(c.min), haproxyVersion(c.max), ciphers)
	}
	conf := writeFile(t, dir, "haproxy.cfg", b.String())
	interopProc(t, "haproxy", ports, nil, bin, "-db", "-f", conf)
}

const haproxyHead = `global
  log stderr format raw local0 notice
defaults
  log global
  timeout connect 5s
  timeout client 20s
  timeout server 20s

`

func haproxyVersion(v string) string { return "TLSv" + v }

// startSServer runs one openssl s_server, which serves one connection at
// a time, per config.
func startSServer(t *testing.T, pki *interopPKI, c *tlsServerConfig) {
	t.Helper()
	bin := requireTool(t, "openssl", "openssl")
	c.port = freePort(t)
	args := []string{bin, "s_server", "-accept", "127.0.0.1:" + strconv.Itoa(c.port), "-www",
		"-cert", c.cert.Leaf, "-cert_chain", pki.MidFile, "-key", pki.KeyFile}
	for _, v := range interopVersions {
		if v < c.min || v > c.max {
			args = append(args, map[string]string{"1.0": "-no_tls1", "1.1": "-no_tls1_1", "1.2": "-no_tls1_2", "1.3": "-no_tls1_3"}[v])
		}
	}
	ciphers := c.ciphers
	if ciphers == "" && c.min < "1.2" {
		ciphers = legacyCiphers
	}
	if ciphers != "" {
		args = append(args, "-cipher", ciphers)
	}
	args = append(args, strings.Fields(c.extra)...)
	interopProc(t, "s_server "+c.name, []int{c.port}, nil, args...)
}

// startGnuTLS runs one gnutls-serv per config; versions are a GnuTLS
// priority string.
func startGnuTLS(t *testing.T, pki *interopPKI, c *tlsServerConfig) {
	t.Helper()
	bin := requireTool(t, "gnutls-serv", "gnutls-bin")
	c.port = freePort(t)
	prio := "NORMAL:-VERS-ALL"
	for _, v := range interopVersions {
		if v >= c.min && v <= c.max {
			prio += ":+VERS-TLS" + v
		}
	}
	// gnutls-serv listens on every local address of the port; only
	// 127.0.0.1 is ever dialled.
	interopProc(t, "gnutls-serv "+c.name, []int{c.port}, nil, bin, "--http", "--port", strconv.Itoa(c.port),
		"--disable-client-cert", "--x509certfile", c.cert.Chain, "--x509keyfile", pki.KeyFile, "--priority", prio)
}

// startLighttpdMbedTLS runs one lighttpd with mod_mbedtls per config.
func startLighttpdMbedTLS(t *testing.T, pki *interopPKI, c *tlsServerConfig) {
	t.Helper()
	bin := requireTool(t, "lighttpd", "lighttpd")
	requireFile(t, "/usr/lib/lighttpd/mod_mbedtls.so", "lighttpd-mod-mbedtls")
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "www"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "www"), "index.html", "ok\n")
	c.port = freePort(t)
	proto := map[string]string{"1.0": "TLSv1.0", "1.1": "TLSv1.1", "1.2": "TLSv1.2", "1.3": "TLSv1.3"}
	ciphers := ""
	if c.min < "1.2" {
		// lighttpd's defaults are AEAD-only; mod_mbedtls takes mbedTLS names.
		ciphers = `, "CipherString" => "TLS-ECDHE-RSA-WITH-AES-128-CBC-SHA:TLS-ECDHE-RSA-WITH-AES-256-CBC-SHA"`
	}
	conf := writeFile(t, dir, "lighttpd.conf", fmt.Sprintf(`server.modules = ("mod_mbedtls")
server.document-root = %q
server.bind = "127.0.0.1"
server.port = %d
server.pid-file = %q
server.errorlog = %q
index-file.names = ("index.html")
ssl.engine = "enable"
ssl.pemfile = %q
ssl.privkey = %q
ssl.openssl.ssl-conf-cmd = ("MinProtocol" => %q, "MaxProtocol" => %q%s)
`, filepath.Join(dir, "www"), c.port, filepath.Join(dir, "lighttpd.pid"), filepath.Join(dir, "error.log"),
		c.cert.Chain, pki.KeyFile, proto[c.min], proto[c.max], ciphers))
	interopProc(t, "lighttpd "+c.name, []int{c.port}, []string{filepath.Join(dir, "error.log")}, bin, "-D", "-f", conf)
}

// TestInteropTLSServers is the server half of the matrix: every server x
// version configuration, the certificate variants, and the cipher corner
// cases, with reachd's verdict and sweep against sslscan's.
func TestInteropTLSServers(t *testing.T) {
	dns := probetest.NewDNSServer(t, probetest.Records{"aia.reachd.test": {A: []string{"127.0.0.1"}}})
	pki := newInteropPKI(t, "aia.reachd.test")
	noAIA := pki.issueNoAIA(t)

	versions := func(certs cert) []*tlsServerConfig {
		return []*tlsServerConfig{
			{name: "tls1.2", min: "1.2", max: "1.2", cert: certs},
			{name: "tls1.3", min: "1.3", max: "1.3", cert: certs},
			{name: "legacy1.0-1.1", min: "1.0", max: "1.1", cert: certs},
			{name: "tls1.2+1.3", min: "1.2", max: "1.3", cert: certs},
		}
	}
	// What DESIGN §5-§6 asks for each version configuration.
	type verdict struct {
		stage, reason, versions, detail, note string
	}
	byVersions := map[string]verdict{
		"tls1.2":        {versions: "nnyn"},
		"tls1.3":        {versions: "nnny"},
		"legacy1.0-1.1": {stage: "tls", reason: "tls_version_unsupported", versions: "yynn"},
		"tls1.2+1.3":    {versions: "nnyy"},
	}

	nginx := append(versions(pki.Good),
		&tlsServerConfig{name: "expired", min: "1.2", max: "1.3", cert: pki.Expired},
		&tlsServerConfig{name: "wrong-name", min: "1.2", max: "1.3", cert: pki.WrongName},
		&tlsServerConfig{name: "no-intermediate+aia", min: "1.2", max: "1.3", cert: pki.NoChain},
		&tlsServerConfig{name: "no-intermediate", min: "1.2", max: "1.3", cert: noAIA},
		&tlsServerConfig{name: "client-cert", min: "1.2", max: "1.3", cert: pki.Good,
			extra: "ssl_verify_client on; ssl_client_certificate " + pki.RootFile + ";"},
		// What SChannel connects to and Go's default suites do not.
		&tlsServerConfig{name: "rsa-kx-only1.2", min: "1.2", max: "1.2", cert: pki.Good, ciphers: "AES128-SHA:AES256-GCM-SHA384"},
		// What Go cannot speak at all: finite-field DHE.
		&tlsServerConfig{name: "dhe-only1.0-1.1", min: "1.0", max: "1.1", cert: pki.Good,
			ciphers: "DHE-RSA-AES128-SHA:DHE-RSA-AES256-SHA@SECLEVEL=0", extra: "ssl_dhparam " + interopTestdata(t, "ffdhe2048.pem") + ";"},
	)
	variants := map[string]verdict{
		"expired":             {stage: "tls", reason: "tls_expired", versions: "nnyy"},
		"wrong-name":          {stage: "tls", reason: "tls_hostname_mismatch", versions: "nnyy"},
		"no-intermediate+aia": {stage: "tls", reason: "tls_chain_incomplete", versions: "nnyy", detail: "Interop Issuing CA"},
		"no-intermediate":     {stage: "tls", reason: "tls_untrusted_ca", versions: "nnyy"},
		// The server chose 1.2 and 1.3 in its ServerHello before asking
		// for a certificate: accepted (or, at least, not rejected).
		"client-cert":    {stage: "tls", reason: "tls_client_cert_required", versions: "nn~~"},
		"rsa-kx-only1.2": {versions: "nnyn"},
		"dhe-only1.0-1.1": {stage: "tls", reason: "tls_version_unsupported", versions: "??nn", detail: "DHE",
			note: "Go has no DHE suites: 1.0/1.1 unknown"},
	}
	haproxy := versions(pki.Good)
	sserver := append(versions(pki.Good), &tlsServerConfig{name: "client-cert", min: "1.2", max: "1.3", cert: pki.Good,
		extra: "-Verify 1 -CAfile " + pki.RootFile})
	gnutls := []*tlsServerConfig{
		{name: "tls1.2", min: "1.2", max: "1.2", cert: pki.Good},
		{name: "legacy1.0-1.1", min: "1.0", max: "1.1", cert: pki.Good},
		{name: "tls1.2+1.3", min: "1.2", max: "1.3", cert: pki.Good},
	}
	// mbedTLS 2.28 has no TLS 1.3.
	mbedtls := []*tlsServerConfig{
		{name: "tls1.2", min: "1.2", max: "1.2", cert: pki.Good},
		{name: "legacy1.0-1.1", min: "1.0", max: "1.1", cert: pki.Good},
	}

	// Start every server at once.
	startNginx(t, pki, nginx)
	startHAProxy(t, haproxy)
	for _, c := range sserver {
		startSServer(t, pki, c)
	}
	for _, c := range gnutls {
		startGnuTLS(t, pki, c)
	}
	for _, c := range mbedtls {
		startLighttpdMbedTLS(t, pki, c)
	}

	var cases []*interopCase
	add := func(server string, configs []*tlsServerConfig) {
		for _, c := range configs {
			v, ok := byVersions[c.name]
			if !ok {
				v = variants[c.name]
			}
			ic := &interopCase{server: server, config: c.name, port: c.port, offers: c.offers(),
				versions: v.versions, stage: v.stage, reason: v.reason, detail: v.detail, note: v.note}
			ic.host = ic.id() + ".reachd.test"
			dns.Set(ic.host, probetest.Entry{A: []string{"127.0.0.1"}})
			cases = append(cases, ic)
		}
	}
	add("nginx", nginx)
	add("haproxy", haproxy)
	add("s_server", sserver)
	add("gnutls-serv", gnutls)
	add("lighttpd-mbed", mbedtls)

	dir := t.TempDir()
	timeout := 5 * time.Second
	file := interopConfig(t, dir, dns.Addr, []string{pki.RootFile}, "", cases, timeout)
	scans := interopScan(t, cases) // before reachd: s_server serves one at a time
	got := interopCheck(t, file, 2*time.Minute)
	interopAssert(t, "TLS servers (sslscan 2.0 and reachd against the same server)", cases, got, scans)

	// openssl s_server serves one connection at a time: reachd's probe
	// and its sweep must not wait on each other.
	t.Run("one connection at a time", func(t *testing.T) {
		start := time.Now()
		one := interopCheck(t, file, time.Minute, "--target", "s-server-tls12-13")
		took := time.Since(start)
		r := one["s-server-tls12-13"]
		t.Logf("reachd check against s_server 1.2+1.3 took %v", took.Round(time.Millisecond))
		if r == nil {
			t.Fatal("no result for s_server 1.2+1.3")
		}
		if !r.Success || r.versions() != "nnyy" {
			t.Errorf("s_server 1.2+1.3: success=%v %s %s versions %s (%q), want success with versions nnyy", r.Success, r.Stage, r.Reason, r.versions(), r.Detail)
		}
		if limit := 2*timeout + time.Second; took > limit {
			t.Errorf("reachd check took %v against s_server, want at most the timeout plus one sweep handshake timeout (%v)", took, 2*timeout)
		}
	})
}

// issueNoAIA is a leaf without the intermediate and without an AIA URL.
func (p *interopPKI) issueNoAIA(t *testing.T) cert {
	t.Helper()
	leaf := p.issue(t, []string{"*.reachd.test"}, time.Now().Add(-time.Hour), time.Now().AddDate(0, 1, 0), "")
	key, err := os.ReadFile(p.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	return cert{
		Leaf:     writeFile(t, p.dir, "noaia-leaf.pem", leaf),
		Chain:    writeFile(t, p.dir, "noaia.pem", leaf),
		Combined: writeFile(t, p.dir, "noaia-combined.pem", leaf+string(key)),
	}
}

// interopTestdata is the absolute path of a file in testdata/interop.
func interopTestdata(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", "interop", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}
