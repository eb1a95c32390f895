package probe

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
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
)

// proxyDialer opens a CONNECT tunnel to one target through one proxy.
type proxyDialer struct {
	proxy    *url.URL // never carries credentials
	display  string   // the proxy as errors name it
	resolver *resolver
	tls      *tls.Config // for https:// proxies
	connect  []byte      // the CONNECT request, rendered once; holds the secret
	auth     string      // the Proxy-Authorization value, or ""; a secret
	authSent bool
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
	var b strings.Builder
	fmt.Fprintf(&b, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n", target, target)
	if user != "" {
		pd.authSent = true
		pd.auth = "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
		fmt.Fprintf(&b, "Proxy-Authorization: %s\r\n", pd.auth)
	}
	b.WriteString("\r\n")
	pd.connect = []byte(b.String())
	return pd
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
	if _, err := conn.Write(pd.connect); err != nil {
		return nil, pd.classify(err)
	}
	// A proxy that answers with endless headers (or a huge error body) is
	// cut off at MaxHeader; the tunnel behind the answer is not bounded.
	limit := &io.LimitedReader{R: conn, N: MaxHeader}
	br := bufio.NewReader(limit)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		if limit.N <= 0 {
			err = fmt.Errorf("more than %d bytes of status line and headers: %w", MaxHeader, err)
		}
		return nil, pd.classify(fmt.Errorf("reading the answer to CONNECT: %w", err))
	}
	resp.Body.Close()
	limit.N = math.MaxInt64
	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		if br.Buffered() > 0 {
			return &bufferedConn{Conn: conn, r: br}, nil
		}
		return conn, nil
	case code == http.StatusProxyAuthRequired:
		return nil, fail(ProxyAuthRequired, pd.authDetail(resp))
	case code == http.StatusBadGateway || code == http.StatusServiceUnavailable || code == http.StatusGatewayTimeout:
		return nil, fail(ProxyUpstreamFailed, pd.refusal(resp))
	case code >= 400 && code < 500:
		return nil, fail(ProxyDenied, pd.refusal(resp))
	}
	return nil, fail(ProxyError, pd.refusal(resp))
}

// refusal is the detail of a proxy's answer other than 2xx or 407: the
// status and, from squid, the error page it chose (X-Squid-Error:
// ERR_CONNECT_FAIL 111, ERR_DNS_FAIL 0, ERR_ACCESS_DENIED 0), which
// tells a refused upstream from a failed lookup behind the same 503.
func (pd *proxyDialer) refusal(resp *http.Response) error {
	if e := resp.Header.Get("X-Squid-Error"); e != "" {
		if len(e) > 64 {
			e = e[:64]
		}
		return fmt.Errorf("proxy %s answered %q (X-Squid-Error %q)", pd.display, resp.Status, e)
	}
	return fmt.Errorf("proxy %s answered %q", pd.display, resp.Status)
}

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

func (pd *proxyDialer) authDetail(resp *http.Response) error {
	var schemes []string
	for _, v := range resp.Header.Values("Proxy-Authenticate") {
		if s, _, _ := strings.Cut(strings.TrimSpace(v), " "); s != "" {
			schemes = append(schemes, s)
		}
	}
	offered := "no scheme"
	if len(schemes) > 0 {
		offered = strings.Join(schemes, ", ")
	}
	if pd.authSent {
		return fmt.Errorf("proxy %s rejected the configured credentials (407; offers %s)", pd.display, offered)
	}
	return fmt.Errorf("proxy %s demands credentials (407; offers %s) and the path has none", pd.display, offered)
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
