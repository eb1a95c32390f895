package probetest

import (
	"bufio"
	"crypto/subtle"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// Proxy is an HTTP CONNECT proxy on 127.0.0.1.
type Proxy struct {
	// URL is "http://127.0.0.1:port", or "https://127.0.0.1:port" with
	// ProxyTLS.
	URL *url.URL
	// Addr is "127.0.0.1:port".
	Addr string

	opts      proxyOptions
	ln        net.Listener
	listenTLS *tls.Config // set by ProxyTLS

	mu       sync.Mutex
	requests []ConnectRequest
	conns    map[net.Conn]struct{}
	closed   bool

	wg        sync.WaitGroup // the accept loop and one per connection
	closeOnce sync.Once
}

// ConnectRequest is one CONNECT request the proxy received.
type ConnectRequest struct {
	// Target is the requested "host:port".
	Target string
	// ProxyAuthorization is the Proxy-Authorization header as sent, or "".
	ProxyAuthorization string
	// Method is "GET" (or another method) for a request forwarded in
	// absolute form, and empty for CONNECT; URI is then the request's
	// absolute URI.
	Method, URI string
}

// ProxyOption configures NewProxy.
type ProxyOption func(*proxyOptions)

type proxyOptions struct {
	user, pass  string
	basic       bool
	schemes     []string
	status      int
	upstream    map[string]string
	listenCA    *CA
	interceptCA *CA
	squid       bool // SquidErrors
	pageCA      *CA
	page        string
}

// BasicAuth makes the proxy require Basic credentials user and pass: a
// CONNECT without them is answered 407 with
// `Proxy-Authenticate: Basic realm="probetest"`, and the connection is
// closed (the client retries on a new one).
func BasicAuth(user, pass string) ProxyOption {
	return func(o *proxyOptions) { o.user, o.pass, o.basic = user, pass, true }
}

// AuthSchemes adds one Proxy-Authenticate header per scheme, such as
// "NTLM" or "Negotiate", to the 407 answer. The proxy cannot verify these
// schemes: without BasicAuth, every CONNECT is answered 407 offering only
// them.
func AuthSchemes(schemes ...string) ProxyOption {
	return func(o *proxyOptions) { o.schemes = append(o.schemes, schemes...) }
}

// Status makes the proxy answer every CONNECT that passed authentication
// with code (403, 502, 503 ...) and close the connection.
func Status(code int) ProxyOption {
	return func(o *proxyOptions) { o.status = code }
}

// Upstream maps requested "host:port" targets to the loopback addresses
// the proxy dials instead. A target that is not in m is dialed as given
// only when its host is a loopback IP literal; otherwise the proxy answers
// 502, so a test never reaches beyond this machine. A failed dial is
// answered 503, as squid does.
func Upstream(m map[string]string) ProxyOption {
	return func(o *proxyOptions) { o.upstream = m }
}

// ProxyTLS makes the proxy itself listen with TLS (an https:// proxy),
// presenting a certificate for 127.0.0.1, ::1 and localhost issued by ca.
func ProxyTLS(ca *CA) ProxyOption {
	return func(o *proxyOptions) { o.listenCA = ca }
}

// Intercept makes the proxy intercept TLS like squid's ssl-bump: after
// "200 Connection established" it completes a TLS handshake with the
// upstream (without verifying it), terminates the client's TLS with a leaf
// for the requested host issued on the fly by ca with the upstream leaf's
// validity period, and relays the plaintext between the two. Both sides
// are offered only HTTP/1.1. When the upstream handshake fails, the client
// connection is closed before its own handshake.
func Intercept(ca *CA) ProxyOption {
	return func(o *proxyOptions) { o.interceptCA = ca }
}

// BumpedPage makes the proxy behave like squid's ssl-bump or mitmproxy
// serving their own error pages: it answers every authorized CONNECT
// "200 Connection established" without connecting anywhere, terminates
// the client's TLS with a leaf for the requested host issued by ca,
// reads one request and answers it with response (raw HTTP/1.1 bytes, as
// the real proxy wrote them), then closes the connection.
func BumpedPage(ca *CA, response string) ProxyOption {
	return func(o *proxyOptions) { o.pageCA, o.page = ca, response }
}

// NewProxy starts a CONNECT proxy on 127.0.0.1:0 and closes it when the
// test ends. Without options it tunnels to loopback IP literals and
// requires no authentication. An absolute-form request for an http:// URL
// is forwarded (see forward); other requests are answered 405.
func NewProxy(t testing.TB, opts ...ProxyOption) *Proxy {
	t.Helper()
	p := &Proxy{conns: make(map[net.Conn]struct{})}
	for _, opt := range opts {
		opt(&p.opts)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("probetest: proxy: %v", err)
	}
	p.Addr = ln.Addr().String()
	p.URL = &url.URL{Scheme: "http", Host: p.Addr}
	if ca := p.opts.listenCA; ca != nil {
		now := time.Now()
		cert, err := ca.issue([]string{"127.0.0.1", "::1", "localhost"}, now.Add(-time.Hour), now.AddDate(1, 0, 0))
		if err != nil {
			_ = ln.Close()
			t.Fatalf("probetest: proxy: %v", err)
		}
		p.listenTLS = &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}}
		p.URL.Scheme = "https"
	}
	p.ln = ln
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

