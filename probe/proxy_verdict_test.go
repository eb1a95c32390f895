package probe

import (
	"bufio"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/reachd/reachd/configs"
	"github.com/reachd/reachd/probe/probetest"
	"github.com/reachd/reachd/targets"
)

// The answers below are what the real proxies sent (squid 5.7 with
// ssl-bump and the test config of e2e/testdata/squid.conf.tmpl,
// tinyproxy 1.11.1, mitmproxy 8.1.1, all on loopback on 2026-12-01),
// with squid's 3 KB HTML pages cut to the lines that matter; e2e
// TestSquidBumpedVerdicts and TestTinyproxyDialect run the real ones.
var (
	// squid, a CONNECT to a port its ACLs deny, on the bump port: CONNECT
	// is answered 200, then this inside the bumped tunnel.
	squidBumpDenied = "HTTP/1.1 403 Forbidden\r\nServer: squid/5.7\r\nMime-Version: 1.0\r\nContent-Type: text/html;charset=utf-8\r\n" +
		"X-Squid-Error: ERR_ACCESS_DENIED 0\r\nVary: Accept-Language\r\nContent-Language: en\r\n" +
		"X-Cache: MISS from reachd-e2e\r\nVia: 1.1 reachd-e2e (squid/5.7)\r\nConnection: close\r\n\r\n<html><p><b>Access Denied.</b></p></html>\r\n\r\n\r\n"
	// squid, the origin refuses the connection (bump port).
	squidBumpConnectFail = "HTTP/1.1 503 Service Unavailable\r\nServer: squid/5.7\r\nContent-Type: text/html;charset=utf-8\r\n" +
		"X-Squid-Error: ERR_CONNECT_FAIL 111\r\nVia: 1.1 reachd-e2e (squid/5.7)\r\nConnection: close\r\n\r\n" +
		"<html><p><b>Connection to 127.0.0.1 failed.</b></p>\r\n\r\n"
	// squid, the origin's name does not resolve (bump port): squid 5.7
	// says ERR_READ_ERROR here, not ERR_DNS_FAIL.
	squidBumpNXDomain = "HTTP/1.1 502 Bad Gateway\r\nServer: squid/5.7\r\nContent-Type: text/html;charset=utf-8\r\n" +
		"X-Squid-Error: ERR_READ_ERROR 0\r\nVia: 1.1 reachd-e2e (squid/5.7)\r\nConnection: close\r\n\r\n<html><p><b>Read Error</b></p>"
	// squid, the origin's certificate does not verify against squid's
	// tls_outgoing_options cafile (bump port).
	squidBumpSecureFail = "HTTP/1.1 503 Service Unavailable\r\nServer: squid/5.7\r\nContent-Type: text/html;charset=utf-8\r\n" +
		"X-Squid-Error: ERR_SECURE_CONNECT_FAIL 0\r\nVia: 1.1 reachd-e2e (squid/5.7)\r\nConnection: close\r\n\r\n" +
		"<p><b>Failed to establish a secure connection to [unknown]</b></p>\n<pre>[No Error] (TLS code: SQUID_TLS_ERR_CONNECT+TLS_IO_ERR=1)</pre>\n\n"
	// mitmproxy, the origin's certificate is self-signed: CONNECT 200,
	// then this page inside the tunnel.
	mitmVerifyFailed = "HTTP/1.1 502 Bad Gateway\r\nServer: mitmproxy 8.1.1\r\nConnection: close\r\nContent-Type: text/html\r\n\r\n" +
		"<html>\n<head>\n    <title>502 Bad Gateway</title>\n</head>\n<body>\n    <h1>502 Bad Gateway</h1>\n" +
		"    <p>Certificate verify failed: self-signed certificate</p>\n</body>\n</html>"

	// squid 5.7, a CONNECT to a name that does not resolve (open port).
	squidCannotForward = "HTTP/1.1 500 Internal Server Error\r\nServer: squid/5.7\r\nContent-Type: text/html;charset=utf-8\r\n" +
		"Content-Length: 0\r\nX-Squid-Error: ERR_CANNOT_FORWARD 0\r\nVia: 1.1 reachd-e2e (squid/5.7)\r\nConnection: keep-alive\r\n\r\n"
	// tinyproxy 1.11.1 with BasicAuth, wrong credentials sent.
	tinyproxyWrongCredentials = "HTTP/1.0 401 Unauthorized\r\nServer: tinyproxy/1.11.1\r\nContent-Type: text/html\r\n" +
		"WWW-Authenticate: Basic realm=\"Tinyproxy\"\r\nConnection: close\r\n\r\n<html>401</html>"
	// tinyproxy 1.11.1 with BasicAuth, no credentials sent.
	tinyproxyNoCredentials = "HTTP/1.0 407 Proxy Authentication Required\r\nServer: tinyproxy/1.11.1\r\nContent-Type: text/html\r\n" +
		"Proxy-Authenticate: Basic realm=\"Tinyproxy\"\r\nConnection: close\r\n\r\n<html>407</html>"
	// tinyproxy 1.11.1, the upstream refuses or does not resolve: the same answer.
	tinyproxyUnableToConnect = "HTTP/1.1 500 Unable to connect\r\nServer: tinyproxy/1.11.1\r\nContent-Type: text/html\r\nConnection: close\r\n\r\n" +
		"<html><head><title>500 Unable to connect</title></head><body><h1>Unable to connect</h1>" +
		"<p>Tinyproxy was unable to connect to the remote web server.</p></body></html>"
	// mitmproxy 8.1.1, a CONNECT to a closed port; the body follows the
	// header in a second write, and the connection stays open.
	mitmCannotConnect = "HTTP/1.1 502 Bad Gateway\r\ncontent-length: 79\r\n\r\n"
	mitmCannotBody    = "Cannot connect to 127.0.0.1:1: [Errno 111] Connect call failed ('127.0.0.1', 1)"
)

