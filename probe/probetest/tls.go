package probetest

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TLSServer is an HTTPS server on 127.0.0.1 that speaks HTTP/1.1 only.
type TLSServer struct {
	// Addr is the listening address, "127.0.0.1:port".
	Addr string
	// Port is the listening port.
	Port int
	// URL is "https://127.0.0.1:port".
	URL string
	// CA issued the default certificate. It is set even when Certificate
	// replaced that certificate, but then it does not sign what is served.
	CA *CA
	// Leaf is the certificate the server presents.
	Leaf *x509.Certificate

	srv        *server
	minVersion uint16
	maxVersion uint16
}

// TLSOption configures NewTLSServer.
type TLSOption func(*tlsOptions)

type tlsOptions struct {
	minVersion, maxVersion uint16
	cert                   *tls.Certificate
	ca                     *CA
	hosts                  []string
	handler                http.Handler
	suites                 []uint16
	clientAuth             tls.ClientAuthType
	certOpts               []CertOption
}

// TLSVersions sets the lowest and highest TLS version the server accepts,
// such as tls.VersionTLS10. The default is TLS 1.2 to TLS 1.3.
func TLSVersions(min, max uint16) TLSOption {
	return func(o *tlsOptions) { o.minVersion, o.maxVersion = min, max }
}

// Certificate makes the server present c instead of a certificate from its
// own CA; c.Leaf must be set (CA.Issue sets it).
func Certificate(c tls.Certificate) TLSOption {
	return func(o *tlsOptions) { o.cert = &c }
}

// Issuer makes ca issue the default certificate instead of a new CA, so
// several servers can share one trusted root.
func Issuer(ca *CA) TLSOption {
	return func(o *tlsOptions) { o.ca = ca }
}

// Hosts sets the names on the default certificate; entries that parse as
// IP addresses become IP names. The default is "localhost" and "127.0.0.1".
func Hosts(names ...string) TLSOption {
	return func(o *tlsOptions) { o.hosts = names }
}

// Handler sets the HTTP handler. The default answers every request with
// 200 and the body "ok\n"; net/http adds the Date header.
func Handler(h http.Handler) TLSOption {
	return func(o *tlsOptions) { o.handler = h }
}

// CipherSuites restricts the cipher suites the server accepts at TLS 1.2
// and below (TLS 1.3 suites are not configurable in Go), for example to
// force a handshake failure.
func CipherSuites(ids ...uint16) TLSOption {
	return func(o *tlsOptions) { o.suites = ids }
}

// ClientAuth sets the server's policy for client certificates, such as
// tls.RequireAnyClientCert (the handshake fails without one) or
// tls.RequestClientCert (it asks, and goes on without one). Certificates
// the server verifies must come from its CA (s.CA).
func ClientAuth(a tls.ClientAuthType) TLSOption {
	return func(o *tlsOptions) { o.clientAuth = a }
}

// CertOptions applies opts to the default certificate: RSAKey for a server
// that offers only RSA key exchange suites, SHA1Signature, CommonNameOnly.
func CertOptions(opts ...CertOption) TLSOption {
	return func(o *tlsOptions) { o.certOpts = append(o.certOpts, opts...) }
}

// NewTLSServer starts an HTTPS server on 127.0.0.1:0 and closes it when the
// test ends. By default it presents a certificate for localhost and
// 127.0.0.1 issued by a new CA (s.CA), valid from an hour ago for 90 days.
// It offers only HTTP/1.1 in ALPN.
func NewTLSServer(t testing.TB, opts ...TLSOption) *TLSServer {
	t.Helper()
	o := tlsOptions{
		minVersion: tls.VersionTLS12,
		maxVersion: tls.VersionTLS13,
		hosts:      []string{"localhost", "127.0.0.1"},
		handler:    okHandler(),
	}
	for _, opt := range opts {
		opt(&o)
	}
	ca := o.ca
	if ca == nil {
		ca = NewCA(t, "probetest TLS server CA")
	}
	var cert tls.Certificate
	if o.cert != nil {
		cert = *o.cert
		if cert.Leaf == nil {
			t.Fatalf("probetest: TLS server: Certificate without Leaf")
		}
	} else {
		now := time.Now()
		cert = ca.Issue(t, o.hosts, now.Add(-time.Hour), now.Add(90*24*time.Hour), o.certOpts...)
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   o.minVersion,
		MaxVersion:   o.maxVersion,
		CipherSuites: o.suites,
		NextProtos:   []string{"http/1.1"},
		ClientAuth:   o.clientAuth,
		ClientCAs:    ca.Pool(),
	}
	srv, err := startServer(o.handler, cfg)
	if err != nil {
		t.Fatalf("probetest: TLS server: %v", err)
	}
	t.Cleanup(srv.close)
	return &TLSServer{
		Addr:       srv.addr,
		Port:       srv.port,
		URL:        "https://" + srv.addr,
		CA:         ca,
		Leaf:       cert.Leaf,
		srv:        srv,
		minVersion: o.minVersion,
		maxVersion: o.maxVersion,
	}
}

