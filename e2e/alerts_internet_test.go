//go:build e2e

package e2e

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// The "internet" of TestAlerts: a DNS server and four HTTPS vendor endpoints on
// alertsInetAddr, inside the internet namespace. The test binary re-executes itself there
// with alertsHelperEnv set; init serves and exits before any test runs.
const (
	alertsHelperEnv = "REACHD_E2E_ALERTS_HELPER" // "internet"
	alertsDirEnv    = "REACHD_E2E_ALERTS_DIR"    // where ca.pem, leaf.pem and leaf.key are
	alertsSiteAddr  = "10.200.0.1"
	alertsInetAddr  = "10.200.0.2"
	alertsIssuerURL = "http://" + alertsInetAddr + "/ca.crt"
)

// alertsTarget is a vendor endpoint served in the internet namespace.
type alertsTarget struct {
	vendor, region, name, host string
	port                       int
}

var alertsTargets = []alertsTarget{
	{"acme", "jp", "api", "api.acme.reachd.test", 8441},
	{"acme", "jp", "telemetry", "tm.acme.reachd.test", 8442},
	{"globex", "us", "api", "api.globex.reachd.test", 8443},
	{"globex", "us", "update", "up.globex.reachd.test", 8444},
}

func init() {
	if os.Getenv(alertsHelperEnv) != "internet" {
		return
	}
	if err := alertsServeInternet(os.Getenv(alertsDirEnv)); err != nil {
		fmt.Fprintln(os.Stderr, "alerts helper:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// alertsServeInternet listens on every address, prints "ready", and serves until its
// stdin closes (the test ends or dies).
func alertsServeInternet(dir string) error {
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "leaf.pem"), filepath.Join(dir, "leaf.key"))
	if err != nil {
		return err
	}
	mux := dns.NewServeMux()
	mux.HandleFunc(".", alertsAnswer)
	pc, err := net.ListenPacket("udp", net.JoinHostPort(alertsInetAddr, "53"))
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(alertsInetAddr, "53"))
	if err != nil {
		return err
	}
	errs := make(chan error, 2+len(alertsTargets))
	go func() { errs <- (&dns.Server{PacketConn: pc, Handler: mux}).ActivateAndServe() }()
	go func() { errs <- (&dns.Server{Listener: ln, Handler: mux}).ActivateAndServe() }()

	web := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	})
	for _, tg := range alertsTargets {
		l, err := tls.Listen("tcp", net.JoinHostPort(alertsInetAddr, strconv.Itoa(tg.port)), &tls.Config{Certificates: []tls.Certificate{cert}})
		if err != nil {
			return err
		}
		srv := &http.Server{Handler: web, ReadHeaderTimeout: 5 * time.Second}
		go func() { errs <- srv.Serve(l) }()
	}
	caDER, err := os.ReadFile(filepath.Join(dir, "ca.der"))
	if err != nil {
		return err
	}
	plain, err := net.Listen("tcp", net.JoinHostPort(alertsInetAddr, "80"))
	if err != nil {
		return err
	}
	issuer := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/pkix-cert")
		w.Write(caDER)
	})}
	go func() { errs <- issuer.Serve(plain) }()
	fmt.Println("ready")
	go func() { io.Copy(io.Discard, os.Stdin); errs <- nil }()
	return <-errs
}

// alertsAnswer serves A records for the targets' names, an empty NOERROR for their AAAA,
// and NXDOMAIN for anything else.
func alertsAnswer(w dns.ResponseWriter, q *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(q)
	m.Authoritative = true
	m.Rcode = dns.RcodeNameError
	for _, question := range q.Question {
		name := strings.ToLower(strings.TrimSuffix(question.Name, "."))
		for _, tg := range alertsTargets {
			if tg.host != name {
				continue
			}
			m.Rcode = dns.RcodeSuccess
			if question.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: question.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5},
					A:   net.ParseIP(alertsInetAddr),
				})
			}
		}
	}
	w.WriteMsg(m)
}

// alertsWriteCerts writes a CA (ca.pem) and a leaf for every target's host (leaf.pem,
// leaf.key) into dir. reachd trusts the CA through [trust] ca_files: legitimate, not
// interception.
func alertsWriteCerts(t *testing.T, dir string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "reachd e2e alerts CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err = x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "reachd e2e alerts endpoint"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(300 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		// The issuer's certificate, served on port 80 in the internet
		// namespace: the chain's revocation check has a URL to answer
		// (reachd_tls_revocation_reachable, which the rules use).
		IssuingCertificateURL: []string{alertsIssuerURL},
	}
	for _, tg := range alertsTargets {
		leaf.DNSNames = append(leaf.DNSNames, tg.host)
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.der"), caDER, 0o600); err != nil {
		t.Fatal(err)
	}
	for name, block := range map[string]*pem.Block{
		"ca.pem":   {Type: "CERTIFICATE", Bytes: caDER},
		"leaf.pem": {Type: "CERTIFICATE", Bytes: leafDER},
		"leaf.key": {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// alertsWaitLine reads r until a line equal to want; it fails the test at EOF.
func alertsWaitLine(t *testing.T, r io.Reader, want string) {
	t.Helper()
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if sc.Text() == want {
			return
		}
	}
	t.Fatalf("the internet helper exited before printing %q: %v", want, sc.Err())
}
