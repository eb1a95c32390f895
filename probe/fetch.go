package probe

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/net/http/httpproxy"

	"github.com/reachd/reachd/configs"
	"github.com/reachd/reachd/probe/pac"
)

// fetcher gets plain-HTTP URLs over a probe's own path, as a Windows agent
// and CryptoAPI reach AIA, CRL and OCSP URLs: direct, resolving with the
// probe's resolver, or through the path's proxy as an absolute-form GET
// with the path's credentials and auth scheme; on a pac or wpad path
// through the proxy the PAC names for that URL, falling over as the
// probe does. It serves the tls stage (a missing intermediate from the
// leaf's AIA URL) and the extras (revocation).
type fetcher struct {
	path      configs.Path
	resolver  *resolver
	trusted   *x509.CertPool // for an https:// proxy
	userAgent string
	explicit  *proxyDialer // the path's proxy; nil on direct, environment and pac paths
	pac       *pacRoute    // a pac or wpad path's PAC; nil otherwise

	mu      sync.Mutex
	dialers map[string]*proxyDialer // proxies an environment path or a PAC named, by URL
}

func newFetcher(p configs.Path, res *resolver, trusted *x509.CertPool, userAgent string, pac *pacRoute) *fetcher {
	f := &fetcher{path: p, resolver: res, trusted: trusted, userAgent: userAgent, pac: pac, dialers: map[string]*proxyDialer{}}
	if p.Proxy != nil && pac == nil {
		f.explicit = f.newDialer(p.Proxy)
	}
	return f
}

// newDialer is a forwarding dialer to proxy with the path's credentials
// and auth scheme.
func (f *fetcher) newDialer(proxy *url.URL) *proxyDialer {
	pd := newProxyDialer(proxy, f.path.Username, f.path.Password, "", f.resolver, f.trusted)
	pd.setAuth(f.path)
	pd.forwarding = true
	return pd
}

// dialer returns the dialer of proxy, built once.
func (f *fetcher) dialer(proxy *url.URL) *proxyDialer {
	f.mu.Lock()
	defer f.mu.Unlock()
	pd, ok := f.dialers[proxy.String()]
	if !ok {
		pd = f.newDialer(proxy)
		f.dialers[proxy.String()] = pd
	}
	return pd
}

// fetched is a response fetch read: the status, the headers and at most
// maxBody bytes of the body (Truncated when there was more).
type fetched struct {
	Status    int
	Header    http.Header
	Body      []byte
	Truncated bool
}

// fetch GETs the http:// URL raw over the path within ctx, reading at most
// maxBody bytes of the body. A failure is classified like the stages': a
// dns_*, tcp_* or proxy_* reason on the way there (a proxy's own refusal
// included), http_* once the request was sent. Any status is an answer;
// the caller judges it.
func (f *fetcher) fetch(ctx context.Context, raw string, maxBody int64) (*fetched, *Error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return nil, fail(HTTPError, fmt.Errorf("%q is not an http:// URL", raw))
	}
	conn, pd, ferr := f.open(ctx, u)
	if ferr != nil {
		return nil, ferr
	}
	defer conn.Close()
	stop := deadlineOnCancel(ctx, conn)
	defer stop()
	rec := &errRecorder{r: io.LimitReader(conn, MaxHeader+maxBody+1)}
	br := bufio.NewReader(rec)
	var resp *http.Response
	if pd != nil {
		resp, err = pd.get(conn, br, rec, u, f.userAgent)
	} else if _, err = io.WriteString(conn, renderGet(u, false, "", f.userAgent)); err == nil {
		resp, err = http.ReadResponse(br, nil)
	}
	if err != nil {
		return nil, classifyHTTP(fmt.Errorf("GET %s: %w", u.Redacted(), rec.cause(err)))
	}
	defer resp.Body.Close()
	if pd != nil {
		if perr := pd.forwardedFailure(resp); perr != nil {
			return nil, perr
		}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, classifyHTTP(fmt.Errorf("GET %s: reading the body: %w", u.Redacted(), err))
	}
	out := &fetched{Status: resp.StatusCode, Header: resp.Header, Body: body}
	if int64(len(body)) > maxBody {
		out.Body, out.Truncated = body[:maxBody], true
	}
	return out, nil
}

