package probe

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/reachd/reachd/configs"
)

// proxyDialer opens a CONNECT tunnel to one target through one proxy.
type proxyDialer struct {
	proxy    *url.URL // never carries credentials
	display  string   // the proxy as errors name it
	resolver *resolver
	tls      *tls.Config // for https:// proxies
	connect  string      // the CONNECT request line and Host header
	auth     proxyAuth   // nil: none; holds the secret
	// forwarding: the target is plain HTTP, sent as a GET to the proxy,
	// never tunnelled (forward.go).
	forwarding bool
	authSent   bool

	user, password string // secret: for setAuth
}

func newProxyDialer(proxy *url.URL, user, password, target string, res *resolver, trusted *x509.CertPool) *proxyDialer {
	pd := &proxyDialer{proxy: proxy, display: proxy.Redacted(), resolver: res}
	if proxy.User != nil { // from HTTPS_PROXY in the environment
		user = proxy.User.Username()
		password, _ = proxy.User.Password()
		u := *proxy
		u.User = nil
		pd.proxy = &u
		pd.display = u.String()
	}
	if proxy.Scheme == "https" {
		pd.tls = &tls.Config{ServerName: pd.proxy.Hostname(), RootCAs: trusted, MinVersion: tls.VersionTLS12}
	}
	pd.connect = fmt.Sprintf("CONNECT %s HTTP/1.1\r\nHost: %s\r\n", target, target)
	pd.user, pd.password = user, password
	pd.setAuth(configs.Path{})
	return pd
}

// setAuth authenticates as path p says (auth = basic, ntlm, negotiate),
// with the credentials newProxyDialer was given.
func (pd *proxyDialer) setAuth(p configs.Path) {
	pd.auth = newProxyAuth(p, pd.user, pd.password, pd.proxy.Hostname())
	pd.authSent = pd.auth != nil
}

// request renders a CONNECT with the Proxy-Authorization value h.
func (pd *proxyDialer) request(h string) []byte {
	if h == "" {
		return []byte(pd.connect + "\r\n")
	}
	return []byte(pd.connect + "Proxy-Authorization: " + h + "\r\n\r\n")
}

// dial returns a tunnel to the target: the proxy stage.
func (pd *proxyDialer) dial(ctx context.Context) (net.Conn, *Error) {
	conn, err := pd.dialProxy(ctx)
	if err != nil {
		return nil, err
	}
	stop := deadlineOnCancel(ctx, conn)
	defer stop()
	tunnel, err := pd.handshake(ctx, conn)
	if err != nil {
		conn.Close()
		return nil, err
	}
	conn.SetDeadline(noDeadline)
	return tunnel, nil
}

// dialProxy resolves the proxy's host with the first resolver and opens a
// TCP connection to it.
func (pd *proxyDialer) dialProxy(ctx context.Context) (net.Conn, *Error) {
	host := pd.proxy.Hostname()
	port, _ := strconv.Atoi(pd.proxy.Port())
	var addrs []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{ip}
	} else {
		var derr *Error
		if addrs, derr, _ = pd.resolver.lookup(ctx, host); derr != nil {
			return nil, fail(ProxyDNSFailed, fmt.Errorf("proxy %s: %s: %w", pd.display, derr.Reason, derr.Err))
		}
	}
	conn, terr := dialAddrs(ctx, addrs, port)
	if terr != nil {
		if terr.Reason == TCPTimeout {
			return nil, fail(ProxyTimeout, fmt.Errorf("proxy %s: %w", pd.display, terr.Err))
		}
		return nil, fail(ProxyUnreachable, fmt.Errorf("proxy %s: %w", pd.display, terr.Err))
	}
	return conn, nil
}