// assertVerdict is assertOutcome for a verdict that a later stage finds
// about an earlier one: the proxy's own page read by the http stage is a
// proxy reason, while the stage that failed is http.
func assertVerdict(t *testing.T, r Result, stage Stage, reason Reason, failedStage Stage, details ...string) {
	t.Helper()
	if r.Err == nil {
		t.Fatalf("succeeded, want %s/%s", stage, reason)
	}
	if r.Err.Stage != stage || r.Err.Reason != reason {
		t.Fatalf("got %s/%s (%v), want %s/%s", r.Err.Stage, r.Err.Reason, r.Err.Err, stage, reason)
	}
	covered.Store(reason, t.Name())
	for _, d := range details {
		if !strings.Contains(r.Err.Error(), d) {
			t.Errorf("detail %q lacks %q", r.Err.Error(), d)
		}
	}
	if last := r.Stages[len(r.Stages)-1]; last.Stage != failedStage || last.Success {
		t.Errorf("last stage %+v, want failed %s", last, failedStage)
	}
}

// TestProxyPagesInsideTheTunnel: an intercepting proxy answers CONNECT
// 200 and then serves its own error page inside the tunnel. The verdict
// is the one the proxy stage gives for the same situation, at stage
// proxy, quoting the proxy; the vendor's own answers stay the vendor's.
func TestProxyPagesInsideTheTunnel(t *testing.T) {
	l := newLab(t)
	bumpCA := probetest.NewCA(t, "Bump CA")
	tests := []struct {
		name    string
		page    string
		reason  Reason
		details []string
	}{
		{"squid ssl-bump, denied by its ACL", squidBumpDenied, ProxyDenied,
			[]string{`answered "403 Forbidden" itself, inside the tunnel (X-Squid-Error "ERR_ACCESS_DENIED 0")`}},
		{"squid ssl-bump, the origin refuses", squidBumpConnectFail, ProxyUpstreamFailed,
			[]string{`"503 Service Unavailable" itself, inside the tunnel (X-Squid-Error "ERR_CONNECT_FAIL 111")`}},
		{"squid ssl-bump, the origin's name does not resolve", squidBumpNXDomain, ProxyUpstreamFailed,
			[]string{`"502 Bad Gateway" itself, inside the tunnel (X-Squid-Error "ERR_READ_ERROR 0")`}},
		{"squid ssl-bump, the origin's TLS fails at the proxy", squidBumpSecureFail, ProxyUpstreamFailed,
			[]string{`(X-Squid-Error "ERR_SECURE_CONNECT_FAIL 0"): "TLS code: SQUID_TLS_ERR_CONNECT+TLS_IO_ERR=1"`, "the proxy's own TLS connection to the origin failed"}},
		{"squid, a 500 for a name that does not resolve", squidCannotForward, ProxyUpstreamFailed,
			[]string{`"500 Internal Server Error" itself, inside the tunnel (X-Squid-Error "ERR_CANNOT_FORWARD 0")`}},
		{"mitmproxy, the origin's certificate is self-signed", mitmVerifyFailed, ProxyUpstreamFailed,
			[]string{`"502 Bad Gateway" itself, inside the tunnel (Server "mitmproxy 8.1.1"): "Certificate verify failed: self-signed certificate"`, "own TLS connection to the origin failed"}},
		{"RFC 9209 Proxy-Status, NXDOMAIN", "HTTP/1.1 502 Bad Gateway\r\nProxy-Status: proxy.corp.example; error=dns_error; rcode=\"NXDOMAIN\"\r\nContent-Length: 0\r\n\r\n", ProxyUpstreamFailed,
			[]string{`(Proxy-Status "proxy.corp.example; error=dns_error; rcode=\"NXDOMAIN\"")`}},
		{"RFC 9209 Proxy-Status, an unknown error type is judged by the status", "HTTP/1.1 403 Forbidden\r\nProxy-Status: origin.cdn; error=\"x\", swg.corp.example; error=http_request_denied; details=\"category, gambling\"\r\nContent-Length: 0\r\n\r\n", ProxyDenied,
			[]string{`Proxy-Status "origin.cdn; error=\"x\""`}},
		{"RFC 9209 Proxy-Status, request denied", "HTTP/1.1 403 Forbidden\r\nProxy-Status: swg.corp.example; error=http_request_denied; details=\"category, gambling\"\r\nContent-Length: 0\r\n\r\n", ProxyDenied,
			[]string{`swg.corp.example; error=http_request_denied; details=\"category, gambling\"`}},
		{"RFC 9209 Proxy-Status, the origin's certificate", "HTTP/1.1 502 Bad Gateway\r\nProxy-Status: swg; error=tls_certificate_error; details=\"unable to get local issuer certificate\"\r\nContent-Length: 0\r\n\r\n", ProxyUpstreamFailed,
			[]string{`error=tls_certificate_error`, "own TLS connection to the origin failed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proxy := probetest.NewProxy(t, probetest.BumpedPage(bumpCA, tt.page))
			path := configs.Path{Name: "bump", Proxy: proxy.URL, CACerts: []*x509.Certificate{bumpCA.Cert}}
			r := l.probe(target("vendor.reachd.test", 443), path, l.config())
			assertVerdict(t, r, StageProxy, tt.reason, StageHTTP, tt.details...)
			if r.TLS == nil || !r.TLS.Intercepted || r.HTTP == nil || r.HTTP.Status != parseStatus(tt.page) {
				t.Errorf("tls %+v http %+v, want the intercepted chain and the page's status", r.TLS, r.HTTP)
			}
		})
	}

	// What the origin itself answers is the origin's, below 500 a pass.
	t.Run("the origin's own 403 through the bump", func(t *testing.T) {
		proxy := probetest.NewProxy(t, probetest.BumpedPage(bumpCA, "HTTP/1.1 403 Forbidden\r\nServer: nginx\r\nVia: 1.1 bump\r\nContent-Length: 0\r\n\r\n"))
		path := configs.Path{Name: "bump", Proxy: proxy.URL, CACerts: []*x509.Certificate{bumpCA.Cert}}
		assertOutcome(t, l.probe(target("vendor.reachd.test", 443), path, l.config()), "", "", "")
	})
	t.Run("the origin's own 503 through the bump", func(t *testing.T) {
		proxy := probetest.NewProxy(t, probetest.BumpedPage(bumpCA, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"))
		path := configs.Path{Name: "bump", Proxy: proxy.URL, CACerts: []*x509.Certificate{bumpCA.Cert}}
		assertOutcome(t, l.probe(target("vendor.reachd.test", 443), path, l.config()), StageHTTP, HTTPStatusUnexpected, "503")
	})
}

func parseStatus(raw string) int {
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(raw)), nil)
	if err != nil {
		return 0
	}
	return resp.StatusCode
}

