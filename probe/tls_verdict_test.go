package probe

import (
	"crypto/tls"
	"encoding/binary"
	"io"
	"maps"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/reachd/reachd/configs"
	"github.com/reachd/reachd/probe/probetest"
	"github.com/reachd/reachd/targets"
)

// dropAlerts swallows the TLS alert records a server writes, so that each
// of its failures is a bare close, as mbedTLS and wolfSSL fail when they
// asked for a client certificate and got none.
type dropAlerts struct {
	net.Conn
	buf []byte
}

func (c *dropAlerts) Write(b []byte) (int, error) {
	c.buf = append(c.buf, b...)
	for len(c.buf) >= 5 {
		n := 5 + int(binary.BigEndian.Uint16(c.buf[3:]))
		if len(c.buf) < n {
			break
		}
		rec := c.buf[:n]
		c.buf = c.buf[n:]
		if rec[0] == 21 {
			continue
		}
		if _, err := c.Conn.Write(rec); err != nil {
			return 0, err
		}
	}
	return len(b), nil
}

// nginxNoCert answers as nginx with ssl_verify_client on does when the
// client sent no certificate: the handshake completes, then 400.
func nginxNoCert(w http.ResponseWriter, r *http.Request) {
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		io.WriteString(w, "ok\n")
		return
	}
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(http.StatusBadRequest)
	io.WriteString(w, "<html>\r\n<head><title>400 No required SSL certificate was sent</title></head>\r\n<body>\r\n"+
		"<center><h1>400 Bad Request</h1></center>\r\n<center>No required SSL certificate was sent</center>\r\n"+
		"<hr><center>nginx/1.22.1</center>\r\n</body>\r\n</html>\r\n")
}

func TestClientCertificateRequired(t *testing.T) {
	l := newLab(t)
	host := "mtls.reachd.test"
	tls12 := probetest.TLSVersions(v12, v12)
	tls13 := probetest.TLSVersions(v13, v13)
	require := probetest.ClientAuth(tls.RequireAnyClientCert)
	ask := probetest.ClientAuth(tls.RequestClientCert)
	page := probetest.Handler(http.HandlerFunc(nginxNoCert))
	expect200 := func(tg *targets.Target) { tg.HTTP.ExpectStatus = []int{200} }
	mbedTLS := tlsServe(t, l, host, func(c *tls.Config) {
		c.MaxVersion, c.ClientAuth = v12, tls.RequireAnyClientCert
	}, func(c net.Conn) net.Conn { return &dropAlerts{Conn: c} })

	for _, tt := range []struct {
		name     string
		port     int
		mods     []func(*targets.Target)
		detail   string
		accepted map[uint16]bool
	}{
		{"TLS 1.2: an alert after the CertificateRequest", l.server(host, tls12, require).Port, nil,
			"asked for a client certificate and, when none came, sent an alert: remote error: tls: handshake failure",
			map[uint16]bool{v10: false, v11: false, v12: true, v13: false}},
		{"TLS 1.2: a close without an alert after the hello (mbedTLS, wolfSSL)", mbedTLS, nil,
			"asked for a client certificate and, when none came, closed the connection",
			map[uint16]bool{v10: false, v11: false, v12: true, v13: false}},
		// The alert (or a reset that overtakes it) comes after the
		// client's Finished, at the http stage's first read.
		{"TLS 1.3: certificate_required after the client's Finished", l.server(host, tls13, require).Port, nil,
			"asked for a client certificate and, when none came, ended the connection after the handshake",
			map[uint16]bool{v10: false, v11: false, v12: false, v13: true}},
		{"nginx: handshake, then 400 No required SSL certificate", l.server(host, ask, page).Port, nil,
			`answered HTTP 400 "400 No required SSL certificate was sent"`,
			map[uint16]bool{v10: false, v11: false, v12: true, v13: true}},
		{"nginx, with expect_status", l.server(host, ask, page).Port, []func(*targets.Target){expect200},
			`answered HTTP 400 "400 No required SSL certificate was sent"`,
			map[uint16]bool{v10: false, v11: false, v12: true, v13: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := l.probe(target(host, tt.port, tt.mods...), configs.Path{Name: "direct"}, l.config())
			assertOutcome(t, r, StageTLS, TLSClientCertRequired, tt.detail)
			if got := r.Stages[len(r.Stages)-1]; got.Stage != StageTLS || len(r.Stages) != 3 {
				t.Errorf("stages %+v, want dns, tcp and a failed tls", r.Stages)
			}
			if r.TLS == nil || !maps.Equal(r.TLS.Accepted, tt.accepted) || !r.TLS.ClientCertRequested {
				t.Errorf("tls %+v, want the certificate request recorded and the sweep %v", r.TLS, tt.accepted)
			}
		})
	}

	t.Run("a server that asks and goes on without one", func(t *testing.T) {
		r := l.probe(target(host, l.server(host, ask).Port), configs.Path{Name: "direct"}, l.config())
		assertOutcome(t, r, "", "", "")
		if !r.TLS.ClientCertRequested {
			t.Errorf("tls %+v: the certificate request is not recorded", r.TLS)
		}
	})
	t.Run("the same 400 page without a certificate request", func(t *testing.T) {
		r := l.probe(target(host, l.server(host, page).Port), configs.Path{Name: "direct"}, l.config())
		assertOutcome(t, r, "", "", "")
		if r.TLS.ClientCertRequested || r.HTTP.Status != 400 {
			t.Errorf("tls %+v http %+v", r.TLS, r.HTTP)
		}
	})
}

