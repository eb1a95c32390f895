package probe

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reachd/reachd/configs"
	"github.com/reachd/reachd/probe/probetest"
)

// TestFetchOverThePath: the fetcher the tls stage and the extras use gets
// plain-HTTP URLs direct with the probe's resolver, or through the path's
// proxy (explicit, the environment's, or the one its PAC names) as an
// absolute-form GET with its credentials and auth scheme, bounded in body
// and time, its failures classified like the stages'.
func TestFetchOverThePath(t *testing.T) {
	l := newLab(t)
	body := strings.Repeat("c", 100)
	srv := probetest.NewHTTPServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/pki/root.crl" || r.Header.Get("Proxy-Authorization") != "" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(body))
	}))
	l.dns.Set("crl.reachd.test", probetest.Entry{A: []string{"127.0.0.1"}})
	hostPort := "crl.reachd.test:" + strconv.Itoa(srv.Port)
	u := "http://" + hostPort + "/pki/root.crl"
	tarpit := probetest.NewTarpit(t)
	l.dns.Set("slow.reachd.test", probetest.Entry{A: []string{"127.0.0.1"}})
	up := probetest.Upstream(map[string]string{hostPort: srv.Addr})
	open := probetest.NewProxy(t, up)
	auth := probetest.NewProxy(t, up, probetest.BasicAuth("svc", "s3cret-pw"))
	env := func(noProxy string) configs.Path {
		return configs.Path{Name: "env", Environment: true, ProxyEnv: configs.ProxyEnv{HTTPProxy: open.URL.String(), NoProxy: noProxy}}
	}
	envAuth := configs.Path{Name: "env", Environment: true, ProxyEnv: configs.ProxyEnv{HTTPProxy: auth.URL.String()}, Username: "svc", Password: "s3cret-pw"}
	// A pac path fetches as CryptoAPI on a PAC-configured host does:
	// through the proxy the PAC names for the URL, falling over a dead
	// one, or direct.
	viaPAC := probetest.NewProxy(t, up)
	dead := "127.0.0.1:" + strconv.Itoa(closedPort(t))
	pacPath := configs.Path{Name: "pac", PAC: &configs.PACSource{URL: l.pacServer(`function FindProxyForURL(u, h) {
	return h == "crl.reachd.test" ? "PROXY ` + dead + `; PROXY ` + viaPAC.URL.Host + `" : "DIRECT"; }`).URL}}
	brokenPAC := configs.Path{Name: "pac", PAC: &configs.PACSource{URL: l.pacServer(`function FindProxyForURL(u, h) { throw new Error("no rule"); }`).URL}}
	byIP := "http://127.0.0.1:" + strconv.Itoa(srv.Port) + "/pki/root.crl"

	tests := []struct {
		name    string
		path    configs.Path
		url     string
		max     int64
		timeout time.Duration
		reason  Reason // "": a 200 with the body
		detail  string
		proxy   *probetest.Proxy // must have seen the absolute-form GET
	}{
		{"direct", configs.Path{Name: "direct"}, u, 1 << 10, 0, "", "", nil},
		{"through the proxy with credentials", configs.Path{Name: "p", Proxy: auth.URL, Username: "svc", Password: "s3cret-pw"}, u, 1 << 10, 0, "", "", auth},
		{"environment path", env(""), u, 1 << 10, 0, "", "", open},
		{"environment path, NO_PROXY", env("crl.reachd.test"), u, 1 << 10, 0, "", "", nil},
		{"environment path with the path's credentials", envAuth, u, 1 << 10, 0, "", "", auth},
		{"pac path, the proxy the PAC names", pacPath, u, 1 << 10, 0, "", "", viaPAC},
		{"pac path, DIRECT", pacPath, byIP, 1 << 10, 0, "", "", nil},
		{"pac path, the PAC fails", brokenPAC, u, 1 << 10, 0, ProxyPACFailed, "no rule", nil},
		{"body bounded", configs.Path{Name: "direct"}, u, 10, 0, "", "", nil},
		{"no credentials", configs.Path{Name: "p", Proxy: auth.URL}, u, 1 << 10, 0, ProxyAuthRequired, "demands credentials", nil},
		{"unknown host", configs.Path{Name: "direct"}, "http://nowhere.reachd.test/x.crl", 1 << 10, 0, DNSNXDomain, "NXDOMAIN", nil},
		{"refused", configs.Path{Name: "direct"}, "http://127.0.0.1:" + strconv.Itoa(closedPort(t)) + "/x.crl", 1 << 10, 0, TCPRefused, "refused", nil},
		{"no answer", configs.Path{Name: "direct"}, "http://slow.reachd.test:" + strconv.Itoa(tarpit.Port) + "/x.crl", 1 << 10, 300 * time.Millisecond, HTTPTimeout, "timeout", nil},
		{"not plain HTTP", configs.Path{Name: "direct"}, "https://" + hostPort + "/x.crl", 1 << 10, 0, HTTPError, "is not an http:// URL", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := New(target("crl.reachd.test", srv.Port), tt.path, NewEnv(l.config(), "reachd-test")).fetch
			ctx := context.Background()
			if tt.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.timeout)
				defer cancel()
			}
			var before int
			if tt.proxy != nil {
				before = len(tt.proxy.Requests())
			}
			got, err := f.fetch(ctx, tt.url, tt.max)
			if tt.reason != "" {
				if err == nil || err.Reason != tt.reason || !strings.Contains(err.Error(), tt.detail) {
					t.Fatalf("got %v (%+v), want %s with %q", err, got, tt.reason, tt.detail)
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Errorf("error reveals the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := body[:min(int64(len(body)), tt.max)]
			if got.Status != 200 || string(got.Body) != want || got.Truncated != (tt.max < int64(len(body))) {
				t.Errorf("got %d %q truncated %v, want 200 %q", got.Status, got.Body, got.Truncated, want)
			}
			if tt.proxy != nil {
				reqs := tt.proxy.Requests()
				if len(reqs) != before+1 || reqs[before].Method != "GET" || reqs[before].URI != tt.url {
					t.Errorf("the proxy got %+v, want GET %s", reqs[before:], tt.url)
				}
			}
		})
	}
	if n := len(open.Requests()); n != 1 {
		t.Errorf("the environment proxy got %d requests, want 1 (NO_PROXY went direct)", n)
	}
	if n := len(viaPAC.Requests()); n != 1 {
		t.Errorf("the PAC's proxy got %d requests, want 1 (DIRECT went direct)", n)
	}

	// The path's auth scheme, not Basic, as the probe's own proxy stage.
	ntlmOnly := probetest.NewProxy(t, probetest.AuthSchemes("NTLM"))
	path := configs.Path{Name: "p", Proxy: ntlmOnly.URL, Username: `CORP\svc`, Password: "s3cret-pw", Auth: configs.AuthNTLM}
	New(target("crl.reachd.test", srv.Port), path, NewEnv(l.config(), "reachd-test")).fetch.fetch(context.Background(), u, 1<<10)
	if reqs := ntlmOnly.Requests(); len(reqs) == 0 || !strings.HasPrefix(reqs[0].ProxyAuthorization, "NTLM ") {
		t.Errorf("requests %+v, want the first with an NTLM Proxy-Authorization", reqs)
	}
}