// TestProxyDialects: what squid, tinyproxy and mitmproxy really answer to
// CONNECT, mapped by meaning.
func TestProxyDialects(t *testing.T) {
	l := newLab(t)
	mitm := newRawProxy(t, func(c net.Conn) {
		io.WriteString(c, mitmCannotConnect)
		io.WriteString(c, mitmCannotBody)
		silent(c)
	})
	tests := []struct {
		name       string
		answer     func(net.Conn)
		user, pass string
		reason     Reason
		detail     string
	}{
		{"tinyproxy: wrong credentials are a 401", says(tinyproxyWrongCredentials), "svc", "wrong", ProxyAuthRejected,
			"rejected the configured credentials (401; offers Basic)"},
		{"tinyproxy: no credentials are a 407", says(tinyproxyNoCredentials), "", "", ProxyAuthRequired,
			"demands credentials (407; offers Basic) and the path has none"},
		{"tinyproxy: a 401 without credentials sent", says(tinyproxyWrongCredentials), "", "", ProxyAuthRequired,
			"demands credentials (401; offers Basic)"},
		{"tinyproxy: a dead or unresolvable upstream is a 500", says(tinyproxyUnableToConnect), "", "", ProxyUpstreamFailed,
			`answered "500 Unable to connect"`},
		{"squid 5.7: NXDOMAIN is a 500 ERR_CANNOT_FORWARD", says(squidCannotForward), "", "", ProxyUpstreamFailed,
			`answered "500 Internal Server Error" (X-Squid-Error "ERR_CANNOT_FORWARD 0")`},
		{"mitmproxy: a refused upstream, quoted", nil, "", "", ProxyUpstreamFailed,
			`answered "502 Bad Gateway": "Cannot connect to 127.0.0.1:1: [Errno 111] Connect call failed ('127.0.0.1', 1)"`},
		{"Proxy-Status on the answer to CONNECT", says("HTTP/1.1 500 Internal Server Error\r\nProxy-Status: envoy; error=connection_refused\r\n\r\n"), "", "", ProxyUpstreamFailed,
			`(Proxy-Status "envoy; error=connection_refused")`},
		{"a proxy's own 500 stays an error of the proxy", says("HTTP/1.1 500 Internal Server Error\r\nServer: tinyproxy/1.11.1\r\n\r\n"), "", "", ProxyError,
			`answered "500 Internal Server Error"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := mitm.URL
			if tt.answer != nil {
				u = newRawProxy(t, tt.answer).URL
			}
			start := time.Now()
			r := l.probe(target("vendor.reachd.test", 443), configs.Path{Name: "p", Proxy: u, Username: tt.user, Password: tt.pass}, l.config())
			assertOutcome(t, r, StageProxy, tt.reason, tt.detail)
			if tt.pass != "" && strings.Contains(r.Err.Error(), tt.pass) {
				t.Errorf("the detail shows the password: %v", r.Err)
			}
			if time.Since(start) > 2*time.Second {
				t.Errorf("took %v: waited for the end of a body", time.Since(start))
			}
		})
	}
}

// TestRejectedCredentials: a 407 after credentials were sent is a
// rejection; a 407 to a CONNECT without any is a demand.
func TestRejectedCredentials(t *testing.T) {
	l := newLab(t)
	s := l.server("vendor.reachd.test")
	proxy := probetest.NewProxy(t, probetest.BasicAuth("svc", "right-pw"), probetest.AuthSchemes("NTLM"),
		probetest.Upstream(map[string]string{"vendor.reachd.test:443": s.Addr}))
	tests := []struct {
		user, pass string
		reason     Reason
		detail     string
	}{
		{"svc", "wrong-pw", ProxyAuthRejected, "rejected the configured credentials (407; offers Basic, NTLM)"},
		{"", "", ProxyAuthRequired, "demands credentials (407; offers Basic, NTLM) and the path has none"},
		{"svc", "right-pw", "", ""},
	}
	for _, tt := range tests {
		t.Run(string(tt.reason)+tt.user, func(t *testing.T) {
			r := l.probe(target("vendor.reachd.test", 443), configs.Path{Name: "p", Proxy: proxy.URL, Username: tt.user, Password: tt.pass}, l.config())
			stage := StageProxy
			if tt.reason == "" {
				stage = ""
			}
			assertOutcome(t, r, stage, tt.reason, tt.detail)
			if r.Err != nil && strings.Contains(r.Err.Error(), "wrong-pw") {
				t.Errorf("the detail shows the password: %v", r.Err)
			}
		})
	}
}

// answerThenRelay writes head as the answer to CONNECT and then relays
// the connection to upstream.
func answerThenRelay(head, upstream string) func(net.Conn) {
	return func(c net.Conn) {
		up, err := net.Dial("tcp", upstream)
		if err != nil {
			return
		}
		defer up.Close()
		io.WriteString(c, head)
		done := make(chan struct{})
		go func() {
			io.Copy(c, up)
			c.Close()
			close(done)
		}()
		io.Copy(up, c)
		up.Close()
		<-done
	}
}

// TestConnect2xxHasNoBody: a 2xx answer to CONNECT starts the tunnel
// right after its header, whatever Content-Length or Transfer-Encoding
// say (RFC 9110 §9.3.6).
func TestConnect2xxHasNoBody(t *testing.T) {
	l := newLab(t)
	s := l.server("vendor.reachd.test")
	for name, head := range map[string]string{
		"Content-Length":    "HTTP/1.1 200 Connection established\r\nContent-Length: 5\r\n\r\n",
		"Transfer-Encoding": "HTTP/1.1 200 Connection established\r\nTransfer-Encoding: chunked\r\n\r\n",
		"both":              "HTTP/1.0 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			p := newRawProxy(t, answerThenRelay(head, s.Addr))
			tg := target("vendor.reachd.test", 443, func(t *targets.Target) { t.Timeout = 2 * time.Second })
			r := l.probe(tg, configs.Path{Name: "p", Proxy: p.URL}, l.config())
			assertOutcome(t, r, "", "", "")
		})
	}
}

// TestNotAProxy: a web server at the proxy's address answers CONNECT
// with 400 (nginx) or 405 (Apache, Go): not a denial by a proxy.
func TestNotAProxy(t *testing.T) {
	l := newLab(t)
	tests := []struct {
		name, answer string
		reason       Reason
		detail       string
	}{
		// nginx 1.22.1 as it answered CONNECT on loopback.
		{"nginx", "HTTP/1.1 400 Bad Request\r\nServer: nginx/1.22.1\r\nDate: Tue, 01 Dec 2026 21:44:44 GMT\r\nContent-Type: text/html\r\nContent-Length: 157\r\nConnection: close\r\n\r\n" +
			"<html>\r\n<head><title>400 Bad Request</title></head>\r\n<body>\r\n<center><h1>400 Bad Request</h1></center>\r\n<hr><center>nginx/1.22.1</center>\r\n</body>\r\n</html>\r\n", ProxyError,
			`answered CONNECT with "400 Bad Request", Server "nginx/1.22.1": this address is not an HTTP proxy`},
		// A 405, as web servers answer a method they do not serve.
		{"a web server's 405", "HTTP/1.1 405 Method Not Allowed\r\nServer: Apache/2.4.62 (Debian)\r\nAllow: GET,POST,OPTIONS,HEAD\r\nContent-Length: 0\r\n\r\n", ProxyError,
			`"405 Method Not Allowed", Server "Apache/2.4.62 (Debian)": this address is not an HTTP proxy`},
		{"a proxy that cannot read the request", "HTTP/1.1 400 Bad Request\r\nServer: squid/5.7\r\nX-Squid-Error: ERR_INVALID_REQ 0\r\nContent-Length: 0\r\n\r\n", ProxyError,
			`answered "400 Bad Request" (X-Squid-Error "ERR_INVALID_REQ 0")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := l.probe(target("vendor.reachd.test", 443), configs.Path{Name: "p", Proxy: newRawProxy(t, says(tt.answer)).URL}, l.config())
			assertOutcome(t, r, StageProxy, tt.reason, tt.detail)
			if tt.name == "a proxy that cannot read the request" && strings.Contains(r.Err.Error(), "not an HTTP proxy") {
				t.Errorf("a proxy's own 400 read as no proxy: %v", r.Err)
			}
		})
	}
}

