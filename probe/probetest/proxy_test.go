package probetest

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"
)

// connect sends CONNECT target over conn, a connection to a proxy, and returns
// the response and the connection, which carries the tunnel after a 200.
func connect(t *testing.T, conn net.Conn, target, auth string) (*http.Response, net.Conn) {
	t.Helper()
	t.Cleanup(func() { conn.Close() })
	req := &http.Request{Method: http.MethodConnect, URL: &url.URL{Opaque: target}, Host: target, Header: http.Header{}}
	if auth != "" {
		req.Header.Set("Proxy-Authorization", auth)
	}
	if err := req.Write(conn); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		t.Fatal(err)
	}
	return resp, &bufferedConn{Conn: conn, r: br}
}

func dialProxy(t *testing.T, p *Proxy) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func TestProxyAnswers(t *testing.T) {
	closedPort := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		return addr
	}()
	tests := []struct {
		name           string
		opts           []ProxyOption
		target         string
		auth           string
		wantStatus     int
		wantChallenges []string
	}{
		{"407 offers every scheme", []ProxyOption{BasicAuth("u", "p"), AuthSchemes("NTLM", "Negotiate")}, "127.0.0.1:1", "",
			http.StatusProxyAuthRequired, []string{`Basic realm="probetest"`, "NTLM", "Negotiate"}},
		{"wrong password", []ProxyOption{BasicAuth("u", "p")}, "127.0.0.1:1", basic("u", "x"),
			http.StatusProxyAuthRequired, []string{`Basic realm="probetest"`}},
		{"only unsupported schemes", []ProxyOption{AuthSchemes("Negotiate")}, "127.0.0.1:1", basic("u", "p"),
			http.StatusProxyAuthRequired, []string{"Negotiate"}},
		{"status 403", []ProxyOption{Status(http.StatusForbidden)}, "127.0.0.1:1", "", http.StatusForbidden, nil},
		{"auth before status", []ProxyOption{BasicAuth("u", "p"), Status(http.StatusServiceUnavailable)}, "127.0.0.1:1", basic("u", "p"),
			http.StatusServiceUnavailable, nil},
		{"not loopback", nil, "example.com:443", "", http.StatusBadGateway, nil},
		{"refused upstream", nil, closedPort, "", http.StatusServiceUnavailable, nil},
		{"mapped refused upstream", []ProxyOption{Upstream(map[string]string{"api.reachd.test:443": closedPort})},
			"api.reachd.test:443", "", http.StatusServiceUnavailable, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewProxy(t, tt.opts...)
			resp, _ := connect(t, dialProxy(t, p), tt.target, tt.auth)
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if got := resp.Header.Values("Proxy-Authenticate"); !slices.Equal(got, tt.wantChallenges) {
				t.Errorf("Proxy-Authenticate = %q, want %q", got, tt.wantChallenges)
			}
			want := []ConnectRequest{{Target: tt.target, ProxyAuthorization: tt.auth}}
			if got := p.Requests(); !slices.Equal(got, want) {
				t.Errorf("Requests() = %+v, want %+v", got, want)
			}
		})
	}
}

