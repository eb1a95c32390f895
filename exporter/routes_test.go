package exporter

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// /probe takes the bare target name, as reachd check --target does, when
// one configured target has it.
func TestProbeBareTargetName(t *testing.T) {
	ps, s := newProbeServer(t, nil)
	code, body := ps.get("/probe?target=api")
	if code != 200 || !strings.Contains(body, `reachd_probe_success{host="api.reachd.test",path="direct",port="443",region="jp",target="api",vendor="acme"} 1`) {
		t.Errorf("bare name: %d\n%s", code, body)
	}
	if code, body := ps.get("/probe?target=nope"); code != 404 || !strings.Contains(body, `no configured probe of target "nope": no configured target has this name`) {
		t.Errorf("unknown bare name: %d %s", code, body)
	}
	twin := pageTarget("zeta", "eu", "api", "direct")
	api := pageTarget("acme", "jp", "api", "direct", "corp-proxy")
	other := pageTarget("acme", "jp", "other", "direct")
	Sync(s, []pageProbe{{api, "direct"}, {api, "corp-proxy"}, {other, "direct"}, {twin, "direct"}})
	if code, body := ps.get("/probe?target=api"); code != 400 || !strings.Contains(body, `"api" is ambiguous: it names acme/jp/api, zeta/eu/api; give vendor/region/name`) {
		t.Errorf("ambiguous bare name: %d %s", code, body)
	}
}

// Behind a reverse proxy: every endpoint under the prefix, every link on
// the page resolving under it, the bare prefix and the root redirecting to
// the page at the external path.
func TestRoutePrefix(t *testing.T) {
	_, s := newProbeServer(t, nil)
	state := NewState()
	state.Loaded("osaka")
	for _, tt := range []struct{ prefix, external, redirect string }{
		{"/reachd", "", "/reachd/"},
		{"/reachd/", "/ext/reachd", "/ext/reachd/"},
	} {
		srv := httptest.NewServer(NewServer(s, state, ServerOptions{Logger: slog.New(slog.DiscardHandler), RoutePrefix: tt.prefix, ExternalURL: tt.external}).Handler())
		client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		get := func(path string) (*http.Response, string) {
			resp, err := client.Get(srv.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp, string(b)
		}
		for _, path := range []string{"/reachd/", "/reachd/metrics", "/reachd/api/v1/results", "/reachd/api/v1/targets", "/reachd/-/healthy", "/reachd/-/ready", "/reachd/probe?target=acme/jp/other"} {
			if resp, _ := get(path); resp.StatusCode != 200 && !(strings.Contains(path, "probe") && resp.StatusCode == 404) {
				t.Errorf("prefix %q: GET %s: %d", tt.prefix, path, resp.StatusCode)
			}
		}
		for _, path := range []string{"/metrics", "/api/v1/results"} {
			if resp, _ := get(path); resp.StatusCode != 404 {
				t.Errorf("prefix %q: GET %s outside the prefix: %d, want 404", tt.prefix, path, resp.StatusCode)
			}
		}
		for _, path := range []string{"/reachd", "/"} {
			if resp, _ := get(path); resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != tt.redirect {
				t.Errorf("prefix %q: GET %s: %d to %q, want 302 to %q", tt.prefix, path, resp.StatusCode, resp.Header.Get("Location"), tt.redirect)
			}
		}
		_, page := get("/reachd/")
		links := regexp.MustCompile(`(?:href|action)="([^"]*)"`).FindAllStringSubmatch(page, -1)
		if len(links) < 3 {
			t.Fatalf("the page has %d links:\n%s", len(links), page)
		}
		base, _ := url.Parse(srv.URL + "/reachd/")
		for _, l := range links {
			ref, err := url.Parse(strings.ReplaceAll(l[1], "&amp;", "&"))
			if err != nil {
				t.Errorf("link %q: %v", l[1], err)
				continue
			}
			u := base.ResolveReference(ref)
			if !strings.HasPrefix(u.Path, "/reachd/") {
				t.Errorf("prefix %q: link %q leaves the prefix: %s", tt.prefix, l[1], u.Path)
				continue
			}
			if resp, _ := get(u.RequestURI()); resp.StatusCode != 200 {
				t.Errorf("prefix %q: link %q (%s): %d", tt.prefix, l[1], u.RequestURI(), resp.StatusCode)
			}
		}
		srv.Close()
	}
}
