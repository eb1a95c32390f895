package probe

import (
	"errors"
	"fmt"
	"html"
	"net/http"
	"regexp"
	"strings"
)

// Proxies answer in many dialects; this file reads them by meaning. The
// answers below were read from the real proxies (the tests quote them):
//
//   - squid 5.7 names its error page in X-Squid-Error: ERR_ACCESS_DENIED
//     (403), ERR_CONNECT_FAIL 111 (503), ERR_DNS_FAIL (503) or, for a name
//     that does not resolve, ERR_CANNOT_FORWARD (500), and
//     ERR_SECURE_CONNECT_FAIL (503) with "(TLS code: X509_V_ERR_...)" in
//     the page when the origin's certificate does not verify. With
//     ssl-bump it answers CONNECT 200 and serves these pages inside the
//     tunnel.
//   - tinyproxy 1.11.1 answers wrong Basic credentials with "401
//     Unauthorized" and WWW-Authenticate (none at all: 407), and a dead or
//     unresolvable upstream with "500 Unable to connect".
//   - mitmproxy 8.1.1 answers a CONNECT it cannot connect with 502 and a
//     text body "Cannot connect to host:port: ..."; behind a CONNECT 200 it
//     serves its own pages with "Server: mitmproxy 8.1.1", such as 502 with
//     "<p>Certificate verify failed: self-signed certificate</p>".
//   - RFC 9209 proxies say it in Proxy-Status: `name; error=dns_error`.

// answerVerdict classifies an answer that the proxy produced itself and
// that is not a tunnel or a relayed response: a non-2xx answer to
// CONNECT, or an error page found inside a tunnel or in answer to a
// forwarded GET (producedByProxy tells). quote is what the proxy said
// beyond its status line, if anything. toConnect is set for an answer to
// CONNECT, where a 400 or 405 without any mark of a proxy is a web
// server at the proxy's address.
func (pd *proxyDialer) answerVerdict(resp *http.Response, quote string, toConnect bool) *Error {
	detail := pd.answered(resp, quote, toConnect)
	code := resp.StatusCode
	switch {
	case code == http.StatusProxyAuthRequired:
		return pd.authVerdict(resp, "Proxy-Authenticate", "407")
	case code == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") != "" && toConnect:
		// tinyproxy's answer to wrong credentials.
		return pd.authVerdict(resp, "WWW-Authenticate", "401")
	}
	if r, ok := squidReasons[squidError(resp)]; ok {
		return fail(r, detail)
	}
	if r, ok := proxyStatusReason(resp); ok {
		return fail(r, detail)
	}
	switch {
	case code == http.StatusBadGateway || code == http.StatusServiceUnavailable || code == http.StatusGatewayTimeout:
		return fail(ProxyUpstreamFailed, detail)
	case code == http.StatusInternalServerError && strings.HasPrefix(resp.Header.Get("Server"), "tinyproxy/") &&
		strings.EqualFold(strings.TrimPrefix(resp.Status, "500 "), "Unable to connect"):
		return fail(ProxyUpstreamFailed, detail)
	case (code == http.StatusBadRequest || code == http.StatusMethodNotAllowed) && toConnect:
		if !proxyMarked(resp) {
			return fail(ProxyError, notAProxy(pd.display, resp))
		}
		return fail(ProxyError, detail) // a proxy that cannot read the request
	case code >= 400 && code < 500:
		return fail(ProxyDenied, detail)
	}
	return fail(ProxyError, detail)
}

// answered is the detail of a proxy's answer: the status, where it came,
// the proxy's own name for it and what it said.
func (pd *proxyDialer) answered(resp *http.Response, quote string, toConnect bool) error {
	var b strings.Builder
	fmt.Fprintf(&b, "proxy %s answered %q", pd.display, resp.Status)
	if !toConnect {
		if pd.forwarding {
			b.WriteString(" itself, to the forwarded GET")
		} else {
			b.WriteString(" itself, inside the tunnel")
		}
	}
	if marks := proxyMarks(resp); marks != "" {
		fmt.Fprintf(&b, " (%s)", marks)
	}
	if quote != "" {
		fmt.Fprintf(&b, ": %q", quote)
	}
	if originTLS(resp, quote) {
		b.WriteString(": the proxy's own TLS connection to the origin failed (the origin's certificate or TLS settings, as the proxy judges them)")
	}
	return errors.New(b.String())
}

