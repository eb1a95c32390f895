// Package probetest provides loopback servers for tests and benchmarks of
// reachd probes, shaped like net/http/httptest: a certificate authority that
// issues leaf certificates in code, a TLS/HTTPS server that can be pinned to
// any TLS version from 1.0 to 1.3, an in-process DNS server, and an HTTP
// CONNECT proxy with authentication, fixed answers and TLS interception.
//
// Every server listens on 127.0.0.1 and is ready when its constructor
// returns. Every constructor takes the test first, calls t.Fatalf when the
// server cannot start, and registers Close with t.Cleanup, so tests need not
// close anything themselves. Close waits for every goroutine the server
// started, so tests may use go.uber.org/goleak.
//
// No GODEBUG setting is needed: the TLS server presents an ECDSA
// certificate, and Go still negotiates the ECDHE-ECDSA-AES-CBC-SHA suites at
// TLS 1.0 and 1.1 when MinVersion is set explicitly, as TLSVersions does.
package probetest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA is a certificate authority that lives for one test. It is either a
// self-signed root (NewCA) or an intermediate signed by another CA
// (NewIntermediate).
type CA struct {
	// Cert is the CA's own certificate.
	Cert *x509.Certificate
	// Key signs the certificates the CA issues (ECDSA P-256).
	Key crypto.Signer
	// PEM is Cert, PEM encoded.
	PEM []byte

	// chain holds the DER of the intermediates between this CA and the
	// root, this CA first; empty for a root.
	chain [][]byte
}

// CertOption changes a certificate that a CA makes: Issue, NewCA,
// NewIntermediate, CrossSign.
type CertOption func(*certOptions)

type certOptions struct {
	rsa, sha1, cnOnly   bool
	notBefore, notAfter time.Time // zero: the default (CAs only; Issue takes its own)
}

func certOpts(opts []CertOption) certOptions {
	var o certOptions
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// RSAKey gives the certificate an RSA 2048 key instead of ECDSA P-256: a
// server needs one for the RSA key exchange suites (TLS_RSA_WITH_*).
func RSAKey() CertOption { return func(o *certOptions) { o.rsa = true } }

// SHA1Signature makes the issuer sign the certificate with SHA-1
// (ECDSA-SHA1 or SHA1-RSA, by the issuer's key), which Go no longer verifies.
func SHA1Signature() CertOption { return func(o *certOptions) { o.sha1 = true } }

// CommonNameOnly puts the first host only in the subject Common Name, with
// no subject alternative names: Go rejects such a certificate ("relies on
// legacy Common Name field").
func CommonNameOnly() CertOption { return func(o *certOptions) { o.cnOnly = true } }

// Valid sets the validity of a CA certificate (NewCA, NewIntermediate,
// CrossSign), for an expired intermediate or cross-sign. Issue takes its
// validity as arguments.
func Valid(notBefore, notAfter time.Time) CertOption {
	return func(o *certOptions) { o.notBefore, o.notAfter = notBefore, notAfter }
}

// NewCA returns a self-signed root CA named commonName, valid from an hour
// ago for ten years unless Valid says otherwise.
func NewCA(t testing.TB, commonName string, opts ...CertOption) *CA {
	t.Helper()
	ca, err := newCA(nil, commonName, certOpts(opts))
	if err != nil {
		t.Fatalf("probetest: new CA %q: %v", commonName, err)
	}
	return ca
}

// NewIntermediate returns an intermediate CA named commonName signed by ca.
// Certificates it issues carry the chain up to, but not including, the
// root, so a client that trusts only the root (ca.Pool of the root)
// verifies them.
func (ca *CA) NewIntermediate(t testing.TB, commonName string, opts ...CertOption) *CA {
	t.Helper()
	sub, err := newCA(ca, commonName, certOpts(opts))
	if err != nil {
		t.Fatalf("probetest: new intermediate CA %q: %v", commonName, err)
	}
	return sub
}

// Pool returns a new certificate pool that holds only ca's certificate.
func (ca *CA) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return pool
}

// WritePEM writes ca's certificate, PEM encoded, into a file in t.TempDir
// and returns its path.
func (ca *CA) WritePEM(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, ca.PEM, 0o644); err != nil {
		t.Fatalf("probetest: write CA PEM: %v", err)
	}
	return path
}

