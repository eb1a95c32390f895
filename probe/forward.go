package probe

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"

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
	proxy  *proxyDialer
	target *url.URL
	ua     string
	http   *httpProber // nil without the http check
}

func newForwarder(pd *proxyDialer, t targets.Target, userAgent string) *forwarder {
	base := &url.URL{Scheme: "http", Host: net.JoinHostPort(t.Host, strconv.Itoa(t.Port)), Path: "/"}
	u, err := base.Parse(t.HTTP.Path)
	if err != nil { // validated at load
		u = base
	}
	pd.forwarding = true
	f := &forwarder{proxy: pd, target: u, ua: userAgent}
	if t.Has(targets.CheckHTTP) {
		f.http = &httpProber{check: t.HTTP, proxy: pd}
	}
	return f
}

// stages runs proxy then http; the connection is closed when it returns.
// The extras get no route to the target: a plain-HTTP target has no TLS
// to sweep.
func (f *forwarder) stages(ctx context.Context, r *Result) route {
	var conn net.Conn
	if r.run(StageProxy, func() (err *Error) {
		if conn, err = f.proxy.connectForward(ctx); err == nil {
			err = f.opened(ctx, conn)
		}
		return err
	}) {
		f.request(ctx, r, conn)
	}
	return route{}
}

// opened ends the proxy stage on a connection to the proxy: without the
// http check it sends the GET now, and closes the connection.
func (f *forwarder) opened(ctx context.Context, conn net.Conn) *Error {
	if f.http != nil {
		return nil
	}
	defer conn.Close()
	return f.forwards(ctx, conn)
}

// request is the http stage over conn, a connection to the proxy, which
// it closes; nothing without the http check (opened closed it).
func (f *forwarder) request(ctx context.Context, r *Result, conn net.Conn) {
	if f.http == nil {
		return
	}
	stop := deadlineOnCancel(ctx, conn)
	defer stop()
	defer conn.Close()
	r.run(StageHTTP, func() (err *Error) {
		var perr *Error
		r.HTTP, err = f.http.exchange(conn, func(br *bufio.Reader, rec *errRecorder) (*http.Response, error) {
			resp, err := f.proxy.get(conn, br, rec, f.target, f.ua)
			if err == nil && resp.StatusCode == http.StatusProxyAuthRequired {
				perr = f.proxy.forwardedFailure(resp)
			}
			return resp, err
		})
		if perr != nil {
			r.HTTP = nil
			return perr
		}
		return err
	})
}

// forwards sends the GET over conn and reads the answer's head: nil when
// the proxy forwarded an answer, the proxy's failure otherwise.
func (f *forwarder) forwards(ctx context.Context, conn net.Conn) *Error {
	stop := deadlineOnCancel(ctx, conn)
	defer stop()
	rec := &errRecorder{r: io.LimitReader(conn, MaxHeader+MaxBody)}
	resp, err := f.proxy.get(conn, bufio.NewReader(rec), rec, f.target, f.ua)
	if err != nil {
		return f.proxy.classify(fmt.Errorf("the GET through the proxy: %w", err))
	}
	defer resp.Body.Close()
	return f.proxy.forwardedFailure(resp)
}

// get sends an absolute-form GET of u through the proxy over conn, with
// every leg of the path's authentication on that connection (NTLM takes
// two requests), and returns the proxy's last answer.
func (pd *proxyDialer) get(conn net.Conn, br *bufio.Reader, rec *errRecorder, u *url.URL, userAgent string) (*http.Response, error) {
	resp, _, err := authExchange(conn, br, rec, pd.auth, http.MethodGet, func(h string) []byte {
		return []byte(renderGet(u, true, h, userAgent))
	})
	var setup errAuthSetup
	if errors.As(err, &setup) {
		return nil, setup
	}
	return resp, err
}

// forwardedFailure is the proxy's own refusal of a forwarded request,
// classified as the proxy stage classifies the same answer to CONNECT:
// a 407, or an answer that bears the proxy's marks (squid's X-Squid-Error,
// a Proxy-Status with an error, RFC 9209, tinyproxy's and mitmproxy's
// Server header on an error). Nil means the origin answered (or the proxy
// relayed it): the http stage judges it.
func (pd *proxyDialer) forwardedFailure(resp *http.Response) *Error {
	if resp.StatusCode != http.StatusProxyAuthRequired && !producedByProxy(resp) {
		return nil
	}
	return pd.answerVerdict(resp, "", false)
}
