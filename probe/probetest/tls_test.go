package probetest

import (
	"bufio"
	"crypto/tls"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"
)

// allSuites returns the ids of Go's secure and insecure suites, so a
// client can offer everything a TLS 1.0 server might pick.
func allSuites() []uint16 {
	var ids []uint16
	for _, s := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		ids = append(ids, s.ID)
	}
	return ids
}

func TestTLSServerVersions(t *testing.T) {
	tests := []struct {
		name        string
		opts        []TLSOption
		client      *tls.Config
		wantVersion uint16 // 0: the handshake must fail
	}{
		{"default", nil, &tls.Config{}, tls.VersionTLS13},
		{"tls12 only", []TLSOption{TLSVersions(tls.VersionTLS12, tls.VersionTLS12)}, &tls.Config{}, tls.VersionTLS12},
		{"tls13 only", []TLSOption{TLSVersions(tls.VersionTLS13, tls.VersionTLS13)}, &tls.Config{}, tls.VersionTLS13},
		{"tls10 server, tls10 client", []TLSOption{TLSVersions(tls.VersionTLS10, tls.VersionTLS10)},
			&tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10, CipherSuites: allSuites()}, tls.VersionTLS10},
		{"tls10-11 server, tls10 client", []TLSOption{TLSVersions(tls.VersionTLS10, tls.VersionTLS11)},
			&tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10, CipherSuites: allSuites()}, tls.VersionTLS10},
		{"tls10-11 server, tls10 client default suites", []TLSOption{TLSVersions(tls.VersionTLS10, tls.VersionTLS11)},
			&tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10}, tls.VersionTLS10},
		{"tls10-11 server, tls11 client", []TLSOption{TLSVersions(tls.VersionTLS10, tls.VersionTLS11)},
			&tls.Config{MinVersion: tls.VersionTLS11, MaxVersion: tls.VersionTLS11}, tls.VersionTLS11},
		{"tls10-11 server, tls10-13 client", []TLSOption{TLSVersions(tls.VersionTLS10, tls.VersionTLS11)},
			&tls.Config{MinVersion: tls.VersionTLS10}, tls.VersionTLS11},
		{"tls10-11 server, tls12 client", []TLSOption{TLSVersions(tls.VersionTLS10, tls.VersionTLS11)},
			&tls.Config{MinVersion: tls.VersionTLS12}, 0},
		{"tls13 server, tls12 client", []TLSOption{TLSVersions(tls.VersionTLS13, tls.VersionTLS13)},
			&tls.Config{MaxVersion: tls.VersionTLS12}, 0},
		{"cipher suite mismatch", []TLSOption{TLSVersions(tls.VersionTLS12, tls.VersionTLS12),
			CipherSuites(tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384)},
			&tls.Config{CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}}, 0},
		{"cipher suite match", []TLSOption{TLSVersions(tls.VersionTLS12, tls.VersionTLS12),
			CipherSuites(tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384)},
			&tls.Config{}, tls.VersionTLS12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewTLSServer(t, tt.opts...)
			cfg := tt.client.Clone()
			cfg.RootCAs = s.CA.Pool()
			cfg.NextProtos = []string{"h2", "http/1.1"}
			conn, err := tls.Dial("tcp", s.Addr, cfg)
			if tt.wantVersion == 0 {
				if err == nil {
					conn.Close()
					t.Fatalf("handshake succeeded at %s, want failure", tls.VersionName(conn.ConnectionState().Version))
				}
				return
			}
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			defer conn.Close()
			st := conn.ConnectionState()
			if st.Version != tt.wantVersion {
				t.Errorf("version = %s, want %s", tls.VersionName(st.Version), tls.VersionName(tt.wantVersion))
			}
			if st.NegotiatedProtocol != "http/1.1" {
				t.Errorf("ALPN = %q, want http/1.1", st.NegotiatedProtocol)
			}
			req, _ := http.NewRequest(http.MethodGet, s.URL+"/", nil)
			req.Close = true
			if err := req.Write(conn); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(conn), req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != "ok\n" || resp.Header.Get("Date") == "" || resp.Proto != "HTTP/1.1" {
				t.Errorf("got %s %d %q Date=%q", resp.Proto, resp.StatusCode, body, resp.Header.Get("Date"))
			}
		})
	}
}

func TestTLSServerOptions(t *testing.T) {
	root := NewCA(t, "options root")
	inter := root.NewIntermediate(t, "options intermediate")
	now := time.Now()
	chained := inter.Issue(t, []string{"chain.reachd.test"}, now.Add(-time.Hour), now.Add(time.Hour))

	t.Run("certificate from intermediate", func(t *testing.T) {
		s := NewTLSServer(t, Certificate(chained))
		conn, err := tls.Dial("tcp", s.Addr, &tls.Config{RootCAs: root.Pool(), ServerName: "chain.reachd.test"})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if n := len(conn.ConnectionState().PeerCertificates); n != 2 {
			t.Fatalf("peer sent %d certificates, want 2", n)
		}
		if !s.Leaf.Equal(chained.Leaf) {
			t.Fatal("Leaf is not the served certificate")
		}
	})
	t.Run("hosts and issuer", func(t *testing.T) {
		s := NewTLSServer(t, Hosts("api.reachd.test"), Issuer(root))
		if s.CA != root {
			t.Fatal("CA is not the issuer")
		}
		if !slices.Equal(s.Leaf.DNSNames, []string{"api.reachd.test"}) || len(s.Leaf.IPAddresses) != 0 {
			t.Fatalf("names %v %v", s.Leaf.DNSNames, s.Leaf.IPAddresses)
		}
		conn, err := tls.Dial("tcp", s.Addr, &tls.Config{RootCAs: root.Pool(), ServerName: "api.reachd.test"})
		if err != nil {
			t.Fatal(err)
		}
		conn.Close()
		if _, err := tls.Dial("tcp", s.Addr, &tls.Config{RootCAs: root.Pool()}); err == nil {
			t.Fatal("certificate without 127.0.0.1 verified for 127.0.0.1")
		}
	})
	t.Run("handler, client and connections", func(t *testing.T) {
		s := NewTLSServer(t, Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusTeapot)
		})))
		c := s.Client()
		for i := range 3 {
			resp, err := c.Get(s.URL)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusTeapot {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if got := s.Connections(); got != i+1 {
				t.Fatalf("Connections() = %d, want %d", got, i+1)
			}
		}
		s.Close()
		s.Close()
		if _, err := c.Get(s.URL); err == nil {
			t.Fatal("GET after Close succeeded")
		}
	})
}

func TestHTTPServer(t *testing.T) {
	s := NewHTTPServer(t, nil)
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok\n" || s.Connections() != 1 {
		t.Fatalf("got %d %q, %d connections", resp.StatusCode, body, s.Connections())
	}
	if s.Port == 0 || s.Addr == "" {
		t.Fatalf("Addr %q Port %d", s.Addr, s.Port)
	}
}
