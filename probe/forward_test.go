package probe

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/reachd/reachd/configs"
	"github.com/reachd/reachd/probe/probetest"
	"github.com/reachd/reachd/targets"
)

// origin is a plain-HTTP server that notes the request line and Host of
// what reached it.
type origin struct {
	*probetest.HTTPServer
	mu   sync.Mutex
	seen []string
}

func newOrigin(t *testing.T, status int) *origin {
	o := &origin{}
	o.HTTPServer = probetest.NewHTTPServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		o.seen = append(o.seen, r.Method+" "+r.RequestURI+" Host "+r.Host)
		o.mu.Unlock()
		w.WriteHeader(status)
	}))
	return o
}

func (o *origin) requests() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.seen...)
}

func plainHTTP(host string) targets.Target {
	return target(host, 80, func(t *targets.Target) {
		t.Checks = []string{"dns", "tcp", "http"}
		t.HTTP.Path = "/pki/crl/products/root.crl"
	})
}

// TestPlainHTTPThroughProxy: a port-80 target goes to the proxy as an
// absolute-form GET, never CONNECT; the proxy's own refusals still read
// as proxy-stage reasons, the origin's answers as the http stage's.
func TestPlainHTTPThroughProxy(t *testing.T) {
	l := newLab(t)
	ok := newOrigin(t, http.StatusOK)
	down := newOrigin(t, http.StatusServiceUnavailable)
	up := probetest.Upstream(map[string]string{"crl.reachd.test:80": ok.Addr, "down.reachd.test:80": down.Addr, "gone.reachd.test:80": "127.0.0.1:" + strconv.Itoa(closedPort(t))})
	open := probetest.NewProxy(t, up, probetest.SquidErrors())
	auth := probetest.NewProxy(t, up, probetest.SquidErrors(), probetest.BasicAuth("svc", "s3cret-pw"))
	denied := probetest.NewProxy(t, probetest.SquidErrors(), probetest.Status(http.StatusForbidden))
	plain403 := probetest.NewProxy(t, probetest.Status(http.StatusForbidden))

	tests := []struct {
		name   string
		host   string
		proxy  *probetest.Proxy
		user   string
		pass   string
		stage  Stage
		reason Reason
		detail string
	}{
		{"forwarded", "crl.reachd.test", open, "", "", "", "", ""},
		{"credentials accepted", "crl.reachd.test", auth, "svc", "s3cret-pw", "", "", ""},
		{"no credentials", "crl.reachd.test", auth, "", "", StageProxy, ProxyAuthRequired, "offers Basic) and the path has none"},
		{"wrong credentials", "crl.reachd.test", auth, "svc", "wrong-pw", StageProxy, ProxyAuthRejected, "rejected the configured credentials"},
		{"denied by the proxy", "crl.reachd.test", denied, "", "", StageProxy, ProxyDenied, `"403 Forbidden" itself, to the forwarded GET (X-Squid-Error "ERR_ACCESS_DENIED 0")`},
		{"name the proxy cannot reach", "nowhere.reachd.test", open, "", "", StageProxy, ProxyUpstreamFailed, `X-Squid-Error "ERR_DNS_FAIL 0"`},
		{"origin refuses the proxy", "gone.reachd.test", open, "", "", StageProxy, ProxyUpstreamFailed, `X-Squid-Error "ERR_CONNECT_FAIL 111"`},
		// Without the proxy's marks a 403 may be the origin's: the http
		// stage judges it (any status below 500 proves reachability).
		{"unmarked 403", "crl.reachd.test", plain403, "", "", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := configs.Path{Name: "corp", Proxy: tt.proxy.URL, Username: tt.user, Password: tt.pass}
			r := l.probe(plainHTTP(tt.host), path, l.config())
			if tt.stage == StageProxy {
				// The proxy's answer to the GET is seen at the http
				// stage, which fails; the reason is the proxy's.
				assertVerdict(t, r, tt.stage, tt.reason, StageHTTP, tt.detail)
			} else {
				assertOutcome(t, r, tt.stage, tt.reason, tt.detail)
			}
			var stages []string
			for _, s := range r.Stages {
				stages = append(stages, string(s.Stage))
			}
			if want := "proxy,http"; strings.Join(stages, ",") != want {
				t.Errorf("stages %v, want %s", stages, want)
			}
			if r.Err != nil && strings.Contains(r.Err.Error(), "pw") {
				t.Errorf("error reveals the password: %v", r.Err)
			}
			reqs := tt.proxy.Requests()
			last := reqs[len(reqs)-1]
			if last.Method != http.MethodGet || last.URI != "http://"+tt.host+"/pki/crl/products/root.crl" || last.Target != tt.host+":80" {
				t.Errorf("the proxy got %+v, want an absolute-form GET", last)
			}
			if tt.user != "" && last.ProxyAuthorization == "" {
				t.Error("no Proxy-Authorization sent")
			}
		})
	}
	if got := ok.requests(); len(got) == 0 || got[0] != "GET /pki/crl/products/root.crl Host crl.reachd.test" {
		t.Errorf("origin saw %q", got)
	}

	// The origin's own 503 is the origin's: an http-stage failure.
	tg := plainHTTP("down.reachd.test")
	tg.HTTP.ExpectStatus = []int{200}
	r := l.probe(tg, configs.Path{Name: "corp", Proxy: open.URL}, l.config())
	assertOutcome(t, r, StageHTTP, HTTPStatusUnexpected, "status 503")
}

// TestPlainTCPThroughProxy: a port-80 target checked without http (dns
// and tcp) through a proxy is a GET as well: the proxy stage passes once
// the proxy forwarded an answer, so the proxy reaches the host.
func TestPlainTCPThroughProxy(t *testing.T) {
	l := newLab(t)
	notFound := newOrigin(t, http.StatusNotFound)
	up := probetest.Upstream(map[string]string{"crl.reachd.test:80": notFound.Addr, "gone.reachd.test:80": "127.0.0.1:" + strconv.Itoa(closedPort(t))})
	open := probetest.NewProxy(t, up, probetest.SquidErrors())
	denied := probetest.NewProxy(t, probetest.SquidErrors(), probetest.Status(http.StatusForbidden))
	tcpOnly := func(host string) targets.Target {
		return target(host, 80, func(t *targets.Target) { t.Checks = []string{"dns", "tcp"} })
	}
	tests := []struct {
		name   string
		host   string
		proxy  *probetest.Proxy
		reason Reason
		detail string
	}{
		{"forwarded, any answer", "crl.reachd.test", open, "", ""},
		{"denied", "crl.reachd.test", denied, ProxyDenied, "ERR_ACCESS_DENIED"},
		{"origin refuses the proxy", "gone.reachd.test", open, ProxyUpstreamFailed, "ERR_CONNECT_FAIL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := l.probe(tcpOnly(tt.host), configs.Path{Name: "corp", Proxy: tt.proxy.URL}, l.config())
			stage := Stage("")
			if tt.reason != "" {
				stage = StageProxy
			}
			assertOutcome(t, r, stage, tt.reason, tt.detail)
			if len(r.Stages) != 1 || r.Stages[0].Stage != StageProxy || r.HTTP != nil {
				t.Errorf("stages %+v http %+v, want the proxy stage alone", r.Stages, r.HTTP)
			}
			reqs := tt.proxy.Requests()
			if last := reqs[len(reqs)-1]; last.Method != http.MethodGet || last.URI != "http://"+tt.host+"/" {
				t.Errorf("the proxy got %+v, want GET http://%s/", last, tt.host)
			}
		})
	}
}