// TestRSAKeyExchange: Windows SChannel offers the TLS_RSA_WITH_* suites, so
// a server that speaks nothing else works for the agents and must for the
// probe.
func TestRSAKeyExchange(t *testing.T) {
	l := newLab(t)
	host := "rsa.reachd.test"
	rsaKey := probetest.CertOptions(probetest.RSAKey())
	for _, tt := range []struct {
		name     string
		opts     []probetest.TLSOption
		suite    uint16
		min      uint16
		accepted map[uint16]bool
	}{
		{"AES-GCM at 1.2", []probetest.TLSOption{probetest.TLSVersions(v12, v12)}, tls.TLS_RSA_WITH_AES_128_GCM_SHA256, v12,
			map[uint16]bool{v10: false, v11: false, v12: true, v13: false}},
		{"AES-CBC at 1.0 to 1.2", []probetest.TLSOption{probetest.TLSVersions(v10, v12)}, tls.TLS_RSA_WITH_AES_256_CBC_SHA, v10,
			map[uint16]bool{v10: true, v11: true, v12: true, v13: false}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := l.server(host, append(tt.opts, rsaKey, probetest.CipherSuites(tt.suite))...)
			r := l.probe(target(host, s.Port, func(tg *targets.Target) { tg.TLSMinVersion = tt.min }), configs.Path{Name: "direct"}, l.config())
			assertOutcome(t, r, "", "", "")
			if r.TLS.Cipher != tls.CipherSuiteName(tt.suite) {
				t.Errorf("cipher %s, want %s", r.TLS.Cipher, tls.CipherSuiteName(tt.suite))
			}
			if !maps.Equal(r.TLS.Accepted, tt.accepted) {
				t.Errorf("sweep %v, want %v: the sweep offers the same suites at every version", r.TLS.Accepted, tt.accepted)
			}
		})
	}
}

func TestChainVerdicts(t *testing.T) {
	l := newLab(t)
	now := time.Now()
	hour, month := time.Hour, 30*24*time.Hour
	serve := func(host string, cert tls.Certificate) int {
		return l.server(host, probetest.Certificate(cert)).Port
	}

	// Let's Encrypt until 2024: the leaf, R3, and ISRG Root X1 as DST Root
	// CA X3 cross-signed it, expired since 2021; clients that trust ISRG
	// Root X1 end the chain there.
	issuing := l.ca.NewIntermediate(t, "Lab Issuing CA")
	dst := probetest.NewCA(t, "Old Root CA X3")
	crossSign := dst.CrossSign(t, l.ca, probetest.Valid(now.Add(-3*365*24*hour), now.Add(-24*hour)))
	crossed := issuing.Issue(t, []string{"cross.reachd.test"}, now.Add(-hour), now.Add(month))
	crossed.Certificate = append(crossed.Certificate, crossSign.Raw)

	// Unverified: the leaf's expiry, not its intermediate's.
	foreignSub := probetest.NewCA(t, "Foreign Root").NewIntermediate(t, "Foreign Issuing CA", probetest.Valid(now.Add(-hour), now.Add(10*24*hour)))
	foreign := foreignSub.Issue(t, []string{"foreign.reachd.test"}, now.Add(-hour), now.Add(3*month))

	sha1Leaf := l.ca.Issue(t, []string{"sha1.reachd.test"}, now.Add(-hour), now.Add(month), probetest.SHA1Signature())
	sha1Sub := l.ca.NewIntermediate(t, "SHA-1 Issuing CA", probetest.SHA1Signature())
	sha1Chain := sha1Sub.Issue(t, []string{"sha1sub.reachd.test"}, now.Add(-hour), now.Add(month))
	expiredSub := l.ca.NewIntermediate(t, "Expired Issuing CA", probetest.Valid(now.Add(-2*365*24*hour), now.Add(-24*hour)))
	expiredChain := expiredSub.Issue(t, []string{"expiredsub.reachd.test"}, now.Add(-hour), now.Add(month))
	cnOnly := l.ca.Issue(t, []string{"cn.reachd.test"}, now.Add(-hour), now.Add(month), probetest.CommonNameOnly())
	good := l.server("vendor.reachd.test")
	pinned := func(tg *targets.Target) { tg.PinIssuer = "Vendor Issuing CA G2" }

	for _, tt := range []struct {
		name     string
		target   targets.Target
		reason   Reason
		detail   string
		notAfter time.Time
	}{
		{"an expired cross-sign beside a valid chain", target("cross.reachd.test", serve("cross.reachd.test", crossed)), "", "", crossed.Leaf.NotAfter},
		{"an unverified chain: the leaf's expiry", target("foreign.reachd.test", serve("foreign.reachd.test", foreign)), TLSUntrustedCA, `"Foreign Issuing CA"`, foreign.Leaf.NotAfter},
		{"pin_issuer on a legitimate chain: the vendor rotated its CA", target("vendor.reachd.test", good.Port, pinned), TLSIssuerChanged,
			`certificate issued by "Lab Root CA", which the legitimate roots verify; pinned issuer is "Vendor Issuing CA G2"`, good.Leaf.NotAfter},
		{"a SHA-1 leaf", target("sha1.reachd.test", serve("sha1.reachd.test", sha1Leaf)), TLSUntrustedCA,
			`certificate "sha1.reachd.test" (the leaf) is signed with ECDSA-SHA1, which Go no longer verifies: x509: cannot verify signature: insecure algorithm ECDSA-SHA1`, sha1Leaf.Leaf.NotAfter},
		{"a SHA-1 intermediate", target("sha1sub.reachd.test", serve("sha1sub.reachd.test", sha1Chain)), TLSUntrustedCA,
			`certificate "SHA-1 Issuing CA" (an intermediate) is signed with ECDSA-SHA1`, sha1Chain.Leaf.NotAfter},
		{"an expired intermediate", target("expiredsub.reachd.test", serve("expiredsub.reachd.test", expiredChain)), TLSExpired,
			`certificate "Expired Issuing CA" (an intermediate): current time`, expiredChain.Leaf.NotAfter},
		{"a Common Name and no SAN", target("cn.reachd.test", serve("cn.reachd.test", cnOnly)), TLSHostnameMismatch,
			"no subject alternative names (x509: certificate relies on legacy Common Name field, use SANs instead)", cnOnly.Leaf.NotAfter},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := l.probe(tt.target, configs.Path{Name: "direct"}, l.config())
			if tt.reason == "" {
				assertOutcome(t, r, "", "", "")
			} else {
				assertOutcome(t, r, StageTLS, tt.reason, tt.detail)
			}
			if r.TLS == nil || !r.TLS.NotAfter.Equal(tt.notAfter) {
				t.Errorf("tls %+v, want not_after %v", r.TLS, tt.notAfter)
			}
		})
	}
}