// Requests returns the CONNECT requests received so far, in order.
func (p *Proxy) Requests() []ConnectRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]ConnectRequest(nil), p.requests...)
}

// Close stops the proxy, closes every client and upstream connection and
// waits for its goroutines. It is safe to call more than once.
func (p *Proxy) Close() {
	p.closeOnce.Do(func() {
		_ = p.ln.Close()
		p.mu.Lock()
		p.closed = true
		for c := range p.conns {
			_ = c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed; the proxy serves nothing after a listener error
		}
		if !p.track(c) {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer p.untrack(c)
			p.serve(c)
		}()
	}
}

// track registers c to be closed by Close; it closes c and returns false
// when the proxy is already closed.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_ = c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close()
}

// serve answers one CONNECT on c. Close closes the raw connections, never
// a tls.Conn, whose Close can wait for a blocked Write.
func (p *Proxy) serve(c net.Conn) {
	if p.listenTLS != nil {
		c = tls.Server(c, p.listenTLS)
	}
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	if req.Method != http.MethodConnect && req.URL.Scheme == "http" && req.URL.Host != "" {
		p.forward(c, req)
		return
	}
	if req.Method != http.MethodConnect {
		writeStatus(c, http.StatusMethodNotAllowed, nil)
		return
	}
	target := req.RequestURI
	p.mu.Lock()
	p.requests = append(p.requests, ConnectRequest{Target: target, ProxyAuthorization: req.Header.Get("Proxy-Authorization")})
	p.mu.Unlock()

	if !p.authorized(req.Header.Get("Proxy-Authorization")) {
		writeStatus(c, http.StatusProxyAuthRequired, p.challenges())
		return
	}
	if p.opts.status != 0 {
		writeStatus(c, p.opts.status, nil)
		return
	}
	if p.opts.pageCA != nil {
		p.servePage(&bufferedConn{Conn: c, r: br}, target)
		return
	}
	addr, ok := p.resolve(target)
	if !ok {
		writeStatus(c, http.StatusBadGateway, nil)
		return
	}
	up, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		writeStatus(c, http.StatusServiceUnavailable, nil)
		return
	}
	if !p.track(up) {
		return
	}
	defer p.untrack(up)
	if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	client := &bufferedConn{Conn: c, r: br}
	if p.opts.interceptCA != nil {
		p.intercept(client, up, target)
		return
	}
	relay(client, up)
}

