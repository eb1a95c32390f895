package exporter

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reachd/reachd/probe"
)

// probeServer serves a store of two targets, one over two paths, with a
// Probe function that answers from results and records what it ran.
type probeServer struct {
	h   http.Handler
	mu  sync.Mutex
	ran []string
}

func newProbeServer(t *testing.T, run ProbeFunc) (*probeServer, *Store) {
	t.Helper()
	api := pageTarget("acme", "jp", "api", "direct", "corp-proxy")
	other := pageTarget("acme", "jp", "other", "direct")
	s := NewStore()
	Sync(s, []pageProbe{{api, "direct"}, {api, "corp-proxy"}, {other, "direct"}})
	s.Record(api.ID()+"/direct", upResult(api, "direct", t0)) // scheduled history must not leak into /probe
	state := NewState()
	state.Loaded("osaka")
	ps := &probeServer{}
	if run == nil {
		run = func(_ context.Context, key string) (probe.Result, bool) {
			ps.mu.Lock()
			ps.ran = append(ps.ran, key)
			ps.mu.Unlock()
			switch key {
			case api.ID() + "/direct":
				return upResult(api, "direct", time.Now()), true
			case api.ID() + "/corp-proxy":
				return downResult(api, "corp-proxy", time.Now(), probe.ProxyAuthRequired, "proxy answered 407"), true
			}
			return probe.Result{}, false
		}
	}
	ps.h = NewServer(s, state, ServerOptions{Probe: run, Logger: slog.New(slog.DiscardHandler)}).Handler()
	return ps, s
}

func (ps *probeServer) get(path string) (int, string) {
	rec := httptest.NewRecorder()
	ps.h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(body)
}

func TestProbeEndpoint(t *testing.T) {
	ps, _ := newProbeServer(t, nil)
	tests := []struct {
		name, query string
		code        int
		ran         string // the probe run, if any
		want        []string
	}{
		{"no target", "/probe", 400, "", []string{"missing the target parameter"}},
		{"empty target", "/probe?target=&path=direct", 400, "", nil},
		{"unknown target", "/probe?target=acme/jp/nope", 404, "", []string{`"acme/jp/nope"`}},
		{"unknown path", "/probe?target=acme/jp/api&path=elsewhere", 404, "", []string{`over path "elsewhere"`}},
		{"path of another target", "/probe?target=acme/jp/other&path=corp-proxy", 404, "", nil},
		{"a host is not a target", "/probe?target=" + "http://127.0.0.1:22/", 404, "", nil},
		{"a target with a path in it", "/probe?target=acme/jp/api/direct", 404, "", nil},
		{"first path by default", "/probe?target=acme/jp/api", 200, "acme/jp/api/direct", []string{
			`reachd_probe_success{host="api.reachd.test",path="direct",port="443",region="jp",target="api",vendor="acme"} 1`,
			`reachd_tls_negotiated_info{`, `reachd_http_status_code{`, `reachd_dns_success{`}},
		{"named path", "/probe?target=acme/jp/api&path=corp-proxy", 200, "acme/jp/api/corp-proxy", []string{
			`reachd_probe_success{host="api.reachd.test",path="corp-proxy",port="443",region="jp",target="api",vendor="acme"} 0`,
			`reachd_probe_failure_reason{host="api.reachd.test",path="corp-proxy",port="443",reason="proxy_auth_required",region="jp",stage="proxy",target="api",vendor="acme"} 1`}},
		{"a key split elsewhere", "/probe?target=acme/jp&path=api/direct", 404, "", nil},
		{"configured but the prober is gone", "/probe?target=acme/jp/other", 404, "acme/jp/other/direct", []string{"no longer configured"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps.mu.Lock()
			ps.ran = nil
			ps.mu.Unlock()
			code, body := ps.get(tt.query)
			if code != tt.code {
				t.Fatalf("%s: %d, want %d\n%s", tt.query, code, tt.code, body)
			}
			for _, w := range tt.want {
				if !strings.Contains(body, w) {
					t.Errorf("%s lacks %q:\n%s", tt.query, w, body)
				}
			}
			if ran := strings.Join(ps.ran, ","); ran != tt.ran {
				t.Errorf("ran %q, want %q", ran, tt.ran)
			}
			if code != 200 {
				return
			}
			// Only that probe's gauges: no daemon series, no counters or
			// histograms that would restart with every scrape, no other probe.
			for _, not := range []string{"reachd_site_info", "reachd_targets", "reachd_config_", "_total", "_bucket", `target="other"`, "go_goroutines"} {
				if strings.Contains(body, not) {
					t.Errorf("%s has %q:\n%s", tt.query, not, body)
				}
			}
		})
	}
}

func TestProbeEndpointBoundsConcurrency(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	ps, s := newProbeServer(t, func(ctx context.Context, key string) (probe.Result, bool) {
		entered <- struct{}{}
		<-release
		return upResult(pageTarget("acme", "jp", "api", "direct"), "direct", time.Now()), true
	})
	_ = s
	var wg sync.WaitGroup
	codes := make(chan int, ProbeConcurrency)
	for range ProbeConcurrency {
		wg.Go(func() {
			code, _ := ps.get("/probe?target=acme/jp/api")
			codes <- code
		})
		<-entered
	}
	if code, body := ps.get("/probe?target=acme/jp/api"); code != http.StatusServiceUnavailable {
		t.Errorf("with %d probes in flight: %d %s, want 503", ProbeConcurrency, code, body)
	}
	close(release)
	wg.Wait()
	close(codes)
	for code := range codes {
		if code != 200 {
			t.Errorf("a probe in flight answered %d", code)
		}
	}
}

func TestProbeEndpointHonoursScrapeTimeout(t *testing.T) {
	var left time.Duration
	ps, _ := newProbeServer(t, func(ctx context.Context, key string) (probe.Result, bool) {
		d, _ := ctx.Deadline()
		left = time.Until(d)
		return upResult(pageTarget("acme", "jp", "api", "direct"), "direct", time.Now()), true
	})
	req := httptest.NewRequest("GET", "/probe?target=acme/jp/api", nil)
	req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", "3")
	rec := httptest.NewRecorder()
	ps.h.ServeHTTP(rec, req)
	if rec.Code != 200 || left <= 2*time.Second || left > 2500*time.Millisecond {
		t.Errorf("%d; the probe had %v left, want just under 2.5s (the scrape timeout less a margin)", rec.Code, left)
	}
}

func TestTargetsEndpoint(t *testing.T) {
	ps, _ := newProbeServer(t, nil)
	code, body := ps.get("/api/v1/targets")
	var doc struct {
		Site    string           `json:"site"`
		Targets []map[string]any `json:"targets"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil || code != 200 {
		t.Fatalf("%d %v\n%s", code, err, body)
	}
	if doc.Site != "osaka" || len(doc.Targets) != 3 {
		t.Fatalf("site %q, %d probes, want 3", doc.Site, len(doc.Targets))
	}
	first := doc.Targets[0]
	want := map[string]any{"vendor": "acme", "region": "jp", "target": "api", "host": "api.reachd.test", "port": 443.0,
		"path": "corp-proxy", "interval_seconds": 60.0, "timeout_seconds": 10.0}
	for k, v := range want {
		if first[k] != v {
			t.Errorf("%s = %v, want %v", k, first[k], v)
		}
	}
	if checks, _ := first["checks"].([]any); len(checks) != 4 || checks[0] != "dns" {
		t.Errorf("checks %v", first["checks"])
	}
}
