package configs

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

var pathNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

func (l *loader) paths(s *spec) []Path {
	var out []Path
	if s.Direct == nil || *s.Direct {
		out = append(out, Path{Name: DirectPath})
	}
	seen := map[string]bool{DirectPath: true}
	for i, ps := range s.Path {
		key := fmt.Sprintf("path.%d", i)
		switch {
		case ps.Name == "":
			l.bad(key, "path.name", "missing")
		case ps.Name == DirectPath:
			l.bad(key+".name", "path.name", "%q is the implicit path without a proxy; set direct = false at the top level to drop it", DirectPath)
		case !pathNameRE.MatchString(ps.Name):
			l.bad(key+".name", "path.name", "%q must be a-z, 0-9, _ and -", ps.Name)
		case seen[ps.Name]:
			l.bad(key+".name", "path.name", "%q is defined twice", ps.Name)
		}
		seen[ps.Name] = true
		out = append(out, l.path(key, ps))
	}
	if len(out) == 0 {
		l.bad("direct", "direct", "direct = false and no [[path]]: nothing to probe over")
	}
	return out
}

func (l *loader) path(key string, ps pathSpec) Path {
	p := Path{Name: ps.Name, Username: ps.Username, CAFile: l.file(ps.CAFile)}
	switch ps.Proxy {
	case "":
		l.bad(key, "path.proxy", "missing: an http:// or https:// proxy URL, \"environment\", \"pac\" or \"wpad\"")
	case "pac", "wpad":
		p.PAC = l.pac(key, ps)
	case "environment":
		p.Environment = true
		p.ProxyEnv = ProxyEnv{HTTPSProxy: l.env("HTTPS_PROXY"), HTTPProxy: l.env("HTTP_PROXY"), NoProxy: l.env("NO_PROXY")}
		// httpproxy ignores a proxy it cannot parse and sends every target
		// direct, and hands a socks5:// one to code that speaks HTTP to it;
		// say so at load instead.
		for _, e := range []struct{ name, v string }{{"HTTPS_PROXY", p.ProxyEnv.HTTPSProxy}, {"HTTP_PROXY", p.ProxyEnv.HTTPProxy}} {
			if e.v == "" {
				continue
			}
			if err := envProxyProblem(e.v); err != nil {
				l.bad(key+".proxy", "path.proxy", "environment: %s %v", e.name, err)
			}
		}
		if p.ProxyEnv.HTTPSProxy == "" && p.ProxyEnv.HTTPProxy == "" {
			l.warn = append(l.warn, fmt.Sprintf("%s: path %q: proxy = \"environment\", but neither HTTPS_PROXY nor HTTP_PROXY (nor https_proxy, http_proxy) is set: every target on this path goes direct",
				l.ix.At(l.name, key+".proxy"), ps.Name))
		}
	default:
		u, err := url.Parse(ps.Proxy)
		switch {
		case err != nil || u.Host == "":
			l.bad(key+".proxy", "path.proxy", "not a proxy URL such as http://proxy.example:8080")
		case u.Scheme != "http" && u.Scheme != "https":
			l.bad(key+".proxy", "path.proxy", "scheme %q: use http:// or https://", u.Scheme)
		case badPort(u.Port()):
			l.bad(key+".proxy", "path.proxy", "%s: port %s out of range 1-65535", u.Redacted(), u.Port())
		case u.User != nil:
			l.bad(key+".proxy", "path.proxy", "%s carries credentials: use username and password_file or password_env", u.Redacted())
		case u.Path != "" && u.Path != "/" || u.RawQuery != "":
			l.bad(key+".proxy", "path.proxy", "%s: a proxy URL has no path or query", u.Redacted())
		default:
			if u.Port() == "" {
				u.Host = net.JoinHostPort(u.Hostname(), map[string]string{"http": "80", "https": "443"}[u.Scheme])
			}
			u.Path = ""
			p.Proxy = u
		}
	}

	if ps.Proxy != "pac" {
		l.pacKeysUnused(key, ps)
	}
	if ps.Password != "" {
		l.bad(key+".password", "path.password", "passwords are never written inline: use password_file or password_env")
	}
	switch {
	case ps.PasswordFile != "" && ps.PasswordEnv != "":
		l.bad(key+".password_env", "path.password_env", "set password_file or password_env, not both")
	case l.opts.SkipSecrets:
	case ps.PasswordFile != "":
		file := l.file(ps.PasswordFile)
		data, mode, err := l.readFile(file)
		switch {
		case err != nil:
			l.bad(key+".password_file", "path.password_file", "%v", err)
		case strings.TrimSpace(string(data)) == "":
			l.bad(key+".password_file", "path.password_file", "%s is empty", file)
		}
		p.Password = strings.TrimSpace(string(data))
		if err == nil && mode.Perm()&0o077 != 0 {
			l.warn = append(l.warn, fmt.Sprintf("%s: path.password_file: %s can be read by group or others (mode %04o): chmod 600 it",
				l.ix.At(l.name, key+".password_file"), file, mode.Perm()))
		}
	case ps.PasswordEnv != "":
		v, ok := l.opts.LookupEnv(ps.PasswordEnv)
		if !ok {
			l.bad(key+".password_env", "path.password_env", "environment variable %q is not set", ps.PasswordEnv)
		}
		p.Password = v
	}
	if p.Password != "" && p.Username == "" {
		l.bad(key, "path.username", "missing: a password is set without a username")
	}
	l.auth(key, ps, &p)
	// Basic authentication sends user:password; a ':' in the user name
	// would move the split.
	if p.Auth == AuthBasic && strings.Contains(p.Username, ":") {
		l.bad(key+".username", "path.username", "%q holds a ':', which Basic authentication cannot carry", p.Username)
	}
	if ps.CAFile != "" {
		certs, err := l.readCerts(p.CAFile)
		if err != nil {
			l.bad(key+".ca_file", "path.ca_file", "%v", err)
		}
		p.CACerts = certs
	}
	return p
}