// intercept terminates TLS on both sides of a tunnel to target and relays
// the plaintext.
func (p *Proxy) intercept(client, up net.Conn, target string) {
	host, _, err := net.SplitHostPort(target)
	if err != nil {
		return
	}
	upTLS := tls.Client(up, &tls.Config{
		ServerName:         host,
		InsecureSkipVerify: true, // a test helper; the client checks the bumped certificate
		NextProtos:         []string{"http/1.1"},
	})
	if err := upTLS.Handshake(); err != nil {
		return
	}
	now := time.Now()
	notBefore, notAfter := now.Add(-time.Hour), now.AddDate(0, 0, 90)
	if peer := upTLS.ConnectionState().PeerCertificates; len(peer) > 0 {
		notBefore, notAfter = peer[0].NotBefore, peer[0].NotAfter
	}
	cert, err := p.opts.interceptCA.issue([]string{host}, notBefore, notAfter)
	if err != nil {
		return
	}
	clientTLS := tls.Server(client, &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS10,
		NextProtos:   []string{"http/1.1"},
	})
	if err := clientTLS.Handshake(); err != nil {
		return
	}
	relay(clientTLS, upTLS)
}

// servePage answers a CONNECT 200, bumps the client's TLS and serves the
// BumpedPage response to its first request.
func (p *Proxy) servePage(client net.Conn, target string) {
	host, _, err := net.SplitHostPort(target)
	if err != nil {
		return
	}
	if _, err := io.WriteString(client, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	now := time.Now()
	cert, err := p.opts.pageCA.issue([]string{host}, now.Add(-time.Hour), now.AddDate(0, 0, 90))
	if err != nil {
		return
	}
	tc := tls.Server(client, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}})
	if err := tc.Handshake(); err != nil {
		return
	}
	if _, err := http.ReadRequest(bufio.NewReader(tc)); err != nil {
		return
	}
	_, _ = io.WriteString(tc, p.opts.page) // Close closes the raw connection
}

func (p *Proxy) authorized(header string) bool {
	if !p.opts.basic {
		return len(p.opts.schemes) == 0
	}
	scheme, cred, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
	if err != nil {
		return false
	}
	want := p.opts.user + ":" + p.opts.pass
	return subtle.ConstantTimeCompare(raw, []byte(want)) == 1
}

func (p *Proxy) challenges() []string {
	var h []string
	if p.opts.basic {
		h = append(h, `Basic realm="probetest"`)
	}
	return append(h, p.opts.schemes...)
}

// resolve returns the address to dial for target, and false when the
// proxy refuses it.
func (p *Proxy) resolve(target string) (string, bool) {
	if addr, ok := p.opts.upstream[target]; ok {
		return addr, true
	}
	host, _, err := net.SplitHostPort(target)
	if err != nil {
		return "", false
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return target, true
	}
	return "", false
}

// writeStatus writes a bodiless response that closes the connection, with
// one Proxy-Authenticate header per challenge.
func writeStatus(w io.Writer, code int, challenges []string) {
	var b strings.Builder
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\n", code, http.StatusText(code))
	for _, c := range challenges {
		fmt.Fprintf(&b, "Proxy-Authenticate: %s\r\n", c)
	}
	b.WriteString("Content-Length: 0\r\nConnection: close\r\n\r\n")
	_, _ = io.WriteString(w, b.String())
}

// relay copies between a and b in both directions until both are done,
// passing a half close on where the connection supports it.
func relay(a, b net.Conn) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		pipe(b, a)
	}()
	pipe(a, b)
	wg.Wait()
}

// pipe copies from src to dst, then closes dst for writing, or entirely
// when it cannot half close.
func pipe(dst, src net.Conn) {
	_, err := io.Copy(dst, src)
	if cw, ok := dst.(interface{ CloseWrite() error }); ok && err == nil {
		if cw.CloseWrite() == nil {
			return
		}
	}
	_ = dst.Close()
	_ = src.Close()
}

// bufferedConn is a net.Conn whose reads first drain what a bufio.Reader
// already buffered from it.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// CloseWrite half-closes the underlying connection when it can.
func (c *bufferedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}
