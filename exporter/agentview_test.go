package exporter

import (
	"strings"
	"testing"

	"github.com/reachd/reachd/probe"
)

func TestAuthExemptions(t *testing.T) {
	api := pageTarget("acme", "jp", "api", "anon", "authed")
	cdn := pageTarget("acme", "jp", "cdn", "anon", "authed")
	r := func(tg, path string, proxy string, auth bool, reason probe.Reason) *probe.Result {
		target := api
		if tg == "cdn" {
			target = cdn
		}
		res := upResult(target, path, t0)
		res.Proxy, res.ProxyAuth = proxy, auth
		if reason != "" {
			res.Err = &probe.Error{Stage: reason.Stage(), Reason: reason}
		}
		return &res
	}
	const proxy = "http://proxy.corp.example:8080"
	tests := []struct {
		name    string
		results []*probe.Result
		want    []string // each in the one line; nil: no line
	}{
		{"anonymous 407, authenticated passes", []*probe.Result{
			r("api", "anon", proxy, false, probe.ProxyAuthRequired), r("api", "authed", proxy, true, ""),
			r("cdn", "anon", proxy, false, probe.ProxyAuthRequired), r("cdn", "authed", proxy, true, ""),
		}, []string{"proxy " + proxy + " lets 2 target(s) through only with credentials", "api.reachd.test:443", "cdn.reachd.test:443", "exempt these hosts from proxy authentication"}},
		{"the authenticated path fails too: no such note", []*probe.Result{
			r("api", "anon", proxy, false, probe.ProxyAuthRequired), r("api", "authed", proxy, true, probe.ProxyAuthRejected),
		}, nil},
		{"another proxy authenticates", []*probe.Result{
			r("api", "anon", proxy, false, probe.ProxyAuthRequired), r("api", "authed", "http://other.corp.example:3128", true, ""),
		}, nil},
		{"anonymous passes", []*probe.Result{
			r("api", "anon", proxy, false, ""), r("api", "authed", proxy, true, ""),
		}, nil},
		{"no results", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := AuthExemptions(tt.results)
			if tt.want == nil {
				if len(got) != 0 {
					t.Errorf("got %q, want none", got)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("got %d lines %q, want 1", len(got), got)
			}
			for _, w := range tt.want {
				if !strings.Contains(got[0], w) {
					t.Errorf("%q lacks %q", got[0], w)
				}
			}
		})
	}
}