// Issue returns a server certificate signed by ca for hosts, valid from
// notBefore to notAfter. Hosts that parse as IP addresses become IP
// subject alternative names, the others DNS names; the first host is also
// the subject common name. The certificate chain is the leaf followed by
// ca's intermediates (none for a root), and Leaf is set. opts change the
// key, the signature or the names.
func (ca *CA) Issue(t testing.TB, hosts []string, notBefore, notAfter time.Time, opts ...CertOption) tls.Certificate {
	t.Helper()
	cert, err := ca.issue(hosts, notBefore, notAfter, opts...)
	if err != nil {
		t.Fatalf("probetest: issue certificate for %q: %v", hosts, err)
	}
	return cert
}

// issue is Issue without a test, for goroutines such as the intercepting
// proxy, which must not call t.Fatalf.
func (ca *CA) issue(hosts []string, notBefore, notAfter time.Time, opts ...CertOption) (tls.Certificate, error) {
	o := certOpts(opts)
	key, err := newKey(o)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := serialNumber()
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"reachd probetest"}},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	if len(hosts) > 0 {
		tmpl.Subject.CommonName = hosts[0]
	}
	tmpl.SignatureAlgorithm = ca.signatureAlgorithm(o)
	if o.rsa {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment // RSA key exchange
	}
	for _, h := range hosts {
		if o.cnOnly {
			break
		}
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("create certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("parse certificate: %w", err)
	}
	chain := append([][]byte{der}, ca.chain...)
	return tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: leaf}, nil
}

// CrossSign returns a certificate for sub (its name and key) signed by ca,
// valid from an hour ago for ten years unless Valid says otherwise: a
// cross-sign, such as the ISRG Root X1 that DST Root CA X3 signed.
func (ca *CA) CrossSign(t testing.TB, sub *CA, opts ...CertOption) *x509.Certificate {
	t.Helper()
	o := certOpts(opts)
	tmpl, err := caTemplate(sub.Cert.Subject, sub.Key.Public(), o)
	if err == nil {
		tmpl.SignatureAlgorithm = ca.signatureAlgorithm(o)
		var der []byte
		if der, err = x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, sub.Key.Public(), ca.Key); err == nil {
			var cert *x509.Certificate
			if cert, err = x509.ParseCertificate(der); err == nil {
				return cert
			}
		}
	}
	t.Fatalf("probetest: cross-sign %q by %q: %v", sub.Cert.Subject.CommonName, ca.Cert.Subject.CommonName, err)
	return nil
}

// signatureAlgorithm is what ca signs with: the default for its key, or
// SHA-1 when o asks for it.
func (ca *CA) signatureAlgorithm(o certOptions) x509.SignatureAlgorithm {
	if !o.sha1 {
		return x509.UnknownSignatureAlgorithm
	}
	if _, ok := ca.Key.(*rsa.PrivateKey); ok {
		return x509.SHA1WithRSA
	}
	return x509.ECDSAWithSHA1
}

func newKey(o certOptions) (crypto.Signer, error) {
	var key crypto.Signer
	var err error
	if o.rsa {
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	} else {
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return key, nil
}

// caTemplate is the certificate of a CA named subject with key pub.
func caTemplate(subject pkix.Name, pub crypto.PublicKey, o certOptions) (*x509.Certificate, error) {
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("marshal public key: %w", err)
	}
	skid := sha1.Sum(der)
	now := time.Now()
	notBefore, notAfter := now.Add(-time.Hour), now.AddDate(10, 0, 0)
	if !o.notAfter.IsZero() {
		notBefore, notAfter = o.notBefore, o.notAfter
	}
	return &x509.Certificate{
		SerialNumber:          serial,
		Subject:               subject,
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		SubjectKeyId:          skid[:],
	}, nil
}

// newCA returns a CA named commonName signed by parent, or self-signed
// when parent is nil.
func newCA(parent *CA, commonName string, o certOptions) (*CA, error) {
	key, err := newKey(o)
	if err != nil {
		return nil, err
	}
	tmpl, err := caTemplate(pkix.Name{CommonName: commonName, Organization: []string{"reachd probetest"}}, key.Public(), o)
	if err != nil {
		return nil, err
	}
	signerCert, signerKey := tmpl, key
	if parent != nil {
		signerCert, signerKey = parent.Cert, parent.Key
		tmpl.SignatureAlgorithm = parent.signatureAlgorithm(o)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, key.Public(), signerKey)
	if err != nil {
		return nil, fmt.Errorf("create certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse certificate: %w", err)
	}
	ca := &CA{
		Cert: cert,
		Key:  key,
		PEM:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
	}
	if parent != nil {
		ca.chain = append([][]byte{der}, parent.chain...)
	}
	return ca, nil
}

func serialNumber() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	return n, nil
}
