//go:build e2e

package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// revocationPKI is a root CA whose leaf for 127.0.81.1 names an OCSP
// responder and a CRL distribution point on loopback.
type revocationPKI struct {
	caPEM, caKey string // files
	leaf         tls.Certificate
	crlDER       []byte
}

func newRevocationPKI(t *testing.T, dir, ocspURL, crlURL string) *revocationPKI {
	t.Helper()
	now := time.Now()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Revocation Test Root CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.81.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.81.1")}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		OCSPServer: []string{ocspURL}, CRLDistributionPoints: []string{crlURL}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, leafKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: now, NextUpdate: now.Add(24 * time.Hour)}, ca, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(caKey)
	p := &revocationPKI{
		caPEM:  writeFile(t, dir, "ca.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))),
		caKey:  writeFile(t, dir, "ca.key", string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))),
		leaf:   tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: leafKey},
		crlDER: crl,
	}
	return p
}

// startProc starts a helper in a process group of its own, killed at the
// end, and waits until it accepts connections on addr, or, for addr
// "log:text", until it logs text (`openssl ocsp` serves one connection at
// a time and hangs on one that closes without a request).
func startProc(t *testing.T, name, addr string, argv ...string) *lockedWriter {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	log := &lockedWriter{w: &strings.Builder{}}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		if t.Failed() {
			log.mu.Lock()
			t.Logf("%s output:\n%s", name, log.w)
			log.mu.Unlock()
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; {
		if text, ok := strings.CutPrefix(addr, "log:"); ok {
			log.mu.Lock()
			up := strings.Contains(log.w.(*strings.Builder).String(), text)
			log.mu.Unlock()
			if up {
				return log
			}
		} else if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return log
		}
		select {
		case err := <-done:
			done <- err
			t.Fatalf("%s exited before listening on %s: %v", name, addr, err)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not listening on %s within 10s", name, addr)
		}
	}
}

