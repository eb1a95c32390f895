package probe

import (
	"bufio"
	"crypto/x509"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/reachd/reachd/configs"
	"github.com/reachd/reachd/probe/probetest"
	"github.com/reachd/reachd/targets"
)

// rawProxy is a listener on 127.0.0.1 that reads one request per
// connection and then hands the connection to answer: for proxies that
// misbehave in ways probetest.Proxy does not (silence, garbage).
type rawProxy struct {
	URL *url.URL
	ln  net.Listener

	mu    sync.Mutex
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

func newRawProxy(t *testing.T, answer func(net.Conn)) *rawProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &rawProxy{URL: &url.URL{Scheme: "http", Host: ln.Addr().String()}, ln: ln, conns: map[net.Conn]bool{}}
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.conns[c] = true
			p.mu.Unlock()
			p.wg.Go(func() {
				defer c.Close()
				if _, err := http.ReadRequest(bufio.NewReader(c)); err == nil {
					answer(c)
				}
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

// silent holds the connection open without a word until the client or
// the test closes it.
func silent(c net.Conn) { io.Copy(io.Discard, c) }

// says writes s and closes the connection.
func says(s string) func(net.Conn) {
	return func(c net.Conn) { io.WriteString(c, s) }
}

// TestProxyReasons produces each proxy reason of DESIGN §6 in the ways
// TestProbeThroughProxy does not: every reason has at least one case
// between the two tests.
func TestProxyReasons(t *testing.T) {
	l := newLab(t)
	s := l.server("vendor.reachd.test")
	closed := "127.0.0.1:" + strconv.Itoa(closedPort(t))
	status := func(code int) *url.URL { return probetest.NewProxy(t, probetest.Status(code)).URL }
	refusing := probetest.NewProxy(t, probetest.Upstream(map[string]string{"vendor.reachd.test:443": closed}))
	negotiateOnly := probetest.NewProxy(t, probetest.AuthSchemes("NTLM", "Negotiate"))
	basicOnly := probetest.NewProxy(t, probetest.BasicAuth("svc", "pw"))
	mute := newRawProxy(t, silent)
	garbage := newRawProxy(t, says("SSH-2.0-OpenSSH_9.2p1\r\n"))
	hangup := newRawProxy(t, says(""))
	squidDNS := newRawProxy(t, says("HTTP/1.1 503 Service Unavailable\r\nServer: squid/5.7\r\nX-Squid-Error: ERR_DNS_FAIL 0\r\nContent-Length: 0\r\n\r\n"))
	proxyCA := probetest.NewCA(t, "Proxy Listener CA")
	httpsProxy := probetest.NewProxy(t, probetest.ProxyTLS(proxyCA),
		probetest.Upstream(map[string]string{"vendor.reachd.test:443": s.Addr}))
	plainAsHTTPS := *probetest.NewProxy(t).URL
	plainAsHTTPS.Scheme = "https"
	httpsAsPlain := *httpsProxy.URL
	httpsAsPlain.Scheme = "http"
	l.dns.Set("proxy-servfail.reachd.test", probetest.Entry{Rcode: dns.RcodeServerFailure})
	l.dns.Set("proxy-nodata.reachd.test", probetest.Entry{})

	tests := []struct {
		name    string
		proxy   *url.URL
		user    string
		timeout time.Duration
		reason  Reason
		detail  string
	}{
		{"proxy name servfail", &url.URL{Scheme: "http", Host: "proxy-servfail.reachd.test:3128"}, "", 0, ProxyDNSFailed, `proxy http://proxy-servfail.reachd.test:3128: dns_servfail`},
		{"proxy name without address", &url.URL{Scheme: "http", Host: "proxy-nodata.reachd.test:3128"}, "", 0, ProxyDNSFailed, "dns_no_records"},
		{"407 offering only NTLM and Negotiate", negotiateOnly.URL, "", 0, ProxyAuthRequired, "407; offers NTLM, Negotiate) and the path has none"},
		{"407 offering Basic", basicOnly.URL, "", 0, ProxyAuthRequired, "407; offers Basic)"},
		{"400 without a proxy's mark is no proxy", status(http.StatusBadRequest), "", 0, ProxyError, `answered CONNECT with "400 Bad Request": this address is not an HTTP proxy`},
		{"451 from a web filter is denied", status(http.StatusUnavailableForLegalReasons), "", 0, ProxyDenied, `"451 Unavailable For Legal Reasons"`},
		{"503 is the upstream", status(http.StatusServiceUnavailable), "", 0, ProxyUpstreamFailed, `"503 Service Unavailable"`},
		{"504 is the upstream", status(http.StatusGatewayTimeout), "", 0, ProxyUpstreamFailed, `"504 Gateway Timeout"`},
		{"the proxy cannot connect to the target", refusing.URL, "", 0, ProxyUpstreamFailed, "503"},
		{"squid names its error", squidDNS.URL, "", 0, ProxyUpstreamFailed, `answered "503 Service Unavailable" (X-Squid-Error "ERR_DNS_FAIL 0")`},
		{"silent after CONNECT", mute.URL, "", 300 * time.Millisecond, ProxyTimeout, "reading the answer to CONNECT"},
		{"garbage answer", garbage.URL, "", 0, ProxyError, "malformed HTTP"},
		{"hangs up without an answer", hangup.URL, "", 0, ProxyError, "EOF"},
		{"500 from the proxy itself", status(http.StatusInternalServerError), "", 0, ProxyError, `"500 Internal Server Error"`},
		{"a redirect is no tunnel", status(http.StatusFound), "", 0, ProxyError, `"302 Found"`},
		{"https:// proxy with an untrusted certificate", httpsProxy.URL, "", 0, ProxyError, `TLS to the proxy: its certificate is issued by "Proxy Listener CA", which this path does not trust (give that CA as the path's ca_file)`},
		{"https:// to a plain proxy", &plainAsHTTPS, "", 0, ProxyError, "TLS to the proxy"},
		{"http:// to a TLS proxy", &httpsAsPlain, "", 0, ProxyError, "reading the answer to CONNECT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg := target("vendor.reachd.test", 443)
			if tt.timeout != 0 {
				tg.Timeout = tt.timeout
			}
			start := time.Now()
			r := l.probe(tg, configs.Path{Name: "p", Proxy: tt.proxy}, l.config())
			assertOutcome(t, r, StageProxy, tt.reason, tt.detail)
			t.Logf("%v", r.Err)
			if len(r.Stages) != 1 {
				t.Errorf("stages %+v, want only the failed proxy stage", r.Stages)
			}
			if tt.timeout != 0 && time.Since(start) > tt.timeout+2*time.Second {
				t.Errorf("took %v with a timeout of %v", time.Since(start), tt.timeout)
			}
		})
	}
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// TestProxyCredentials checks what the proxy receives: CONNECT host:port
// for the proxy to resolve, with Proxy-Authorization only where the path
// has credentials, on every connection including the TLS sweep's.
func TestProxyCredentials(t *testing.T) {
	l := newLab(t)
	s := l.server("vendor.reachd.test")
	up := probetest.Upstream(map[string]string{"vendor.reachd.test:443": s.Addr})
	const odd = "pä ss:wörd@1" // a colon, a space, an @ and UTF-8 go through Basic unharmed
	tests := []struct {
		name       string
		opts       []probetest.ProxyOption
		user, pass string
		want       string // Proxy-Authorization the proxy must see
	}{
		{"open proxy, no credentials", nil, "", "", ""},
		{"basic auth", []probetest.ProxyOption{probetest.BasicAuth("svc", "s3cret-pw")}, "svc", "s3cret-pw", basic("svc", "s3cret-pw")},
		{"a password with odd characters", []probetest.ProxyOption{probetest.BasicAuth(`CORP\svc`, odd)}, `CORP\svc`, odd, basic(`CORP\svc`, odd)},
		{"credentials sent to an open proxy", nil, "svc", "s3cret-pw", basic("svc", "s3cret-pw")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proxy := probetest.NewProxy(t, append(tt.opts, up)...)
			path := configs.Path{Name: "p", Proxy: proxy.URL, Username: tt.user, Password: tt.pass}
			r := l.probe(target("vendor.reachd.test", 443), path, l.config())
			assertOutcome(t, r, "", "", "")
			reqs := proxy.Requests()
			// The probe and each version of the TLS sweep open a tunnel.
			if len(reqs) < 1+len(TLSVersions) {
				t.Errorf("%d CONNECTs, want the probe's and the sweep's %d", len(reqs), len(TLSVersions))
			}
			for i, req := range reqs {
				if req.Target != "vendor.reachd.test:443" || req.ProxyAuthorization != tt.want {
					t.Errorf("CONNECT %d: %+v, want target vendor.reachd.test:443 with Proxy-Authorization %q", i, req, tt.want)
				}
			}
			if n := l.dns.Queries("vendor.reachd.test", dns.TypeA, "udp"); n != 0 {
				t.Errorf("the site resolver was asked for the target %d times; the proxy resolves it", n)
			}
		})
	}
}

// TestHTTPSProxy speaks TLS to the proxy itself; the path's ca_file
// makes its certificate trusted.
func TestHTTPSProxy(t *testing.T) {
	l := newLab(t)
	s := l.server("vendor.reachd.test")
	proxyCA := probetest.NewCA(t, "Proxy Listener CA")
	proxy := probetest.NewProxy(t, probetest.ProxyTLS(proxyCA), probetest.BasicAuth("svc", "s3cret-pw"),
		probetest.Upstream(map[string]string{"vendor.reachd.test:443": s.Addr}))
	if proxy.URL.Scheme != "https" {
		t.Fatalf("proxy URL %s", proxy.URL)
	}
	path := configs.Path{Name: "tls-proxy", Proxy: proxy.URL, Username: "svc", Password: "s3cret-pw", CACerts: []*x509.Certificate{proxyCA.Cert}}
	r := l.probe(target("vendor.reachd.test", 443), path, l.config())
	assertOutcome(t, r, "", "", "")
	if r.Stages[0].Stage != StageProxy {
		t.Errorf("first stage %s, want proxy", r.Stages[0].Stage)
	}
	// The target's own chain is still judged on its own: the lab CA is
	// legitimate, so no interception although the path adds a CA.
	if r.TLS.Intercepted || r.TLS.Issuer != "Lab Root CA" {
		t.Errorf("tls %+v, want the lab CA's chain, not intercepted", r.TLS)
	}
	reqs := proxy.Requests()
	if len(reqs) == 0 || reqs[0].ProxyAuthorization != basic("svc", "s3cret-pw") {
		t.Errorf("requests %+v", reqs)
	}
}

// TestInterceptingProxy runs TLS through a proxy that re-signs it like
// squid's ssl-bump: with the proxy's CA as the path's ca_file the probe
// succeeds and reports interception; without it, the chain is untrusted.
func TestInterceptingProxy(t *testing.T) {
	l := newLab(t)
	s := l.server("vendor.reachd.test")
	inspection := probetest.NewCA(t, "Corp Inspection CA")
	proxy := probetest.NewProxy(t, probetest.Intercept(inspection),
		probetest.Upstream(map[string]string{"vendor.reachd.test:443": s.Addr}))
	tg := target("vendor.reachd.test", 443)
	withCA := configs.Path{Name: "inspecting", Proxy: proxy.URL, CACerts: []*x509.Certificate{inspection.Cert}}

	r := l.probe(tg, withCA, l.config())
	assertOutcome(t, r, "", "", "")
	if !r.TLS.Intercepted || r.TLS.Issuer != "Corp Inspection CA" {
		t.Errorf("tls %+v, want intercepted by Corp Inspection CA", r.TLS)
	}
	if r.HTTP == nil || r.HTTP.Status != http.StatusOK {
		t.Errorf("http %+v, want 200 through the bumped tunnel", r.HTTP)
	}

	pinned := tg
	pinned.PinIssuer = "Lab Root CA"
	assertOutcome(t, l.probe(pinned, withCA, l.config()), StageTLS, TLSIntercepted, `issued by "Corp Inspection CA", pinned issuer is "Lab Root CA"`)

	without := withCA
	without.CACerts = nil
	r = l.probe(tg, without, l.config())
	assertOutcome(t, r, StageTLS, TLSUntrustedCA, `the chain ends in "Corp Inspection CA"`)
	if r.TLS == nil || r.TLS.Intercepted {
		t.Errorf("tls %+v: an untrusted chain is a failure, not interception", r.TLS)
	}

	if got := strings.Join(stageNames(r), ","); got != "proxy,tls" {
		t.Errorf("stages %s, want proxy,tls", got)
	}
}

// TestProxyPathSideBySide probes one target over direct and over a proxy
// that demands credentials: each path has its own outcome, as agents
// that take different paths do.
func TestProxyPathSideBySide(t *testing.T) {
	l := newLab(t)
	s := l.server("vendor.reachd.test")
	proxy := probetest.NewProxy(t, probetest.BasicAuth("svc", "pw"), probetest.Upstream(map[string]string{"vendor.reachd.test:" + strconv.Itoa(s.Port): s.Addr}))
	cfg := l.config()
	cfg.Paths = append(cfg.Paths, configs.Path{Name: "corp-proxy", Proxy: proxy.URL})
	tg := target("vendor.reachd.test", s.Port, func(t *targets.Target) { t.Paths = []string{configs.DirectPath, "corp-proxy"} })
	cfg.Targets = []targets.Target{tg}

	probers := Build(cfg, "reachd-test")
	if len(probers) != 2 {
		t.Fatalf("%d probers, want one per path", len(probers))
	}
	got := map[string]Result{}
	for _, p := range probers {
		got[p.Path()] = p.Probe(t.Context())
	}
	assertOutcome(t, got[configs.DirectPath], "", "", "")
	assertOutcome(t, got["corp-proxy"], StageProxy, ProxyAuthRequired, "offers Basic")
	if probers[0].Key() == probers[1].Key() {
		t.Errorf("both paths share the key %q", probers[0].Key())
	}
}

func stageNames(r Result) []string {
	var out []string
	for _, s := range r.Stages {
		out = append(out, string(s.Stage))
	}
	return out
}