// open connects for a GET of u: to the proxy the path uses for it (pd),
// or direct (pd nil).
func (f *fetcher) open(ctx context.Context, u *url.URL) (conn net.Conn, pd *proxyDialer, err *Error) {
	if f.pac != nil {
		return f.openByPAC(ctx, u)
	}
	if pd = f.proxyFor(u); pd != nil {
		conn, err = pd.connectForward(ctx)
		return conn, pd, err
	}
	conn, err = f.dialDirect(ctx, u)
	return conn, nil, err
}

// openByPAC asks the PAC about u and tries its answer in order, as the
// probe's proxy stage does: a proxy that cannot be reached is fallen
// over, DIRECT dials the host.
func (f *fetcher) openByPAC(ctx context.Context, u *url.URL) (net.Conn, *proxyDialer, *Error) {
	script, ferr := f.pac.script(ctx)
	if script == nil {
		return nil, nil, fail(ProxyPACFailed, ferr)
	}
	proxies, perr := script.FindProxy(ctx, u.String(), u.Hostname())
	if perr != nil {
		return nil, nil, fail(ProxyPACFailed, fmt.Errorf("PAC %s: %w", script.Name(), perr))
	}
	var last *Error
	for i, p := range proxies {
		if p.Kind == pac.Direct {
			conn, err := f.dialDirect(ctx, u)
			return conn, nil, err
		}
		proxy := p.URL()
		if proxy == nil { // SOCKS: skipped, as by the proxy stage
			continue
		}
		pd := f.dialer(proxy)
		actx, cancel := shareOf(ctx, len(proxies)-i)
		conn, err := pd.connectForward(actx)
		cancel()
		if err == nil {
			return conn, pd, nil
		}
		last = err
		if !fallsOver(err) || ctx.Err() != nil {
			break
		}
	}
	if last == nil {
		return nil, nil, fail(ProxyPACFailed, fmt.Errorf("PAC %s names no HTTP proxy or DIRECT for %s", script.Name(), u.Redacted()))
	}
	return nil, nil, last
}

// proxyFor is the proxy the path uses for u; nil is direct. An
// environment path decides per URL (HTTP_PROXY, NO_PROXY), as agents do.
func (f *fetcher) proxyFor(u *url.URL) *proxyDialer {
	if !f.path.Environment {
		return f.explicit
	}
	env := httpproxy.Config{HTTPProxy: f.path.ProxyEnv.HTTPProxy, NoProxy: f.path.ProxyEnv.NoProxy}
	p, err := env.ProxyFunc()(u)
	if err != nil || p == nil {
		return nil
	}
	return f.dialer(withDefaultPort(p))
}

func (f *fetcher) dialDirect(ctx context.Context, u *url.URL) (net.Conn, *Error) {
	port := 80
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return nil, fail(HTTPError, fmt.Errorf("%q has no valid port", u.Redacted()))
		}
		port = n
	}
	host := u.Hostname()
	var addrs []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{ip}
	} else {
		var derr *Error
		if addrs, derr, _ = f.resolver.lookup(ctx, host); derr != nil {
			return nil, derr
		}
	}
	return dialAddrs(ctx, addrs, port)
}

// connectForward opens a connection to the proxy for forwarded (not
// tunnelled) requests: TCP, and TLS to an https:// proxy.
func (pd *proxyDialer) connectForward(ctx context.Context) (net.Conn, *Error) {
	conn, err := pd.dialProxy(ctx)
	if err != nil || pd.tls == nil {
		return conn, err
	}
	tc := tls.Client(conn, pd.tls)
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, pd.classify(fmt.Errorf("TLS to the proxy: %w", untrustedProxy(err)))
	}
	return tc, nil
}

// renderGet is a GET of u that closes the connection: origin-form
// direct, absolute-form through a proxy with the Proxy-Authorization
// value authorization ("" for none). The default port 80 is left out of
// the URL, as agents and CryptoAPI send it.
func renderGet(u *url.URL, proxied bool, authorization, userAgent string) string {
	host := u.Host
	if u.Port() == "80" {
		host = u.Hostname()
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
	}
	target := u.RequestURI()
	var auth string
	if proxied {
		target = "http://" + host + target
		if authorization != "" {
			auth = "Proxy-Authorization: " + authorization + "\r\n"
		}
	}
	return fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\nAccept: */*\r\n%sConnection: close\r\n\r\n", target, host, userAgent, auth)
}

// withDefaultPort gives a proxy URL without a port the scheme's.
func withDefaultPort(u *url.URL) *url.URL {
	if u.Port() != "" {
		return u
	}
	port := "80"
	if u.Scheme == "https" {
		port = "443"
	}
	c := *u
	c.Host = net.JoinHostPort(u.Hostname(), port)
	return &c
}