func serveHTTP(t *testing.T, ln net.Listener, h http.Handler) {
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// TestRevocationReachability: a vendor server whose certificate names an
// `openssl ocsp` responder and a CRL on loopback; direct, both answer
// (reachable 1); through a tinyproxy that filters the CRL host, the CRL
// is unreachable (0) while the probe itself passes. A pac path whose PAC
// names that tinyproxy fetches through it too, as CryptoAPI on a
// PAC-configured host does, not direct.
func TestRevocationReachability(t *testing.T) {
	openssl := requireTool(t, "openssl", "openssl")
	tinyproxy := requireTool(t, "tinyproxy", "tinyproxy")
	dir := t.TempDir()

	ocspPort := freePort(t)
	crlLn, err := net.Listen("tcp", "127.0.81.3:0")
	if err != nil {
		t.Fatal(err)
	}
	// Not "/": openssl ocsp answers that health check after the request
	// line and closes with the headers unread, and the reset loses the
	// answer in a proxy. A path is parsed as a request: 400, an answer.
	ocspURL := fmt.Sprintf("http://127.0.0.1:%d/ocsp", ocspPort)
	crlURL := "http://" + crlLn.Addr().String() + "/ca.crl"
	pki := newRevocationPKI(t, dir, ocspURL, crlURL)

	// The CRL server and the vendor's server.
	crlHits := make(chan struct{}, 16)
	serveHTTP(t, crlLn, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		crlHits <- struct{}{}
		w.Header().Set("Content-Type", "application/pkix-crl")
		w.Write(pki.crlDER)
	}))
	vendorLn, err := net.Listen("tcp", "127.0.81.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveHTTP(t, tls.NewListener(vendorLn, &tls.Config{Certificates: []tls.Certificate{pki.leaf}}),
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("vendor")) }))
	vendorPort := vendorLn.Addr().(*net.TCPAddr).Port

	// The OCSP responder: openssl's own, answering for the test CA.
	index := writeFile(t, dir, "index.txt", "")
	ocspLog := startProc(t, "openssl ocsp", "log:waiting for OCSP client connections", openssl, "ocsp", "-index", index, "-port", strconv.Itoa(ocspPort),
		"-rsigner", pki.caPEM, "-rkey", pki.caKey, "-CA", pki.caPEM, "-ignore_err")

	// tinyproxy with Basic credentials, CONNECT to the vendor's port, and
	// a filter that denies the CRL host. Hosts are IP literals: tinyproxy
	// resolves names with the system resolver, which tests never use.
	proxyPort := freePort(t)
	filter := writeFile(t, dir, "filter", `^127\.0\.81\.3$`+"\n")
	conf := writeFile(t, dir, "tinyproxy.conf", fmt.Sprintf("Port %d\nListen 127.0.0.1\nTimeout 5\nMaxClients 20\nAllow 127.0.0.1\nConnectPort %d\nBasicAuth svc Tiny-s3cret\nFilter %q\nFilterDefaultDeny No\nLogLevel Info\n",
		proxyPort, vendorPort, filter))
	proxyLog := startProc(t, "tinyproxy", "127.0.0.1:"+strconv.Itoa(proxyPort), tinyproxy, "-d", "-c", conf)

	writeFile(t, dir, "proxy.pass", "Tiny-s3cret\n")
	file := writeFile(t, dir, "reachd.toml", fmt.Sprintf(`site = "revocation"
[defaults]
timeout = "5s"

[[resolver]]
name = "none"
servers = ["127.0.0.1:1"]

[[path]]
name = "tiny"
proxy = "http://127.0.0.1:%d"
username = "svc"
password_file = %q

[[path]]
name = "tiny-pac"
proxy = "pac"
pac_file = %q
username = "svc"
password_file = %q

[trust]
ca_files = [%q]

[[target]]
vendor = "acme"
region = "jp"
name = "api"
host = "127.0.81.1"
port = %d
checks = ["tcp", "tls", "http"]
`, proxyPort, filepath.Join(dir, "proxy.pass"),
		writeFile(t, dir, "proxy.pac", fmt.Sprintf(`function FindProxyForURL(url, host) { return "PROXY 127.0.0.1:%d"; }`, proxyPort)),
		filepath.Join(dir, "proxy.pass"), pki.caPEM, vendorPort))

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code, out, stderr := runReachd(t, ctx, nil, "check", "--config.file", file, "--format", "json")
	var doc struct {
		Results []struct {
			Path, Reason, Detail string
			Success              bool
			Revocation           []struct {
				Kind, URL, Detail string
				Reachable         bool
				Status            int
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("exit %d: %v\n%s\n%s", code, err, out, stderr)
	}
	if code != 0 || len(doc.Results) != 3 {
		t.Fatalf("exit %d, %d results, want 0 and 3 (every path passes)\n%s\n%s", code, len(doc.Results), out, stderr)
	}
	for _, r := range doc.Results {
		if !r.Success {
			t.Errorf("%s: failed with %s %q: a revocation URL must never fail the probe", r.Path, r.Reason, r.Detail)
		}
		got := map[string]bool{}
		for _, c := range r.Revocation {
			got[c.Kind+" "+c.URL] = c.Reachable
			t.Logf("%s: %s %s reachable=%v status=%d %s", r.Path, c.Kind, c.URL, c.Reachable, c.Status, c.Detail)
			if c.Kind == "crl" && r.Path != "direct" && (c.Status != 0 || !strings.Contains(c.Detail, "proxy_denied")) {
				t.Errorf("the filtered CRL reads %d %q, want the proxy's denial", c.Status, c.Detail)
			}
		}
		wantCRL := r.Path == "direct"
		if len(got) != 2 || !got["ocsp "+ocspURL] || got["crl "+crlURL] != wantCRL {
			t.Errorf("%s: revocation %+v, want ocsp reachable and crl reachable=%v", r.Path, r.Revocation, wantCRL)
		}
	}
	if len(crlHits) != 1 {
		t.Errorf("the CRL server got %d requests, want 1 (the direct path's)", len(crlHits))
	}

	ocspLog.mu.Lock()
	n := strings.Count(ocspLog.w.(*strings.Builder).String(), "Received request")
	ocspLog.mu.Unlock()
	if n != 3 {
		t.Errorf("the OCSP responder got %d requests, want 3 (one per path)", n)
	}
	proxyLog.mu.Lock()
	filtered := strings.Contains(proxyLog.w.(*strings.Builder).String(), `filtered domain "127.0.81.3"`)
	proxyLog.mu.Unlock()
	if !filtered {
		t.Error("tinyproxy did not log the filtered CRL host")
	}

	// The daemon exports the same verdicts, the probes passing.
	d := startDaemon(t, "--config.file", file)
	series := func(path, kind, url, value string) func(string) bool {
		return func(body string) bool {
			return hasSeries(body, "reachd_tls_revocation_reachable", map[string]string{"path": path, "kind": kind, "url": url, "host": "127.0.81.1"}, value)
		}
	}
	want := []func(string) bool{
		series("direct", "crl", crlURL, "1"), series("direct", "ocsp", ocspURL, "1"),
		series("tiny", "crl", crlURL, "0"), series("tiny", "ocsp", ocspURL, "1"),
		series("tiny-pac", "crl", crlURL, "0"), series("tiny-pac", "ocsp", ocspURL, "1"),
		func(body string) bool {
			return hasSeries(body, "reachd_probe_success", map[string]string{"path": "tiny"}, "1")
		},
	}
	d.waitFor(t, "/metrics", func(code int, body string) bool {
		for _, ok := range want {
			if !ok(body) {
				return false
			}
		}
		return code == 200
	})
}