// originTLS reports whether a proxy says that its TLS to the origin
// failed: squid's ERR_SECURE_CONNECT_FAIL, a Proxy-Status tls_* error,
// mitmproxy's "Certificate verify failed".
func originTLS(resp *http.Response, quote string) bool {
	e, _ := proxyStatusError(resp)
	return squidError(resp) == "ERR_SECURE_CONNECT_FAIL" || strings.HasPrefix(e, "tls_") ||
		strings.Contains(quote, "Certificate verify failed") || strings.Contains(quote, "TLS handshake failed")
}

// notAProxy is the detail for a web server at the proxy's address.
func notAProxy(display string, resp *http.Response) error {
	server := ""
	if s := resp.Header.Get("Server"); s != "" {
		server = fmt.Sprintf(", Server %q", clip(s, 64))
	}
	return fmt.Errorf("proxy %s answered CONNECT with %q%s: this address is not an HTTP proxy (a web server?); check the proxy address and port", display, resp.Status, server)
}

func (pd *proxyDialer) authVerdict(resp *http.Response, header, code string) *Error {
	var schemes []string
	for _, v := range resp.Header.Values(header) {
		if s, _, _ := strings.Cut(strings.TrimSpace(v), " "); s != "" {
			schemes = append(schemes, s)
		}
	}
	offered := "no scheme"
	if len(schemes) > 0 {
		offered = strings.Join(schemes, ", ")
	}
	if pd.authSent {
		return fail(ProxyAuthRejected, fmt.Errorf("proxy %s rejected the configured credentials (%s; offers %s)", pd.display, code, offered))
	}
	return fail(ProxyAuthRequired, fmt.Errorf("proxy %s demands credentials (%s; offers %s) and the path has none", pd.display, code, offered))
}

// squidReasons maps the error pages squid names in X-Squid-Error.
var squidReasons = map[string]Reason{
	"ERR_ACCESS_DENIED":       ProxyDenied,
	"ERR_FORWARDING_DENIED":   ProxyDenied,
	"ERR_TOO_BIG":             ProxyDenied,
	"ERR_CONNECT_FAIL":        ProxyUpstreamFailed,
	"ERR_DNS_FAIL":            ProxyUpstreamFailed,
	"ERR_CANNOT_FORWARD":      ProxyUpstreamFailed,
	"ERR_SECURE_CONNECT_FAIL": ProxyUpstreamFailed,
	"ERR_READ_TIMEOUT":        ProxyUpstreamFailed,
	"ERR_LIFETIME_EXP":        ProxyUpstreamFailed,
	"ERR_READ_ERROR":          ProxyUpstreamFailed,
	"ERR_WRITE_ERROR":         ProxyUpstreamFailed,
	"ERR_ZERO_SIZE_OBJECT":    ProxyUpstreamFailed,
	"ERR_GATEWAY_FAILURE":     ProxyUpstreamFailed,
}

// squidError is the error page squid names, without its errno.
func squidError(resp *http.Response) string {
	name, _, _ := strings.Cut(strings.TrimSpace(resp.Header.Get("X-Squid-Error")), " ")
	return name
}

// proxyStatusReasons maps the error types of RFC 9209 §2.3; those not
// here (proxy_internal_response, for one) are judged by the status.
var proxyStatusReasons = map[string]Reason{
	"http_request_denied":       ProxyDenied,
	"destination_ip_prohibited": ProxyDenied,
	"proxy_internal_error":      ProxyError,
	"proxy_configuration_error": ProxyError,
	"proxy_loop_detected":       ProxyError,
}

// proxyStatusReason is the reason a Proxy-Status error names: a denial,
// a failure of the proxy itself, or (dns_*, destination_*,
// connection_*, tls_*, http_response_*) of the way to the origin.
func proxyStatusReason(resp *http.Response) (Reason, bool) {
	e, _ := proxyStatusError(resp)
	if e == "" {
		return "", false
	}
	if r, ok := proxyStatusReasons[e]; ok {
		return r, true
	}
	for _, p := range []string{"dns_", "destination_", "connection_", "tls_", "http_response_", "http_upgrade_failed", "http_protocol_error"} {
		if strings.HasPrefix(e, p) {
			return ProxyUpstreamFailed, true
		}
	}
	return "", false
}

