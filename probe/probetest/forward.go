package probetest

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// SquidErrors makes the answers the proxy makes itself to forwarded
// (absolute-form) requests carry squid's X-Squid-Error header, as squid's
// own error pages do: ERR_CACHE_ACCESS_DENIED 0 with a 407,
// ERR_ACCESS_DENIED 0 with a Status 4xx, ERR_DNS_FAIL 0 for a target it
// will not reach (502), ERR_CONNECT_FAIL 111 for a failed dial (503).
// Answers to CONNECT are unchanged.
func SquidErrors() ProxyOption {
	return func(o *proxyOptions) { o.squid = true }
}

// forward serves an absolute-form request, as proxies serve plain HTTP:
// the same authentication and Status answers as CONNECT, then the request
// in origin form to the upstream (Upstream, or a loopback IP literal; the
// port defaults to 80) and the upstream's answer back as it came.
func (p *Proxy) forward(c net.Conn, req *http.Request) {
	target := req.URL.Host
	if req.URL.Port() == "" {
		target = net.JoinHostPort(req.URL.Hostname(), "80")
	}
	p.mu.Lock()
	p.requests = append(p.requests, ConnectRequest{Target: target, ProxyAuthorization: req.Header.Get("Proxy-Authorization"), Method: req.Method, URI: req.RequestURI})
	p.mu.Unlock()

	if !p.authorized(req.Header.Get("Proxy-Authorization")) {
		p.writeOwn(c, http.StatusProxyAuthRequired, p.challenges(), "ERR_CACHE_ACCESS_DENIED 0")
		return
	}
	if code := p.opts.status; code != 0 {
		mark := "ERR_ACCESS_DENIED 0"
		if code >= 500 {
			mark = "ERR_CONNECT_FAIL 111"
		}
		p.writeOwn(c, code, nil, mark)
		return
	}
	addr, ok := p.resolve(target)
	if !ok {
		p.writeOwn(c, http.StatusBadGateway, nil, "ERR_DNS_FAIL 0")
		return
	}
	up, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		p.writeOwn(c, http.StatusServiceUnavailable, nil, "ERR_CONNECT_FAIL 111")
		return
	}
	if !p.track(up) {
		return
	}
	defer p.untrack(up)
	req.RequestURI = ""
	req.Header.Del("Proxy-Authorization")
	req.Close = true
	if err := req.Write(up); err != nil {
		return
	}
	_, _ = io.Copy(c, up)
}

// writeOwn writes an answer the proxy made itself, with squid's mark
// under SquidErrors.
func (p *Proxy) writeOwn(w io.Writer, code int, challenges []string, squid string) {
	var b strings.Builder
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\n", code, http.StatusText(code))
	for _, c := range challenges {
		fmt.Fprintf(&b, "Proxy-Authenticate: %s\r\n", c)
	}
	if p.opts.squid {
		fmt.Fprintf(&b, "X-Squid-Error: %s\r\n", squid)
	}
	b.WriteString("Content-Length: 0\r\nConnection: close\r\n\r\n")
	_, _ = io.WriteString(w, b.String())
}