// auth validates the path's proxy authentication and its key material.
func (l *loader) auth(key string, ps pathSpec, p *Path) {
	p.Auth = ps.Auth
	if p.Auth == "" && p.Username != "" {
		p.Auth = AuthBasic
	}
	switch ps.Auth {
	case "", AuthBasic, AuthNTLM:
		if ps.Auth != "" && (p.Username == "" || p.Password == "") {
			l.bad(key+".auth", "path.auth", "%q needs username and password_file or password_env", ps.Auth)
		}
		for _, kv := range [][2]string{{"keytab", ps.Keytab}, {"principal", ps.Principal}, {"krb5_conf", ps.Krb5Conf}, {"ccache", ps.CCache}} {
			if kv[1] != "" {
				l.bad(key+"."+kv[0], "path."+kv[0], "only for auth = \"negotiate\"")
			}
		}
	case AuthNegotiate:
		p.Keytab, p.Principal, p.Krb5Conf, p.CCache = l.file(ps.Keytab), ps.Principal, l.file(ps.Krb5Conf), l.file(ps.CCache)
		switch {
		case ps.Keytab != "" && ps.CCache != "":
			l.bad(key+".ccache", "path.ccache", "set keytab or ccache, not both")
		case ps.Keytab != "" && ps.Principal == "":
			l.bad(key+".keytab", "path.principal", "missing: the principal (user@REALM) to log in as with the keytab")
		case ps.Keytab == "" && ps.CCache == "" && (p.Username == "" || p.Password == ""):
			l.bad(key+".auth", "path.auth", "\"negotiate\" needs Kerberos key material: keytab and principal, ccache, or username and password_file")
		}
		for _, kf := range [][2]string{{"keytab", p.Keytab}, {"krb5_conf", p.Krb5Conf}, {"ccache", p.CCache}} {
			if kf[1] == "" {
				continue
			}
			if _, err := os.Stat(kf[1]); err != nil {
				l.bad(key+"."+kf[0], "path."+kf[0], "%v", err)
			}
		}
	default:
		l.bad(key+".auth", "path.auth", "%q: use basic, ntlm or negotiate", ps.Auth)
	}
}