// Close stops the server, closes its connections and waits for their
// goroutines. It is safe to call more than once.
func (s *TLSServer) Close() { s.srv.close() }

// Connections returns how many TCP connections the server has accepted.
func (s *TLSServer) Connections() int { return int(s.srv.conns.Load()) }

// ClientConfig returns a new client TLS configuration that trusts s.CA and
// allows the server's TLS versions.
func (s *TLSServer) ClientConfig() *tls.Config {
	return &tls.Config{
		RootCAs:    s.CA.Pool(),
		MinVersion: s.minVersion,
		MaxVersion: s.maxVersion,
	}
}

// Client returns a new HTTP client that trusts s.CA and does not keep idle
// connections, so no goroutine outlives a request.
func (s *TLSServer) Client() *http.Client {
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:   s.ClientConfig(),
		DisableKeepAlives: true,
	}}
}

// HTTPServer is a plain HTTP server on 127.0.0.1.
type HTTPServer struct {
	// Addr is the listening address, "127.0.0.1:port".
	Addr string
	// Port is the listening port.
	Port int
	// URL is "http://127.0.0.1:port".
	URL string

	srv *server
}

// NewHTTPServer starts a plain HTTP server for h on 127.0.0.1:0 and closes
// it when the test ends. A nil h answers 200 "ok\n".
func NewHTTPServer(t testing.TB, h http.Handler) *HTTPServer {
	t.Helper()
	if h == nil {
		h = okHandler()
	}
	srv, err := startServer(h, nil)
	if err != nil {
		t.Fatalf("probetest: HTTP server: %v", err)
	}
	t.Cleanup(srv.close)
	return &HTTPServer{Addr: srv.addr, Port: srv.port, URL: "http://" + srv.addr, srv: srv}
}

// Close stops the server, closes its connections and waits for their
// goroutines. It is safe to call more than once.
func (s *HTTPServer) Close() { s.srv.close() }

// Connections returns how many TCP connections the server has accepted.
func (s *HTTPServer) Connections() int { return int(s.srv.conns.Load()) }

func okHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
}

// server is the http.Server under TLSServer and HTTPServer. Unlike a bare
// http.Server, its close waits for every connection goroutine.
type server struct {
	addr  string
	port  int
	hs    *http.Server
	conns atomic.Int64

	connWG    sync.WaitGroup // one per connection, from StateNew to closed or hijacked
	serveDone chan struct{}
	closeOnce sync.Once
}

// startServer listens on 127.0.0.1:0 and serves h, over TLS when cfg is
// not nil.
func startServer(h http.Handler, cfg *tls.Config) (*server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &server{addr: ln.Addr().String(), serveDone: make(chan struct{})}
	s.port = ln.Addr().(*net.TCPAddr).Port
	s.hs = &http.Server{
		Handler:  h,
		ErrorLog: log.New(io.Discard, "", 0), // handshake failures are what tests provoke
		// A non-nil empty map keeps net/http from enabling HTTP/2.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		ConnState:    s.connState,
	}
	var l net.Listener = &countingListener{Listener: ln, n: &s.conns}
	if cfg != nil {
		l = tls.NewListener(l, cfg)
	}
	go func() {
		defer close(s.serveDone)
		if err := s.hs.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Printf("probetest: serve %s: %v", s.addr, err)
		}
	}()
	return s, nil
}

func (s *server) connState(_ net.Conn, state http.ConnState) {
	switch state {
	case http.StateNew:
		s.connWG.Add(1)
	case http.StateClosed, http.StateHijacked:
		s.connWG.Done()
	}
}

func (s *server) close() {
	s.closeOnce.Do(func() {
		_ = s.hs.Close()
		<-s.serveDone
		s.connWG.Wait()
	})
}

// countingListener counts accepted connections.
type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}
