package probe

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reachd/reachd/configs"
	"github.com/reachd/reachd/probe/pac"
	"github.com/reachd/reachd/probe/probetest"
)

// pacFile serves one PAC body, changeable; "503" answers 503.
type pacFile struct {
	mu   sync.Mutex
	body string
	URL  string // http://pac.reachd.test:port/proxy.pac
}

func (l *lab) pacServer(body string) *pacFile {
	l.t.Helper()
	f := &pacFile{body: body}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		body := f.body
		f.mu.Unlock()
		if body == "503" {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, body)
	}))
	l.t.Cleanup(srv.Close)
	l.dns.Set("pac.reachd.test", probetest.Entry{A: []string{"127.0.0.1"}})
	f.URL = "http://pac.reachd.test:" + strconv.Itoa(srv.Listener.Addr().(*net.TCPAddr).Port) + "/proxy.pac"
	return f
}

func (f *pacFile) set(body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.body = body
}

// TestPACPath: the PAC chooses per target, the answers are tried in
// order as agents fall over (a dead proxy, then the next, then DIRECT),
// and the probe reports which one carried it; a PAC that throws, loops
// or answers garbage fails the probe with proxy_pac_failed, naming it.
func TestPACPath(t *testing.T) {
	old := pac.EvalTimeout
	pac.EvalTimeout = 300 * time.Millisecond
	t.Cleanup(func() { pac.EvalTimeout = old })

	l := newLab(t)
	vendor := l.server("vendor.reachd.test")
	direct := l.server("app.direct.reachd.test")
	bothDead := l.server("both-dead.reachd.test")
	live := probetest.NewProxy(t, probetest.Upstream(map[string]string{"vendor.reachd.test:443": vendor.Addr}))
	deny := probetest.NewProxy(t, probetest.Status(http.StatusForbidden))
	dead := "127.0.0.1:" + strconv.Itoa(closedPort(t))
	dead2 := "127.0.0.1:" + strconv.Itoa(closedPort(t))
	for _, h := range []string{"throws.reachd.test", "loops.reachd.test", "garbage.reachd.test", "socks.reachd.test", "dead-only.reachd.test", "denied.reachd.test"} {
		l.dns.Set(h, probetest.Entry{A: []string{"127.0.0.1"}})
	}
	script := strings.NewReplacer("DEAD2", dead2, "DEAD", dead, "LIVE", live.URL.Host, "DENY", deny.URL.Host).Replace(`
function FindProxyForURL(url, host) {
	if (dnsDomainIs(host, ".direct.reachd.test"))
		return "DIRECT";
	if (host == "both-dead.reachd.test")
		return "PROXY DEAD; PROXY DEAD2; DIRECT";
	if (host == "throws.reachd.test")
		throw new Error("no rule for " + host);
	if (host == "loops.reachd.test")
		for (;;) {}
	if (host == "garbage.reachd.test")
		return "PRXY x";
	if (host == "socks.reachd.test")
		return "SOCKS5 127.0.0.1:1080";
	if (host == "dead-only.reachd.test")
		return "PROXY DEAD";
	if (host == "denied.reachd.test")
		return "PROXY DENY; PROXY LIVE; DIRECT";
	if (url != "https://vendor.reachd.test/")
		return "PROXY 127.0.0.1:1; DIRECT";
	return "PROXY DEAD; PROXY LIVE; DIRECT";
}`)
	pf := l.pacServer(script)
	path := configs.Path{Name: "pac", PAC: &configs.PACSource{URL: pf.URL}}

	tests := []struct {
		name   string
		host   string
		port   int
		stage  Stage
		reason Reason
		detail string
		used   string
		stages string
	}{
		{"the first proxy dead, the second carries", "vendor.reachd.test", 443, "", "", "", "PROXY " + live.URL.Host, "proxy tls http"},
		{"DIRECT for the intranet", "app.direct.reachd.test", direct.Port, "", "", "", "DIRECT", "proxy dns tcp tls http"},
		{"both proxies dead, DIRECT carries", "both-dead.reachd.test", bothDead.Port, "", "", "", "DIRECT", "proxy dns tcp tls http"},
		{"only a dead proxy", "dead-only.reachd.test", 443, StageProxy, ProxyUnreachable, "proxy http://" + dead, "", "proxy"},
		{"a proxy that answers is not fallen over", "denied.reachd.test", 443, StageProxy, ProxyDenied, `"403 Forbidden"`, "", "proxy"},
		{"the script throws", "throws.reachd.test", 443, StageProxy, ProxyPACFailed, `PAC ` + pf.URL + `: FindProxyForURL("https://throws.reachd.test/", "throws.reachd.test"): Error: no rule for throws.reachd.test at line 8:`, "", "proxy"},
		{"the script loops", "loops.reachd.test", 443, StageProxy, ProxyPACFailed, "the evaluation took longer than 300ms (an endless loop?)", "", "proxy"},
		{"the script answers garbage", "garbage.reachd.test", 443, StageProxy, ProxyPACFailed, `returned garbage: entry 1 "PRXY x": unknown type`, "", "proxy"},
		{"only SOCKS", "socks.reachd.test", 443, StageProxy, ProxyPACFailed, "SOCKS5 127.0.0.1:1080: skipped, reachd speaks HTTP proxies only", "", "proxy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := l.probe(target(tt.host, tt.port), path, l.config())
			assertOutcome(t, r, tt.stage, tt.reason, tt.detail)
			if r.PAC == nil || r.PAC.Used != tt.used || r.PAC.Source != pf.URL {
				t.Errorf("PAC %+v, want used %q from %s", r.PAC, tt.used, pf.URL)
			}
			// A fallback: a dead proxy came before the entry that carried it.
			fellOver := strings.Contains(tt.name, "dead, ")
			if r.PAC != nil && r.PAC.Fallback != fellOver {
				t.Errorf("fallback %v, want %v", r.PAC.Fallback, fellOver)
			}
			var stages []string
			for _, s := range r.Stages {
				stages = append(stages, string(s.Stage))
			}
			if strings.Join(stages, " ") != tt.stages {
				t.Errorf("stages %v, want %s", stages, tt.stages)
			}
		})
	}
	t.Run("the first proxy dead is named with the second's failure", func(t *testing.T) {
		l.dns.Set("dead-then-deny.reachd.test", probetest.Entry{A: []string{"127.0.0.1"}})
		pf.set(strings.NewReplacer("DEAD", dead, "DENY", deny.URL.Host).Replace(`function FindProxyForURL(u, h) { return "PROXY DEAD; PROXY DENY"; }`))
		r := l.probe(target("dead-then-deny.reachd.test", 443), path, l.config())
		assertOutcome(t, r, StageProxy, ProxyDenied, fmt.Sprintf(`PROXY %s: proxy_unreachable; PROXY %s: proxy_denied`, dead, deny.URL.Host))
	})
}