// TestProxyTimeoutMidAnswer: a proxy that stops in the middle of its
// status line or headers is a timeout, never a malformed answer.
func TestProxyTimeoutMidAnswer(t *testing.T) {
	l := newLab(t)
	for _, part := range []string{"HTTP/1.1 20", "HTTP/1.1 200 Connection estab", "HTTP/1.1 200 OK\r\nVia: 1.1 pro"} {
		t.Run(part, func(t *testing.T) {
			p := newRawProxy(t, func(c net.Conn) { io.WriteString(c, part); silent(c) })
			tg := target("vendor.reachd.test", 443, func(t *targets.Target) { t.Timeout = 300 * time.Millisecond })
			r := l.probe(tg, configs.Path{Name: "p", Proxy: p.URL}, l.config())
			assertOutcome(t, r, StageProxy, ProxyTimeout, "reading the answer to CONNECT")
			if strings.Contains(r.Err.Error(), "malformed") {
				t.Errorf("a timeout read as a malformed answer: %v", r.Err)
			}
		})
	}
}

// TestIPv6LiteralThroughProxy: CONNECT [::1]:443 and Host: [::1], both
// with brackets.
func TestIPv6LiteralThroughProxy(t *testing.T) {
	l := newLab(t)
	var host string
	s := probetest.NewTLSServer(t, probetest.Issuer(l.ca), probetest.Hosts("::1"), probetest.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host = r.Host
		io.WriteString(w, "ok")
	})))
	proxy := probetest.NewProxy(t, probetest.Upstream(map[string]string{"[::1]:443": s.Addr}))
	r := l.probe(target("::1", 443), configs.Path{Name: "p", Proxy: proxy.URL}, l.config())
	assertOutcome(t, r, "", "", "")
	if reqs := proxy.Requests(); len(reqs) == 0 || reqs[0].Target != "[::1]:443" {
		t.Errorf("CONNECTs %+v, want [::1]:443", reqs)
	}
	if host != "[::1]" {
		t.Errorf("Host %q, want [::1]", host)
	}
}