func (pd *proxyDialer) handshake(ctx context.Context, conn net.Conn) (net.Conn, *Error) {
	if pd.tls != nil {
		tc := tls.Client(conn, pd.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, pd.classify(fmt.Errorf("TLS to the proxy: %w", untrustedProxy(err)))
		}
		conn = tc
	}
	// A proxy that answers with endless headers (or a huge error body) is
	// cut off at MaxHeader, over every leg of the authentication; the
	// tunnel behind the answer is not bounded.
	limit := &io.LimitedReader{R: conn, N: MaxHeader}
	rec := &errRecorder{r: limit}
	br := bufio.NewReader(rec)
	resp, _, err := authExchange(conn, br, rec, pd.auth, http.MethodConnect, pd.request)
	if err != nil {
		var setup errAuthSetup
		if errors.As(err, &setup) {
			return nil, pd.setupFailed(setup.err)
		}
		if limit.N <= 0 {
			err = fmt.Errorf("more than %d bytes of status line and headers: %w", MaxHeader, err)
		}
		return nil, pd.classify(fmt.Errorf("reading the answer to CONNECT: %w", err))
	}
	code := resp.StatusCode
	if code >= 200 && code < 300 {
		// The tunnel starts right after the header: a Content-Length or
		// Transfer-Encoding on a 2xx answer to CONNECT is ignored (RFC 9110
		// §9.3.6), so its body is never read.
		limit.N = math.MaxInt64
		if br.Buffered() > 0 {
			return &bufferedConn{Conn: conn, r: br}, nil
		}
		return conn, nil
	}
	return nil, pd.answerVerdict(resp, connectBody(conn, resp), true)
}

// setupFailed is the verdict when the credentials could not be made: a
// KDC that refuses the principal or its key is a rejection of the
// credentials, anything else (no KDC, no keytab) a failure to use them.
func (pd *proxyDialer) setupFailed(err error) *Error {
	err = fmt.Errorf("proxy %s: the path's credentials could not be used: %w", pd.display, err)
	// The KDC refused the principal or its key, or (without required
	// pre-authentication) answered with a key the keytab does not hold.
	if msg := err.Error(); strings.Contains(msg, "KDC_ERR_") || strings.Contains(msg, "password/keytab incorrect") {
		return fail(ProxyAuthRejected, err)
	}
	if isTimeout(err) {
		return fail(ProxyTimeout, err)
	}
	return fail(ProxyError, err)
}

// connectBody is the short text a proxy sent with a refusal (mitmproxy:
// "Cannot connect to host:port: [Errno 111] ..."), or "" for an HTML
// page, a long body or one that does not come at once.
func connectBody(conn net.Conn, resp *http.Response) string {
	ct := resp.Header.Get("Content-Type")
	if resp.ContentLength <= 0 || resp.ContentLength > 512 || (ct != "" && !strings.HasPrefix(ct, "text/plain")) {
		return ""
	}
	// The verdict is known already: the quote may not delay it.
	conn.SetReadDeadline(time.Now().Add(quoteWait))
	b, err := io.ReadAll(io.LimitReader(resp.Body, 512))
	if err != nil || !utf8.Valid(b) {
		return ""
	}
	return strings.Join(strings.Fields(string(b)), " ")
}

// quoteWait bounds the wait for the body of a proxy's refusal.
const quoteWait = 250 * time.Millisecond

// untrustedProxy names the issuer of an https:// proxy's certificate that
// does not verify, and where to trust it.
func untrustedProxy(err error) error {
	var cve *tls.CertificateVerificationError
	var unknown x509.UnknownAuthorityError
	if errors.As(err, &cve) && errors.As(err, &unknown) && len(cve.UnverifiedCertificates) > 0 {
		return fmt.Errorf("its certificate is issued by %q, which this path does not trust (give that CA as the path's ca_file): %w",
			issuerName(cve.UnverifiedCertificates[0]), err)
	}
	return err
}

func (pd *proxyDialer) classify(err error) *Error {
	if isTimeout(err) {
		return fail(ProxyTimeout, fmt.Errorf("proxy %s: %w", pd.display, err))
	}
	return fail(ProxyError, fmt.Errorf("proxy %s: %w", pd.display, err))
}

// bufferedConn returns bytes the proxy sent right after its answer first.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