// TestPACFetch: a PAC that cannot be fetched fails the probes with
// proxy_pac_failed naming the URL; once one was fetched, a failed
// refetch or a broken new version keeps the last good copy in use and
// reports the failure beside the result.
func TestPACFetch(t *testing.T) {
	l := newLab(t)
	vendor := l.server("vendor.reachd.test")
	live := probetest.NewProxy(t, probetest.Upstream(map[string]string{"vendor.reachd.test:443": vendor.Addr}))
	pf := l.pacServer("503")
	cfg := l.config()
	path := configs.Path{Name: "pac", PAC: &configs.PACSource{URL: pf.URL}}
	cfg.Paths = append(cfg.Paths, path)
	cfg.Defaults.Interval = 0 // fetch again on every run
	p := New(target("vendor.reachd.test", 443), path, NewEnv(cfg, "reachd-test"))
	probe := func() Result { return p.Probe(context.Background()) }

	r := probe()
	assertOutcome(t, r, StageProxy, ProxyPACFailed, `PAC `+pf.URL+`: GET answered "503 Service Unavailable"`)

	pf.set(`function FindProxyForURL(u, h) { return "PROXY ` + live.URL.Host + `"; }`)
	r = probe()
	assertOutcome(t, r, "", "", "")
	if r.PAC.FetchError != "" || r.PAC.Used != "PROXY "+live.URL.Host {
		t.Errorf("PAC %+v", r.PAC)
	}
	for _, broken := range []string{"503", "function FindProxyForURL(u, h) {"} {
		pf.set(broken)
		r = probe()
		assertOutcome(t, r, "", "", "")
		if !strings.HasPrefix(r.PAC.FetchError, "PAC "+pf.URL+": ") || r.PAC.Used != "PROXY "+live.URL.Host {
			t.Errorf("with %q served: PAC %+v, want the last good copy used and the failure named", broken, r.PAC)
		}
	}
}

// TestMyAddrs: behind a loopback stub resolver, myIpAddress answers the
// host's own interface addresses, never loopback while there are some.
func TestMyAddrs(t *testing.T) {
	got := myAddrs(newResolver(configs.Resolver{Name: "stub", Servers: []string{"127.0.0.53:53"}, Protocol: "udp"}))
	ifaces, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	global := 0
	for _, a := range ifaces {
		if n, ok := a.(*net.IPNet); ok && n.IP.IsGlobalUnicast() {
			global++
		}
	}
	if len(got) == 0 {
		t.Fatal("no address")
	}
	for _, a := range got {
		if a.IsLoopback() && global > 0 {
			t.Errorf("%v: loopback although the host has %d global addresses", got, global)
		}
	}
	if global == 0 && got[0].String() != "127.0.0.1" {
		t.Errorf("%v, want 127.0.0.1 on a host without global addresses", got)
	}
	if len(got) > 1 && got[0].Is6() && got[len(got)-1].Is4() {
		t.Errorf("%v: IPv4 comes first", got)
	}
}

