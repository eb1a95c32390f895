package probetest

import (
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"testing"
	"time"
)

func TestCertOptions(t *testing.T) {
	root := NewCA(t, "options root")
	now := time.Now()
	roots := root.Pool()

	t.Run("RSAKey", func(t *testing.T) {
		c := root.Issue(t, []string{"rsa.reachd.test"}, now.Add(-time.Hour), now.Add(time.Hour), RSAKey())
		if _, ok := c.PrivateKey.(*rsa.PrivateKey); !ok || c.Leaf.KeyUsage&x509.KeyUsageKeyEncipherment == 0 {
			t.Errorf("key %T, usage %v: want RSA with key encipherment", c.PrivateKey, c.Leaf.KeyUsage)
		}
	})
	t.Run("SHA1Signature", func(t *testing.T) {
		c := root.Issue(t, []string{"sha1.reachd.test"}, now.Add(-time.Hour), now.Add(time.Hour), SHA1Signature())
		var insecure x509.InsecureAlgorithmError
		if c.Leaf.SignatureAlgorithm != x509.ECDSAWithSHA1 || !errors.As(c.Leaf.CheckSignatureFrom(root.Cert), &insecure) {
			t.Errorf("signature %v: want ECDSA-SHA1, which Go refuses", c.Leaf.SignatureAlgorithm)
		}
	})
	t.Run("CommonNameOnly", func(t *testing.T) {
		c := root.Issue(t, []string{"cn.reachd.test"}, now.Add(-time.Hour), now.Add(time.Hour), CommonNameOnly())
		if c.Leaf.Subject.CommonName != "cn.reachd.test" || len(c.Leaf.DNSNames)+len(c.Leaf.IPAddresses) != 0 {
			t.Errorf("subject %v, SANs %v %v", c.Leaf.Subject, c.Leaf.DNSNames, c.Leaf.IPAddresses)
		}
	})
	t.Run("an expired intermediate", func(t *testing.T) {
		sub := root.NewIntermediate(t, "expired sub", Valid(now.Add(-48*time.Hour), now.Add(-24*time.Hour)))
		c := sub.Issue(t, []string{"e.reachd.test"}, now.Add(-time.Hour), now.Add(time.Hour))
		inter := x509.NewCertPool()
		inter.AddCert(sub.Cert)
		_, err := c.Leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter})
		var invalid x509.CertificateInvalidError
		if !errors.As(err, &invalid) || invalid.Reason != x509.Expired || invalid.Cert.Subject.CommonName != "expired sub" {
			t.Errorf("verify: %v, want the intermediate expired", err)
		}
	})
	t.Run("CrossSign", func(t *testing.T) {
		old := NewCA(t, "old root")
		cross := old.CrossSign(t, root, Valid(now.Add(-48*time.Hour), now.Add(-24*time.Hour)))
		if cross.Subject.String() != root.Cert.Subject.String() || cross.Issuer.CommonName != "old root" ||
			!cross.NotAfter.Before(now) || cross.CheckSignatureFrom(old.Cert) != nil {
			t.Errorf("cross-sign: subject %v issuer %v not after %v", cross.Subject, cross.Issuer, cross.NotAfter)
		}
		if string(cross.RawSubjectPublicKeyInfo) != string(root.Cert.RawSubjectPublicKeyInfo) {
			t.Error("cross-sign carries another key")
		}
	})
}

func TestClientAuth(t *testing.T) {
	s := NewTLSServer(t, ClientAuth(tls.RequireAnyClientCert), TLSVersions(tls.VersionTLS12, tls.VersionTLS12))
	asked := false
	conf := s.ClientConfig()
	conf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		asked = true
		return &tls.Certificate{}, nil
	}
	c, err := tls.Dial("tcp", s.Addr, conf)
	if err == nil {
		c.Close()
	}
	if err == nil || !asked {
		t.Errorf("handshake without a certificate: %v, asked %v; want a request and a failure", err, asked)
	}
}