func TestProxyNotConnect(t *testing.T) {
	p := NewProxy(t)
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(p.URL.String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

func TestProxyTunnel(t *testing.T) {
	srv := NewTLSServer(t, Hosts("api.reachd.test"))
	tests := []struct {
		name   string
		opts   []ProxyOption
		target string
		auth   string
		tls    *CA // ProxyTLS
	}{
		{"loopback literal", nil, srv.Addr, "", nil},
		{"upstream map", []ProxyOption{Upstream(map[string]string{"api.reachd.test:443": srv.Addr})}, "api.reachd.test:443", "", nil},
		{"basic auth", []ProxyOption{BasicAuth("user", "pa:ss"), Upstream(map[string]string{"api.reachd.test:443": srv.Addr})},
			"api.reachd.test:443", basic("user", "pa:ss"), nil},
		{"https proxy", []ProxyOption{Upstream(map[string]string{"api.reachd.test:443": srv.Addr})}, "api.reachd.test:443", "",
			NewCA(t, "proxy CA")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := tt.opts
			if tt.tls != nil {
				opts = append(opts, ProxyTLS(tt.tls))
			}
			p := NewProxy(t, opts...)
			conn := dialProxy(t, p)
			if tt.tls != nil {
				if p.URL.Scheme != "https" {
					t.Fatalf("URL %s", p.URL)
				}
				conn = tls.Client(conn, &tls.Config{RootCAs: tt.tls.Pool(), ServerName: "127.0.0.1"})
			}
			resp, tunnel := connect(t, conn, tt.target, tt.auth)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			tc := tls.Client(tunnel, &tls.Config{RootCAs: srv.CA.Pool(), ServerName: "api.reachd.test"})
			if err := tc.Handshake(); err != nil {
				t.Fatalf("handshake through the tunnel: %v", err)
			}
			if !tc.ConnectionState().PeerCertificates[0].Equal(srv.Leaf) {
				t.Fatal("tunnel reached another server")
			}
			tc.Close()
		})
	}
}

func TestProxyHTTPTransport(t *testing.T) {
	srv := NewTLSServer(t, Hosts("api.reachd.test"))
	p := NewProxy(t, BasicAuth("u", "p"), Upstream(map[string]string{"api.reachd.test:443": srv.Addr}))
	proxyURL := &url.URL{Scheme: "http", User: url.UserPassword("u", "p"), Host: p.Addr}
	tr := &http.Transport{
		Proxy:             http.ProxyURL(proxyURL),
		TLSClientConfig:   &tls.Config{RootCAs: srv.CA.Pool()},
		DisableKeepAlives: true,
	}
	resp, err := (&http.Client{Transport: tr}).Get("https://api.reachd.test/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "ok\n" {
		t.Fatalf("body %q", body)
	}
	if got := p.Requests(); len(got) != 1 || got[0].ProxyAuthorization != basic("u", "p") {
		t.Fatalf("Requests() = %+v", got)
	}
}

func TestProxyIntercept(t *testing.T) {
	srv := NewTLSServer(t, Hosts("api.reachd.test"))
	bump := NewCA(t, "bump CA")
	p := NewProxy(t, Intercept(bump), Upstream(map[string]string{"api.reachd.test:443": srv.Addr}))
	tr := &http.Transport{
		Proxy:             http.ProxyURL(p.URL),
		TLSClientConfig:   &tls.Config{RootCAs: bump.Pool()},
		DisableKeepAlives: true,
	}
	resp, err := (&http.Client{Transport: tr}).Get("https://api.reachd.test/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "ok\n" || resp.StatusCode != 200 {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	leaf := resp.TLS.PeerCertificates[0]
	if leaf.Issuer.CommonName != "bump CA" || !slices.Equal(leaf.DNSNames, []string{"api.reachd.test"}) {
		t.Fatalf("leaf issued by %q for %v", leaf.Issuer.CommonName, leaf.DNSNames)
	}
	if !leaf.NotAfter.Equal(srv.Leaf.NotAfter) {
		t.Errorf("NotAfter %v, want the upstream's %v", leaf.NotAfter, srv.Leaf.NotAfter)
	}

	// A client that trusts only the real CA sees the interception.
	tr.TLSClientConfig = &tls.Config{RootCAs: srv.CA.Pool()}
	_, err = (&http.Client{Transport: tr}).Get("https://api.reachd.test/")
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Fatalf("err = %v, want x509.UnknownAuthorityError", err)
	}
}

func TestProxyCloseWithOpenTunnel(t *testing.T) {
	srv := NewTLSServer(t)
	p := NewProxy(t)
	resp, tunnel := connect(t, dialProxy(t, p), srv.Addr, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	done := make(chan struct{})
	go func() {
		p.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs with an open tunnel")
	}
	tunnel.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := tunnel.Read(make([]byte, 1)); err == nil {
		t.Fatal("tunnel still open after Close")
	}
}