// TestPACPathCredentials: the path's credentials go to whichever proxy
// the PAC picks.
func TestPACPathCredentials(t *testing.T) {
	l := newLab(t)
	vendor := l.server("vendor.reachd.test")
	authed := probetest.NewProxy(t, probetest.BasicAuth("svc", "s3cret-pw"),
		probetest.Upstream(map[string]string{"vendor.reachd.test:443": vendor.Addr}))
	pf := l.pacServer(`function FindProxyForURL(u, h) { return "PROXY ` + authed.URL.Host + `"; }`)
	for _, tt := range []struct {
		user, pass string
		reason     Reason
	}{
		{"svc", "s3cret-pw", ""},
		{"", "", ProxyAuthRequired},
	} {
		path := configs.Path{Name: "pac", PAC: &configs.PACSource{URL: pf.URL}, Username: tt.user, Password: tt.pass}
		r := l.probe(target("vendor.reachd.test", 443), path, l.config())
		stage := Stage("")
		if tt.reason != "" {
			stage = StageProxy
		}
		assertOutcome(t, r, stage, tt.reason, "")
	}
	if reqs := authed.Requests(); len(reqs) == 0 || reqs[0].ProxyAuthorization != basic("svc", "s3cret-pw") {
		t.Errorf("requests %+v", reqs)
	}
}

// TestPACPathPlainHTTP: a plain-HTTP target (a CRL host on port 80) on a
// pac path goes to the proxy the PAC names as an absolute-form GET, as
// on a proxy path, never CONNECT; a dead first proxy still falls over to
// the next.
func TestPACPathPlainHTTP(t *testing.T) {
	l := newLab(t)
	ok := newOrigin(t, http.StatusOK)
	open := probetest.NewProxy(t, probetest.Upstream(map[string]string{"crl.reachd.test:80": ok.Addr}), probetest.SquidErrors())
	dead := "127.0.0.1:" + strconv.Itoa(closedPort(t))
	pf := l.pacServer(`function FindProxyForURL(u, h) { return u == "http://crl.reachd.test/" ? "PROXY ` + dead + `; PROXY ` + open.URL.Host + `" : "DIRECT"; }`)
	path := configs.Path{Name: "pac", PAC: &configs.PACSource{URL: pf.URL}}
	for _, tt := range []struct {
		name   string
		checks []string
		stages string
	}{
		{"with the http check", []string{"dns", "tcp", "http"}, "proxy http"},
		{"without it", []string{"dns", "tcp"}, "proxy"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tg := plainHTTP("crl.reachd.test")
			tg.Checks = tt.checks
			r := l.probe(tg, path, l.config())
			assertOutcome(t, r, "", "", "")
			if r.PAC == nil || r.PAC.Used != "PROXY "+open.URL.Host {
				t.Errorf("PAC %+v, want carried by %s", r.PAC, open.URL.Host)
			}
			var stages []string
			for _, s := range r.Stages {
				stages = append(stages, string(s.Stage))
			}
			if strings.Join(stages, " ") != tt.stages {
				t.Errorf("stages %v, want %s", stages, tt.stages)
			}
			reqs := open.Requests()
			last := reqs[len(reqs)-1]
			if last.Method != http.MethodGet || last.URI != "http://crl.reachd.test/pki/crl/products/root.crl" {
				t.Errorf("the proxy got %+v, want an absolute-form GET", last)
			}
		})
	}
	if got := ok.requests(); len(got) != 2 || got[0] != "GET /pki/crl/products/root.crl Host crl.reachd.test" {
		t.Errorf("origin saw %q", got)
	}
}

// TestPACPathAuthScheme: the path's auth scheme, not only its
// credentials, goes to the proxy the PAC picks: with auth = "ntlm" the
// first request carries an NTLM NEGOTIATE message, not Basic.
func TestPACPathAuthScheme(t *testing.T) {
	l := newLab(t)
	ntlmOnly := probetest.NewProxy(t, probetest.AuthSchemes("NTLM"))
	pf := l.pacServer(`function FindProxyForURL(u, h) { return "PROXY ` + ntlmOnly.URL.Host + `"; }`)
	path := configs.Path{Name: "pac", PAC: &configs.PACSource{URL: pf.URL}, Username: `CORP\svc`, Password: "s3cret-pw", Auth: configs.AuthNTLM}
	l.probe(target("vendor.reachd.test", 443), path, l.config())
	reqs := ntlmOnly.Requests()
	if len(reqs) == 0 || !strings.HasPrefix(reqs[0].ProxyAuthorization, "NTLM ") {
		t.Fatalf("requests %+v, want the first with an NTLM Proxy-Authorization", reqs)
	}
}
