package probe

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/reachd/reachd/configs"
	"github.com/reachd/reachd/probe/probetest"
	"github.com/reachd/reachd/targets"
)

// rawAnswer is a handler that writes raw bytes on the hijacked
// connection, then waits for the client to hang up.
func rawAnswer(raw string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		io.WriteString(c, raw)
		io.Copy(io.Discard, c)
	})
}

// TestHTTPSuccessContract: without expect_status a final status below 500
// proves reachability, interim 1xx answers are skipped, a 5xx fails.
func TestHTTPSuccessContract(t *testing.T) {
	l := newLab(t)
	status := func(code int) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(code) })
	}
	interim := func(codes ...int) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Link", "</app.css>; rel=preload")
			for _, c := range codes {
				w.WriteHeader(c)
			}
			w.Header().Del("Link")
			w.WriteHeader(http.StatusOK)
			io.WriteString(w, "ok")
		})
	}
	tests := []struct {
		name    string
		handler http.Handler
		expect  []int
		reason  Reason
		detail  string
		status  int
	}{
		{"401 is the vendor's API", status(http.StatusUnauthorized), nil, "", "", 401},
		{"403", status(http.StatusForbidden), nil, "", "", 403},
		{"404", status(http.StatusNotFound), nil, "", "", 404},
		{"499", status(499), nil, "", "", 499},
		{"500", status(http.StatusInternalServerError), nil, HTTPStatusUnexpected, `status "500 Internal Server Error": a server error (without expect_status, a status below 500 passes)`, 500},
		{"502", status(http.StatusBadGateway), nil, HTTPStatusUnexpected, `status "502 Bad Gateway": a server error`, 502},
		{"503 expected", status(http.StatusServiceUnavailable), []int{503}, "", "", 503},
		{"103 Early Hints is skipped", interim(http.StatusEarlyHints), nil, "", "", 200},
		{"100 Continue and 103 are skipped", interim(http.StatusContinue, http.StatusEarlyHints), []int{200}, "", "", 200},
		{"100 Continue before a 503", rawAnswer("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"), nil, HTTPStatusUnexpected, `status "503 Service Unavailable"`, 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := probetest.NewTLSServer(t, probetest.Issuer(l.ca), probetest.Hosts("vendor.reachd.test"), probetest.Handler(tt.handler))
			l.dns.Set("vendor.reachd.test", probetest.Entry{A: []string{"127.0.0.1"}})
			tg := target("vendor.reachd.test", s.Port, func(t *targets.Target) { t.HTTP.ExpectStatus = tt.expect })
			r := l.probe(tg, configs.Path{Name: "direct"}, l.config())
			stage := StageHTTP
			if tt.reason == "" {
				stage = ""
			}
			assertOutcome(t, r, stage, tt.reason, tt.detail)
			if r.HTTP == nil || r.HTTP.Status != tt.status {
				t.Errorf("http %+v, want status %d", r.HTTP, tt.status)
			}
		})
	}
}

// TestTransparentFilterBlockPage: on a direct path, a page that a
// transparent filter produced itself is a block, whatever its status.
func TestTransparentFilterBlockPage(t *testing.T) {
	l := newLab(t)
	tests := []struct {
		name, raw string
		detail    string
	}{
		{"squid intercepting port 80", "HTTP/1.1 403 Forbidden\r\nServer: squid/5.7\r\nX-Squid-Error: ERR_ACCESS_DENIED 0\r\nVia: 1.1 fw (squid/5.7)\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
			`"403 Forbidden" came from a filter on the way, not from the server (X-Squid-Error "ERR_ACCESS_DENIED 0")`},
		{"an RFC 9209 gateway", "HTTP/1.1 403 Forbidden\r\nProxy-Status: swg.corp.example; error=http_request_denied; details=\"category, malware\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
			`(Proxy-Status "swg.corp.example; error=http_request_denied; details=\"category, malware\"")`},
		{"a block page served with 200", "HTTP/1.1 200 OK\r\nProxy-Status: fw.corp.example; error=destination_ip_prohibited\r\nContent-Length: 7\r\nConnection: close\r\n\r\nblocked",
			`"200 OK" came from a filter on the way`},
		{"mitmproxy in transparent mode", mitmVerifyFailed,
			`"502 Bad Gateway" came from a filter on the way, not from the server (Server "mitmproxy 8.1.1"): "Certificate verify failed: self-signed certificate"`},
	}
	for _, tt := range tests {
		t.Run(tt.name+" over TLS", func(t *testing.T) {
			s := probetest.NewTLSServer(t, probetest.Issuer(l.ca), probetest.Hosts("vendor.reachd.test"), probetest.Handler(rawAnswer(tt.raw)))
			l.dns.Set("vendor.reachd.test", probetest.Entry{A: []string{"127.0.0.1"}})
			r := l.probe(target("vendor.reachd.test", s.Port), configs.Path{Name: "direct"}, l.config())
			assertOutcome(t, r, StageHTTP, HTTPBlocked, tt.detail)
		})
		t.Run(tt.name+" over plain HTTP", func(t *testing.T) {
			s := probetest.NewHTTPServer(t, rawAnswer(tt.raw))
			l.dns.Set("crl.reachd.test", probetest.Entry{A: []string{"127.0.0.1"}})
			tg := target("crl.reachd.test", s.Port, func(t *targets.Target) { t.Checks = []string{"dns", "tcp", "http"} })
			r := l.probe(tg, configs.Path{Name: "direct"}, l.config())
			assertOutcome(t, r, StageHTTP, HTTPBlocked, tt.detail)
		})
	}
	// The vendor's own Server header and a Proxy-Status without an error
	// (a CDN reporting its cache) are the vendor's answer.
	t.Run("a CDN's Proxy-Status without an error", func(t *testing.T) {
		s := probetest.NewTLSServer(t, probetest.Issuer(l.ca), probetest.Hosts("vendor.reachd.test"), probetest.Handler(
			rawAnswer("HTTP/1.1 404 Not Found\r\nServer: squid\r\nProxy-Status: cdn.example; fwd=miss\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")))
		l.dns.Set("vendor.reachd.test", probetest.Entry{A: []string{"127.0.0.1"}})
		assertOutcome(t, l.probe(target("vendor.reachd.test", s.Port), configs.Path{Name: "direct"}, l.config()), "", "", "")
	})
}

// TestHTTPTimeoutMidAnswer: a server that stops in the middle of its
// status line or headers is a timeout, never a malformed answer.
func TestHTTPTimeoutMidAnswer(t *testing.T) {
	l := newLab(t)
	for _, part := range []string{"HTTP/1.1 20", "HTTP/1.1 200 O", "HTTP/1.1 200 OK\r\nDate: Tue, 01 Dec"} {
		t.Run(part, func(t *testing.T) {
			s := probetest.NewTLSServer(t, probetest.Issuer(l.ca), probetest.Hosts("vendor.reachd.test"), probetest.Handler(rawAnswer(part)))
			l.dns.Set("vendor.reachd.test", probetest.Entry{A: []string{"127.0.0.1"}})
			tg := target("vendor.reachd.test", s.Port, func(t *targets.Target) { t.Timeout = 500 * time.Millisecond })
			r := l.probe(tg, configs.Path{Name: "direct"}, l.config())
			assertOutcome(t, r, StageHTTP, HTTPTimeout, "i/o timeout")
			if strings.Contains(r.Err.Error(), "malformed") {
				t.Errorf("a timeout read as a malformed answer: %v", r.Err)
			}
		})
	}
}