// env reads a proxy variable as httpproxy.FromEnvironment does: the
// upper-case name, then the lower-case one, the first that is not empty.
func (l *loader) env(key string) string {
	for _, k := range []string{key, strings.ToLower(key)} {
		if v, _ := l.opts.LookupEnv(k); v != "" {
			return v
		}
	}
	return ""
}

// readFile reads a file the config names, giving up after
// Options.FileTimeout: a password file on a hung mount (or a FIFO nobody
// writes) fails the load with a named error instead of blocking it. The
// read itself goes on in the background until the file answers.
func (l *loader) readFile(file string) ([]byte, os.FileMode, error) {
	type result struct {
		data []byte
		mode os.FileMode
		err  error
	}
	done := make(chan result, 1)
	go func() {
		data, err := os.ReadFile(file)
		var mode os.FileMode
		if err == nil {
			if fi, serr := os.Stat(file); serr == nil {
				mode = fi.Mode()
			}
		}
		done <- result{data, mode, err}
	}()
	timer := time.NewTimer(l.opts.FileTimeout)
	defer timer.Stop()
	select {
	case r := <-done:
		return r.data, r.mode, r.err
	case <-timer.C:
		return nil, 0, fmt.Errorf("reading %s timed out after %s (a hung network mount, or a FIFO nobody writes?)", file, l.opts.FileTimeout)
	}
}

// readCerts reads every certificate of a PEM file.
func (l *loader) readCerts(file string) ([]*x509.Certificate, error) {
	data, _, err := l.readFile(file)
	if err != nil {
		return nil, err
	}
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no PEM certificate found", file)
	}
	return out, nil
}

// systemServers returns a resolv.conf file (for its search list and
// ndots) and its name servers.
func systemServers(resolvConf string) (*dns.ClientConfig, []string, error) {
	cc, err := dns.ClientConfigFromFile(resolvConf)
	if err != nil {
		return nil, nil, err
	}
	if len(cc.Servers) == 0 {
		return cc, nil, fmt.Errorf("%s lists no nameserver", resolvConf)
	}
	out := make([]string, len(cc.Servers))
	for i, s := range cc.Servers {
		out[i] = net.JoinHostPort(s, cc.Port)
	}
	return cc, out, nil
}

// serverAddr accepts "IP", "IP:port" and "[v6]:port"; port 53 by default.
// A name is refused: resolving the resolver would need a resolver.
func serverAddr(s string) (string, error) {
	host, port := strings.Trim(s, "[]"), "53"
	if h, p, err := net.SplitHostPort(s); err == nil {
		host, port = h, p
	}
	if _, err := netip.ParseAddr(host); err != nil {
		return "", fmt.Errorf("%q is not an IP address or IP:port", s)
	}
	if badPort(port) {
		return "", fmt.Errorf("%q: port %q out of range 1-65535", s, port)
	}
	return net.JoinHostPort(host, port), nil
}

// badPort reports whether a URL's or an address's port, when given, is not
// a number from 1 to 65535.
func badPort(port string) bool {
	if port == "" {
		return false
	}
	n, err := strconv.Atoi(port)
	return err != nil || n < 1 || n > 65535
}

// envProxyProblem says what is wrong with a proxy variable's value, parsed
// as httpproxy parses it (a bare host[:port] is http://), or nil.
func envProxyProblem(v string) error {
	u, err := url.Parse(v)
	if err != nil || u.Scheme == "" || u.Host == "" {
		if u, err = url.Parse("http://" + v); err != nil || u.Host == "" {
			return fmt.Errorf("is not a proxy URL")
		}
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%s: scheme %q: reachd speaks to http:// and https:// proxies only", u.Redacted(), u.Scheme)
	case badPort(u.Port()):
		return fmt.Errorf("%s: port %s out of range 1-65535", u.Redacted(), u.Port())
	}
	return nil
}
