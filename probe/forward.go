package probe

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/reachd/reachd/targets"
)

// forwarder runs the stages of a plain-HTTP target (no tls check; port
// 80: certificate and CRL hosts) through a proxy the way agents and
// CryptoAPI send it: an absolute-form GET http://host/path to the proxy,
// never CONNECT, which proxies commonly allow only to 443. With the http
// check, the proxy stage connects to the proxy and the http stage sends
// the GET and judges the answer the proxy forwarded, unless the proxy made
// it itself. Without it, the proxy stage sends the GET too and passes once
// the proxy forwarded any answer: the proxy reaches the host and port.
type forwarder struct {
	proxy   *proxyDialer
	request []byte      // the absolute-form GET; holds the secret
	http    *httpProber // nil without the http check; sends request
}

func newForwarder(pd *proxyDialer, t targets.Target, userAgent string) *forwarder {
	base := &url.URL{Scheme: "http", Host: net.JoinHostPort(t.Host, strconv.Itoa(t.Port)), Path: "/"}
	u, err := base.Parse(t.HTTP.Path)
	if err != nil { // validated at load
		u = base
	}
	f := &forwarder{proxy: pd, request: []byte(renderGet(u, pd, userAgent))}
	if t.Has(targets.CheckHTTP) {
		f.http = &httpProber{request: f.request, check: t.HTTP}
	}
	return f
}

// stages runs proxy then http; the connection is closed when it returns.
// The extras get no route to the target: a plain-HTTP target has no TLS
// to sweep.
func (f *forwarder) stages(ctx context.Context, r *Result) route {
	var conn net.Conn
	if !r.run(StageProxy, func() (err *Error) {
		if conn, err = f.proxy.connectForward(ctx); err == nil && f.http == nil {
			err = f.forwards(ctx, conn)
			conn.Close()
		}
		return err
	}) || f.http == nil {
		return route{}
	}
	stop := deadlineOnCancel(ctx, conn)
	defer stop()
	defer conn.Close()
	r.run(StageHTTP, func() (err *Error) {
		tee := &headTee{Conn: conn}
		info, err := f.http.do(tee)
		if resp := tee.response(); resp != nil {
			if perr := f.proxy.forwardedFailure(resp); perr != nil {
				return perr
			}
		}
		r.HTTP = info
		return err
	})
	return route{}
}

// forwards sends the GET over conn and reads the answer's head: nil when
// the proxy forwarded an answer, the proxy's failure otherwise.
func (f *forwarder) forwards(ctx context.Context, conn net.Conn) *Error {
	stop := deadlineOnCancel(ctx, conn)
	defer stop()
	if _, err := conn.Write(f.request); err != nil {
		return f.proxy.classify(fmt.Errorf("sending the GET: %w", err))
	}
	resp, err := http.ReadResponse(bufio.NewReader(io.LimitReader(conn, MaxHeader)), nil)
	if err != nil {
		return f.proxy.classify(fmt.Errorf("reading the answer to the GET: %w", err))
	}
	resp.Body.Close()
	return f.proxy.forwardedFailure(resp)
}

// forwardedFailure is the proxy's own refusal of a forwarded request,
// classified as the proxy stage classifies the same answer to CONNECT:
// a 407, or an answer that bears the proxy's marks (squid's X-Squid-Error,
// a Proxy-Status with an error, RFC 9209, tinyproxy's Server header). Nil means the origin answered
// (or the proxy relayed it): the http stage judges it.
func (pd *proxyDialer) forwardedFailure(resp *http.Response) *Error {
	code := resp.StatusCode
	if code == http.StatusProxyAuthRequired {
		if pd.authSent {
			return fail(ProxyAuthRejected, pd.authDetail(resp))
		}
		return fail(ProxyAuthRequired, pd.authDetail(resp))
	}
	squid := resp.Header.Get("X-Squid-Error")
	status := resp.Header.Get("Proxy-Status")
	// tinyproxy names itself in the Server header of its own pages only
	// (a forwarded answer keeps the origin's), and says "500 Unable to
	// connect" for an origin it cannot reach.
	tiny := strings.HasPrefix(strings.ToLower(resp.Header.Get("Server")), "tinyproxy")
	if squid == "" && !strings.Contains(status, "error=") && !tiny {
		return nil
	}
	detail := pd.refusal(resp)
	if status != "" {
		if len(status) > 128 {
			status = status[:128]
		}
		detail = fmt.Errorf("%w (Proxy-Status %q)", detail, status)
	}
	switch {
	case code == http.StatusBadGateway || code == http.StatusServiceUnavailable || code == http.StatusGatewayTimeout,
		upstreamSquidError(squid), strings.Contains(status, "error=dns_"), strings.Contains(status, "error=connection_"),
		strings.Contains(status, "error=tls_"), strings.Contains(status, "error=destination_"),
		tiny && code == http.StatusInternalServerError:
		return fail(ProxyUpstreamFailed, detail)
	case code == http.StatusBadRequest || code == http.StatusMethodNotAllowed:
		return fail(ProxyError, detail)
	case code >= 400 && code < 500:
		return fail(ProxyDenied, detail)
	}
	return fail(ProxyError, detail)
}

// upstreamSquidError reports squid's error pages for an origin it could
// not reach (ERR_CANNOT_FORWARD comes with a 500 for an unresolvable name).
func upstreamSquidError(e string) bool {
	for _, name := range []string{"ERR_DNS_FAIL", "ERR_CONNECT_FAIL", "ERR_CANNOT_FORWARD", "ERR_READ_TIMEOUT", "ERR_ZERO_SIZE_OBJECT", "ERR_READ_ERROR"} {
		if strings.HasPrefix(e, name) {
			return true
		}
	}
	return false
}

// headTee keeps the first bytes read from a connection, up to the header
// bound, so the answer's status and headers can be read again after the
// http stage parsed it.
type headTee struct {
	net.Conn
	head []byte
}

func (c *headTee) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if room := MaxHeader - len(c.head); room > 0 {
		c.head = append(c.head, p[:min(n, room)]...)
	}
	return n, err
}

// response is the status line and headers read so far; nil when they had
// not arrived whole.
func (c *headTee) response() *http.Response {
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(c.head)), nil)
	if err != nil {
		return nil
	}
	return resp
}
