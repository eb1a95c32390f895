package probetest

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

func TestIssue(t *testing.T) {
	root := NewCA(t, "test root")
	inter := root.NewIntermediate(t, "test intermediate")
	inter2 := inter.NewIntermediate(t, "test intermediate 2")
	now := time.Now()
	tests := []struct {
		name      string
		ca        *CA
		hosts     []string
		notBefore time.Time
		notAfter  time.Time
		verify    string // name to verify, DNS or IP
		chainLen  int
		wantErr   x509.InvalidReason // -1 = valid
	}{
		{"root dns", root, []string{"a.reachd.test"}, now.Add(-time.Hour), now.Add(time.Hour), "a.reachd.test", 1, -1},
		{"root ip", root, []string{"a.reachd.test", "127.0.0.1", "::1"}, now.Add(-time.Hour), now.Add(time.Hour), "::1", 1, -1},
		{"intermediate", inter, []string{"b.reachd.test"}, now.Add(-time.Hour), now.Add(time.Hour), "b.reachd.test", 2, -1},
		{"two intermediates", inter2, []string{"c.reachd.test"}, now.Add(-time.Hour), now.Add(time.Hour), "c.reachd.test", 3, -1},
		{"expired", root, []string{"d.reachd.test"}, now.Add(-48 * time.Hour), now.Add(-24 * time.Hour), "d.reachd.test", 1, x509.Expired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cert := tt.ca.Issue(t, tt.hosts, tt.notBefore, tt.notAfter)
			if len(cert.Certificate) != tt.chainLen {
				t.Fatalf("chain length = %d, want %d", len(cert.Certificate), tt.chainLen)
			}
			if cert.Leaf == nil || cert.PrivateKey == nil {
				t.Fatal("Leaf or PrivateKey not set")
			}
			inters := x509.NewCertPool()
			for _, der := range cert.Certificate[1:] {
				c, err := x509.ParseCertificate(der)
				if err != nil {
					t.Fatal(err)
				}
				inters.AddCert(c)
			}
			if ip := net.ParseIP(tt.verify); ip != nil && len(cert.Leaf.IPAddresses) == 0 {
				t.Fatalf("no IP SANs in %v", cert.Leaf.DNSNames)
			}
			_, err := cert.Leaf.Verify(x509.VerifyOptions{
				DNSName:       tt.verify,
				Roots:         root.Pool(),
				Intermediates: inters,
			})
			if tt.wantErr < 0 {
				if err != nil {
					t.Fatalf("verify: %v", err)
				}
				return
			}
			var invalid x509.CertificateInvalidError
			if !errors.As(err, &invalid) || invalid.Reason != tt.wantErr {
				t.Fatalf("verify error = %v, want reason %v", err, tt.wantErr)
			}
		})
	}
}

func TestWritePEM(t *testing.T) {
	ca := NewCA(t, "pem root")
	b, err := os.ReadFile(ca.WritePEM(t))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("no certificate in %q", b)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !c.IsCA || c.Subject.CommonName != "pem root" || !c.Equal(ca.Cert) {
		t.Fatalf("got %v, IsCA=%v", c.Subject, c.IsCA)
	}
	if c.NotBefore.After(time.Now()) || c.NotAfter.Before(time.Now().AddDate(9, 0, 0)) {
		t.Fatalf("validity %v .. %v", c.NotBefore, c.NotAfter)
	}
}