// proxyStatusError is the error type of the first Proxy-Status member
// that has one, and that member as sent.
func proxyStatusError(resp *http.Response) (string, string) {
	for _, v := range resp.Header.Values("Proxy-Status") {
		for _, member := range splitOutsideQuotes(v, ',') {
			for _, param := range splitOutsideQuotes(member, ';')[1:] {
				k, val, _ := strings.Cut(strings.TrimSpace(param), "=")
				if k == "error" && val != "" {
					return strings.Trim(val, `"`), strings.TrimSpace(member)
				}
			}
		}
	}
	return "", ""
}

// splitOutsideQuotes splits s at sep where sep is not inside a quoted
// string (a Structured Field's sf-string).
func splitOutsideQuotes(s string, sep byte) []string {
	var out []string
	quoted, escaped, start := false, false, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case escaped:
			escaped = false
		case c == '\\' && quoted:
			escaped = true
		case c == '"':
			quoted = !quoted
		case c == sep && !quoted:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// producedByProxy reports whether an answer read inside a tunnel, or
// returned to a forwarded request, is a page a proxy or filter produced
// itself rather than the origin's answer: squid's X-Squid-Error, a
// Proxy-Status that names an error, or the Server header of mitmproxy or
// tinyproxy on an error status (both relay the origin's own Server).
func producedByProxy(resp *http.Response) bool {
	if resp.Header.Get("X-Squid-Error") != "" {
		return true
	}
	if e, _ := proxyStatusError(resp); e != "" {
		return true
	}
	server := resp.Header.Get("Server")
	return resp.StatusCode >= 400 && (strings.HasPrefix(server, "mitmproxy ") || strings.HasPrefix(server, "tinyproxy/"))
}

// proxyMarked reports whether an answer carries any mark of a proxy.
func proxyMarked(resp *http.Response) bool {
	return producedByProxy(resp) || resp.Header.Get("Proxy-Authenticate") != "" || resp.Header.Get("Via") != "" ||
		resp.Header.Get("Proxy-Status") != ""
}

// proxyMarks quotes the marks an answer carries: the proxy's own name for
// its error, for the detail.
func proxyMarks(resp *http.Response) string {
	var marks []string
	if e := resp.Header.Get("X-Squid-Error"); e != "" {
		marks = append(marks, fmt.Sprintf("X-Squid-Error %q", clip(e, 64)))
	}
	if _, member := proxyStatusError(resp); member != "" {
		marks = append(marks, fmt.Sprintf("Proxy-Status %q", clip(member, 160)))
	}
	if s := resp.Header.Get("Server"); strings.HasPrefix(s, "mitmproxy ") || strings.HasPrefix(s, "tinyproxy/") {
		marks = append(marks, fmt.Sprintf("Server %q", clip(s, 64)))
	}
	return strings.Join(marks, ", ")
}

// The parts of error pages that name the origin's TLS problem: squid's
// "(TLS code: X509_V_ERR_...)" and the paragraph of mitmproxy's page.
var (
	squidTLSCode   = regexp.MustCompile(`TLS code: ([A-Za-z0-9_+=]+)`)
	squidTLSDetail = regexp.MustCompile(`(?s)<p>(SSL Certificate error:[^<]*)</p>`)
	mitmParagraph  = regexp.MustCompile(`(?s)<p>([^<]{1,300})</p>`)
)

// pageQuote is what an error page a proxy produced says about the failure,
// from its body (the first MaxBody bytes), or "".
func pageQuote(resp *http.Response, body []byte) string {
	if squidError(resp) != "" {
		var parts []string
		if m := squidTLSCode.FindSubmatch(body); m != nil && string(m[1]) != "0" {
			parts = append(parts, "TLS code: "+string(m[1]))
		}
		if m := squidTLSDetail.FindSubmatch(body); m != nil {
			parts = append(parts, strings.Join(strings.Fields(string(m[1])), " "))
		}
		return strings.Join(parts, "; ")
	}
	if strings.HasPrefix(resp.Header.Get("Server"), "mitmproxy ") {
		if m := mitmParagraph.FindSubmatch(body); m != nil {
			return clip(strings.Join(strings.Fields(html.UnescapeString(string(m[1]))), " "), 300)
		}
	}
	return ""
}

// clip cuts s to at most n bytes.
func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