// rawRecorder keeps every byte read through it.
type rawRecorder struct {
	net.Conn
	got []byte
}

func (c *rawRecorder) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.got = append(c.got, b[:n]...)
	return n, err
}

// TestWireConnReadsTheServerHello: the version wireConn reads is the one
// crypto/tls negotiated, at each version (TLS 1.3 by supported_versions),
// however the server's bytes are cut.
func TestWireConnReadsTheServerHello(t *testing.T) {
	l := newLab(t)
	cert := l.ca.Issue(t, []string{"wire.reachd.test"}, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	for _, v := range TLSVersions {
		t.Run(TLSVersionName(v), func(t *testing.T) {
			cli, srv := net.Pipe()
			done := make(chan struct{})
			go func() {
				defer close(done)
				tls.Server(srv, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: v10, MaxVersion: v}).Handshake()
				srv.Close()
			}()
			rec := &rawRecorder{Conn: cli}
			w := newWireConn(rec)
			tc := tls.Client(w, &tls.Config{InsecureSkipVerify: true, MinVersion: v10, MaxVersion: v13, CipherSuites: offeredSuites()})
			err := tc.Handshake()
			cli.Close()
			<-done
			if err != nil || tc.ConnectionState().Version != v {
				t.Fatalf("handshake: %v, version %x", err, tc.ConnectionState().Version)
			}
			if w.version != v || w.received != len(rec.got) {
				t.Errorf("wireConn read version %x after %d bytes, want %x after %d", w.version, w.received, v, len(rec.got))
			}
			byByte := &wireConn{}
			for _, b := range rec.got {
				byByte.scan([]byte{b})
			}
			if byByte.version != v {
				t.Errorf("fed byte by byte: version %x, want %x", byByte.version, v)
			}
		})
	}
}

// FuzzWireConn: no server's bytes, however cut, make the ServerHello
// parser panic.
func FuzzWireConn(f *testing.F) {
	f.Add([]byte{22, 3, 3, 0, 6, 2, 0, 0, 2, 3, 3}, 3)
	f.Add([]byte{21, 3, 3, 0, 2, 2, 70}, 1)
	f.Add([]byte{22, 3, 3, 0, 46, 2, 0, 0, 42, 3, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32}, 10)
	f.Fuzz(func(t *testing.T, data []byte, cut int) {
		w := &wireConn{}
		if cut < 0 || cut > len(data) {
			cut = len(data) / 2
		}
		w.scan(data[:cut])
		w.scan(data[cut:])
		if w.version != 0 && !w.done {
			t.Errorf("version %x read, yet still parsing", w.version)
		}
		if len(w.pending) > len(data) {
			t.Errorf("kept %d bytes of %d", len(w.pending), len(data))
		}
	})
}
