package pac

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Kind is the type of one entry of a FindProxyForURL answer.
type Kind int

// The kinds of answer entries.
const (
	Direct Kind = iota // DIRECT
	HTTP               // PROXY host:port (or HTTP host:port)
	HTTPS              // HTTPS host:port: a TLS connection to the proxy
	SOCKS              // SOCKS, SOCKS4, SOCKS5: named, but not probed
)

// Proxy is one entry of a FindProxyForURL answer, in the order given.
type Proxy struct {
	Kind Kind
	// Keyword is the entry's type as the script wrote it, upper-cased
	// ("PROXY", "SOCKS5"); Addr is host:port, empty for DIRECT.
	Keyword string
	Addr    string
}

// String renders the entry as a PAC answer does: "PROXY a:8080", "DIRECT".
func (p Proxy) String() string {
	if p.Kind == Direct {
		return "DIRECT"
	}
	return p.Keyword + " " + p.Addr
}

// URL is the proxy URL the entry names: http:// for PROXY and HTTP,
// https:// for HTTPS; nil for DIRECT and SOCKS, which are not HTTP proxies.
func (p Proxy) URL() *url.URL {
	switch p.Kind {
	case HTTP:
		return &url.URL{Scheme: "http", Host: p.Addr}
	case HTTPS:
		return &url.URL{Scheme: "https", Host: p.Addr}
	}
	return nil
}

// MaxAnswer bounds the answer string a script may return.
const MaxAnswer = 4096

// ParseAnswer parses what FindProxyForURL returned: entries separated by
// ";", each DIRECT or a keyword and host[:port] (PROXY and HTTP default to
// port 80, HTTPS to 443, SOCKS to 1080). An entry that is none of these
// is an error naming it, and so is an answer without entries: reachd
// reports a broken answer instead of guessing what an agent would do.
func ParseAnswer(s string) ([]Proxy, error) {
	if len(s) > MaxAnswer {
		return nil, fmt.Errorf("the answer is %d bytes long (at most %d)", len(s), MaxAnswer)
	}
	var out []Proxy
	for i, entry := range strings.Split(s, ";") {
		fields := strings.Fields(entry)
		if len(fields) == 0 {
			continue
		}
		p, err := parseEntry(fields)
		if err != nil {
			return nil, fmt.Errorf("entry %d %q: %w", i+1, strings.TrimSpace(entry), err)
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("the answer %q has no entry (DIRECT or PROXY host:port)", s)
	}
	return out, nil
}

func parseEntry(fields []string) (Proxy, error) {
	kw := strings.ToUpper(fields[0])
	var p Proxy
	var port string
	switch kw {
	case "DIRECT":
		if len(fields) != 1 {
			return p, fmt.Errorf("DIRECT takes no address")
		}
		return Proxy{Kind: Direct, Keyword: kw}, nil
	case "PROXY", "HTTP":
		p, port = Proxy{Kind: HTTP, Keyword: kw}, "80"
	case "HTTPS":
		p, port = Proxy{Kind: HTTPS, Keyword: kw}, "443"
	case "SOCKS", "SOCKS4", "SOCKS5":
		p, port = Proxy{Kind: SOCKS, Keyword: kw}, "1080"
	default:
		return p, fmt.Errorf("unknown type %q (DIRECT, PROXY, HTTP, HTTPS, SOCKS)", fields[0])
	}
	if len(fields) != 2 {
		return p, fmt.Errorf("%s takes one host:port", kw)
	}
	addr, err := hostPort(fields[1], port)
	if err != nil {
		return p, err
	}
	p.Addr = addr
	return p, nil
}

// hostPort checks host[:port] and adds the default port.
func hostPort(s, defPort string) (string, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		host, port = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"), defPort
		if strings.Contains(host, ":") && net.ParseIP(host) == nil {
			return "", fmt.Errorf("%q is not a host:port", s)
		}
	}
	if host == "" || strings.ContainsAny(host, "/@?#[] ") {
		return "", fmt.Errorf("%q is not a host:port", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("%q: port %q out of range", s, port)
	}
	return net.JoinHostPort(host, port), nil
}
