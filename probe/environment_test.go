package probe

import (
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/reachd/reachd/configs"
	"github.com/reachd/reachd/probe/probetest"
	"github.com/reachd/reachd/targets"
)

// envPath is an environment path as configs builds it for
// proxy = "environment" from HTTPS_PROXY, HTTP_PROXY and NO_PROXY.
func envPath(env configs.ProxyEnv) configs.Path {
	return configs.Path{Name: "env", Environment: true, ProxyEnv: env}
}

// TestEnvironmentPath decides per target, as agents do: HTTPS_PROXY for
// TLS targets unless NO_PROXY exempts the host, which then goes direct on
// the same path.
func TestEnvironmentPath(t *testing.T) {
	l := newLab(t)
	vendor := l.server("vendor.reachd.test")
	direct := l.server("direct.reachd.test")
	inner := l.server("sync.corp.reachd.test")
	proxy := probetest.NewProxy(t, probetest.Upstream(map[string]string{
		"vendor.reachd.test:" + strconv.Itoa(vendor.Port): vendor.Addr,
	}))
	hostPort := proxy.URL.Host // HTTPS_PROXY=host:port means http://host:port

	tests := []struct {
		name    string
		env     configs.ProxyEnv
		target  targets.Target
		first   Stage  // the first stage tells the path taken
		connect string // the CONNECT the proxy must receive, or "" for none
	}{
		{"HTTPS_PROXY carries a TLS target", configs.ProxyEnv{HTTPSProxy: proxy.URL.String(), NoProxy: "direct.reachd.test"},
			target("vendor.reachd.test", vendor.Port), StageProxy, "vendor.reachd.test:" + strconv.Itoa(vendor.Port)},
		{"NO_PROXY exempts a host", configs.ProxyEnv{HTTPSProxy: proxy.URL.String(), NoProxy: "direct.reachd.test"},
			target("direct.reachd.test", direct.Port), StageDNS, ""},
		{"NO_PROXY exempts a domain", configs.ProxyEnv{HTTPSProxy: proxy.URL.String(), NoProxy: "localhost, .corp.reachd.test"},
			target("sync.corp.reachd.test", inner.Port), StageDNS, ""},
		{"NO_PROXY with a port only exempts that port", configs.ProxyEnv{HTTPSProxy: proxy.URL.String(), NoProxy: "vendor.reachd.test:1"},
			target("vendor.reachd.test", vendor.Port), StageProxy, "vendor.reachd.test:" + strconv.Itoa(vendor.Port)},
		{"a proxy without a scheme is http://", configs.ProxyEnv{HTTPSProxy: hostPort},
			target("vendor.reachd.test", vendor.Port), StageProxy, "vendor.reachd.test:" + strconv.Itoa(vendor.Port)},
		{"HTTP_PROXY alone does not carry TLS targets", configs.ProxyEnv{HTTPProxy: proxy.URL.String()},
			target("vendor.reachd.test", vendor.Port), StageDNS, ""},
		{"an empty environment is direct", configs.ProxyEnv{},
			target("vendor.reachd.test", vendor.Port), StageDNS, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(proxy.Requests())
			r := l.probe(tt.target, envPath(tt.env), l.config())
			assertOutcome(t, r, "", "", "")
			if r.Stages[0].Stage != tt.first {
				t.Errorf("stages %v, want %s first", stageNames(r), tt.first)
			}
			reqs := proxy.Requests()[before:]
			if tt.connect == "" && len(reqs) != 0 {
				t.Errorf("the proxy got %+v for a target that goes direct", reqs)
			}
			if tt.connect != "" && (len(reqs) == 0 || reqs[0].Target != tt.connect) {
				t.Errorf("the proxy got %+v, want CONNECT %s", reqs, tt.connect)
			}
		})
	}
}

// TestEnvironmentProxyCredentials takes the credentials from the userinfo
// of HTTPS_PROXY, as curl and most agents do, and never shows the
// password in an error.
func TestEnvironmentProxyCredentials(t *testing.T) {
	l := newLab(t)
	s := l.server("vendor.reachd.test")
	const user, pass = "svc", "Env-S3cret@pw" // the @ is percent-encoded in the URL
	proxy := probetest.NewProxy(t, probetest.BasicAuth(user, pass),
		probetest.Upstream(map[string]string{"vendor.reachd.test:443": s.Addr}))
	withCreds := func(host, password string) string {
		return (&url.URL{Scheme: "http", User: url.UserPassword(user, password), Host: host}).String()
	}
	gone := "127.0.0.1:" + strconv.Itoa(closedPort(t))
	tg := target("vendor.reachd.test", 443)

	r := l.probe(tg, envPath(configs.ProxyEnv{HTTPSProxy: withCreds(proxy.Addr, pass)}), l.config())
	assertOutcome(t, r, "", "", "")
	if reqs := proxy.Requests(); len(reqs) == 0 || reqs[0].ProxyAuthorization != basic(user, pass) {
		t.Errorf("the proxy got %+v, want Basic credentials from the URL", reqs)
	}

	// Without userinfo in the URL the path's own username and password
	// go to whichever proxy the environment names.
	path := envPath(configs.ProxyEnv{HTTPSProxy: "http://" + proxy.Addr})
	path.Username, path.Password = user, pass
	before := len(proxy.Requests())
	assertOutcome(t, l.probe(tg, path, l.config()), "", "", "")
	if reqs := proxy.Requests()[before:]; len(reqs) == 0 || reqs[0].ProxyAuthorization != basic(user, pass) {
		t.Errorf("the proxy got %+v, want Basic credentials from the path", reqs)
	}

	tests := []struct {
		name, proxyURL string
		reason         Reason
		detail         string
	}{
		{"wrong password", withCreds(proxy.Addr, "Wrong-S3cret@pw"), ProxyAuthRejected, "proxy http://" + proxy.Addr + " rejected the configured credentials"},
		{"proxy down", withCreds(gone, pass), ProxyUnreachable, "proxy http://" + gone + ": "},
		{"proxy name unknown", withCreds("nowhere.reachd.test:3128", pass), ProxyDNSFailed, "proxy http://nowhere.reachd.test:3128: dns_nxdomain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := l.probe(tg, envPath(configs.ProxyEnv{HTTPSProxy: tt.proxyURL}), l.config())
			assertOutcome(t, r, StageProxy, tt.reason, tt.detail)
			msg := r.Err.Error()
			for _, secret := range []string{"S3cret", url.QueryEscape(pass), "Env-", "svc:", basic(user, pass)[len("Basic "):]} {
				if strings.Contains(msg, secret) {
					t.Errorf("the error reveals %q: %s", secret, msg)
				}
			}
		})
	}
}
