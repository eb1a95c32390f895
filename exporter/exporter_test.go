package exporter

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/reachd/reachd/probe"
	"github.com/reachd/reachd/probe/trace"
	"github.com/reachd/reachd/targets"
)

type fakeProbe struct {
	t       targets.Target
	path    string
	version string
}

func (f fakeProbe) Key() string             { return f.t.ID() + "/" + f.path }
func (f fakeProbe) Version() string         { return f.version }
func (f fakeProbe) Target() *targets.Target { return &f.t }
func (f fakeProbe) Path() string            { return f.path }

func fake(name string) fakeProbe {
	return fakeProbe{t: targets.Target{Vendor: "acme", Region: "jp", Name: name, Host: name + ".reachd.test", Port: 443}, path: "direct", version: "v1"}
}

var t0 = time.Date(2026, 11, 22, 6, 0, 0, 0, time.UTC)

func okResult(p fakeProbe) probe.Result {
	return probe.Result{Target: p.Target(), Path: p.path, Start: t0, Duration: 250 * time.Millisecond,
		Stages: []probe.StageResult{{Stage: probe.StageDNS, Success: true, Duration: 10 * time.Millisecond}, {Stage: probe.StageTCP, Success: true, Duration: 20 * time.Millisecond}},
		TLS:    &probe.TLSInfo{Version: 0x0304, Cipher: "TLS_AES_128_GCM_SHA256", Issuer: "Corp Inspection CA", Intercepted: true, NotAfter: t0.Add(24 * time.Hour), Accepted: map[uint16]bool{0x0303: true, 0x0304: true}},
		HTTP:   &probe.HTTPInfo{Status: 404, ClockSkew: -2 * time.Second, HasDate: true},
		DNS: []probe.DNSResult{
			{Resolver: "corp", QType: "A", Success: true, Rcode: "NOERROR", Answers: []string{"192.0.2.1", "192.0.2.2"}, Duration: 3 * time.Millisecond},
			{Resolver: "corp", QType: "AAAA", Success: false, Rcode: "SERVFAIL", Reason: probe.DNSServFail},
		}}
}

// testTrace is a path trace that stops after hop 2.
func testTrace() *probe.TraceInfo {
	return &probe.TraceInfo{Target: netip.MustParseAddrPort("10.210.4.2:443"), Start: t0, Verdict: "no answer past hop 2 (10.210.2.2)",
		Hops: []trace.Hop{
			{TTL: 1, Addr: netip.MustParseAddr("10.210.1.1"), RTT: time.Millisecond, ICMP: "time exceeded"},
			{TTL: 2, Addr: netip.MustParseAddr("10.210.2.2"), RTT: 2 * time.Millisecond, ICMP: "time exceeded"},
			{TTL: 3}, {TTL: 4}, {TTL: 5},
		}}
}

func badResult(p fakeProbe) probe.Result {
	return probe.Result{Target: p.Target(), Path: p.path, Start: t0, Duration: time.Second,
		Err:    &probe.Error{Stage: probe.StageDNS, Reason: probe.DNSNXDomain, Err: errors.New("127.0.0.1:53 answered NXDOMAIN")},
		Stages: []probe.StageResult{{Stage: probe.StageDNS, Success: false, Duration: time.Second}}}
}

func TestCollectorExposition(t *testing.T) {
	store := NewStore()
	a, b := fake("a"), fake("b")
	Sync(store, []fakeProbe{a, b})
	store.Record(a.Key(), okResult(a))
	store.Record(b.Key(), badResult(b))
	state := NewState()
	state.Loaded("osaka")
	c := NewCollector(store, state, nil)

	const l = `host="%s.reachd.test",path="direct",port="443",region="jp",target="%s",vendor="acme"`
	la, lb := strings.ReplaceAll(l, "%s", "a"), strings.ReplaceAll(l, "%s", "b")
	want := `
# HELP reachd_probe_success 1 if the last run of the probe passed every stage.
# TYPE reachd_probe_success gauge
reachd_probe_success{` + la + `} 1
reachd_probe_success{` + lb + `} 0
# HELP reachd_probe_failure_reason 1 for the reason of the current failure; absent while the probe succeeds.
# TYPE reachd_probe_failure_reason gauge
reachd_probe_failure_reason{` + lb + `,stage="dns",reason="dns_nxdomain"} 1
# HELP reachd_probe_runs_total Runs of the probe by result.
# TYPE reachd_probe_runs_total counter
reachd_probe_runs_total{` + la + `,result="failure"} 0
reachd_probe_runs_total{` + la + `,result="success"} 1
reachd_probe_runs_total{` + lb + `,result="failure"} 1
reachd_probe_runs_total{` + lb + `,result="success"} 0
# HELP reachd_tls_intercepted 1 if the chain anchors only in a private CA (TLS inspection).
# TYPE reachd_tls_intercepted gauge
reachd_tls_intercepted{` + la + `} 1
# HELP reachd_tls_issuer_info The issuing CA of the leaf certificate.
# TYPE reachd_tls_issuer_info gauge
reachd_tls_issuer_info{` + la + `,issuer="Corp Inspection CA"} 1
# HELP reachd_tls_version_accepted 1 if the last sweep negotiated this TLS version alone.
# TYPE reachd_tls_version_accepted gauge
reachd_tls_version_accepted{` + la + `,version="1.2"} 1
reachd_tls_version_accepted{` + la + `,version="1.3"} 1
# HELP reachd_http_status_code HTTP status of the last response.
# TYPE reachd_http_status_code gauge
reachd_http_status_code{` + la + `} 404
# HELP reachd_http_clock_skew_seconds The server's Date header minus the local clock.
# TYPE reachd_http_clock_skew_seconds gauge
reachd_http_clock_skew_seconds{` + la + `} -2
# HELP reachd_dns_answers Addresses in the answer.
# TYPE reachd_dns_answers gauge
reachd_dns_answers{host="a.reachd.test",qtype="A",region="jp",resolver="corp",target="a",vendor="acme"} 2
reachd_dns_answers{host="a.reachd.test",qtype="AAAA",region="jp",resolver="corp",target="a",vendor="acme"} 0
# HELP reachd_dns_rcode 1 for the rcode of the last answer.
# TYPE reachd_dns_rcode gauge
reachd_dns_rcode{host="a.reachd.test",qtype="A",rcode="NOERROR",region="jp",resolver="corp",target="a",vendor="acme"} 1
reachd_dns_rcode{host="a.reachd.test",qtype="AAAA",rcode="SERVFAIL",region="jp",resolver="corp",target="a",vendor="acme"} 1
# HELP reachd_site_info The site this reachd probes from.
# TYPE reachd_site_info gauge
reachd_site_info{site="osaka"} 1
# HELP reachd_config_last_reload_successful 1 if the last config load succeeded.
# TYPE reachd_config_last_reload_successful gauge
reachd_config_last_reload_successful 1
# HELP reachd_targets Configured probes (target x path).
# TYPE reachd_targets gauge
reachd_targets 2
`
	names := []string{"reachd_probe_success", "reachd_probe_failure_reason", "reachd_probe_runs_total", "reachd_tls_intercepted",
		"reachd_tls_issuer_info", "reachd_tls_version_accepted", "reachd_http_status_code", "reachd_http_clock_skew_seconds",
		"reachd_site_info", "reachd_config_last_reload_successful", "reachd_targets", "reachd_dns_answers", "reachd_dns_rcode"}
	got, err := testutil.CollectAndFormat(c, expfmt.TypeTextPlain, names...)
	if err != nil {
		t.Fatal(err)
	}
	if g, w := samples(string(got)), samples(want); !slices.Equal(g, w) {
		t.Errorf("exposition differs:\ngot:\n%s\nwant:\n%s", strings.Join(g, "\n"), strings.Join(w, "\n"))
	}
	if n := testutil.CollectAndCount(c, "reachd_probe_stage_duration_seconds"); n != 0 {
		t.Errorf("%d stage histograms exported by default; they are opt-in", n)
	}
	if n := testutil.CollectAndCount(c, "reachd_probe_stage_last_duration_seconds"); n != 3 {
		t.Errorf("%d last-run stage gauges, want 3 (a: dns, tcp; b: dns)", n)
	}
	store.SetStageHistograms(true) // the histograms observe the runs from now on
	if n := testutil.CollectAndCount(c, "reachd_probe_stage_duration_seconds"); n != 0 {
		t.Errorf("%d stage histograms before a run was recorded with stage_histograms on, want 0", n)
	}
	store.Record(a.Key(), okResult(a))
	store.Record(b.Key(), badResult(b))
	if n := testutil.CollectAndCount(c, "reachd_probe_stage_duration_seconds"); n != 3 {
		t.Errorf("%d stage histograms with stage_histograms on, want 3", n)
	}
	store.SetStageHistograms(false)
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", err, problems)
	}

	// Removing a probe removes its series; the other keeps its counts (two
	// runs of a).
	Sync(store, []fakeProbe{a})
	if n := testutil.CollectAndCount(c, "reachd_probe_success"); n != 1 {
		t.Errorf("%d reachd_probe_success series after removing b", n)
	}
	text, err := testutil.CollectAndFormat(c, expfmt.TypeTextPlain, "reachd_probe_runs_total")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(samples(string(text)), `reachd_probe_runs_total{host="a.reachd.test",path="direct",port="443",region="jp",result="success",target="a",vendor="acme"} 2`) {
		t.Errorf("a's success count lost after a reload that kept it:\n%s", text)
	}
}

// samples returns the sample lines of an exposition with each line's
// labels sorted, sorted: label order is not part of the format.
func samples(text string) []string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i, j := strings.IndexByte(line, '{'), strings.LastIndexByte(line, '}'); i > 0 && j > i {
			labels := strings.Split(line[i+1:j], ",")
			slices.Sort(labels)
			line = line[:i+1] + strings.Join(labels, ",") + line[j:]
		}
		out = append(out, line)
	}
	slices.Sort(out)
	return out
}

func TestStoreKeepsUnchangedAndResetsChanged(t *testing.T) {
	store := NewStore()
	a, b := fake("a"), fake("b")
	Sync(store, []fakeProbe{a, b})
	store.Record(a.Key(), okResult(a))
	store.Record(b.Key(), okResult(b))
	b.version = "v2"
	Sync(store, []fakeProbe{a, b})
	store.Range(func(e *Entry) {
		switch e.Key {
		case a.Key():
			if e.Last == nil || len(e.History) != 1 {
				t.Errorf("unchanged probe lost its history: %+v", e)
			}
		case b.Key():
			if e.Last != nil {
				t.Errorf("changed probe kept the old result")
			}
		}
	})
	if tr := store.Record("gone/x/y/direct", okResult(a)); tr.Known {
		t.Error("a result for a removed probe was stored")
	}
	tr := store.Record(a.Key(), badResult(a))
	if !tr.Changed {
		t.Error("up to down is not a change")
	}
}

func TestServerEndpoints(t *testing.T) {
	store := NewStore()
	a := fake("a<script>")
	a.t.Name = "a<script>alert(1)</script>"
	Sync(store, []fakeProbe{a})
	state := NewState()
	reloads := 0
	srv := NewServer(store, state, ServerOptions{Reload: func() error { reloads++; return nil }, Logger: slog.New(slog.DiscardHandler)})
	h := srv.Handler()
	get := func(method, path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
		body, _ := io.ReadAll(rec.Result().Body)
		return rec.Code, string(body)
	}
	if code, _ := get("GET", "/-/ready"); code != http.StatusServiceUnavailable {
		t.Errorf("/-/ready before a config ran: %d", code)
	}
	state.Loaded("osaka")
	store.Record(a.Key(), badResult(a))
	if code, _ := get("GET", "/-/ready"); code != http.StatusOK {
		t.Errorf("/-/ready: %d", code)
	}
	if code, _ := get("GET", "/-/healthy"); code != http.StatusOK {
		t.Errorf("/-/healthy: %d", code)
	}
	if code, _ := get("POST", "/-/reload"); code != http.StatusForbidden || reloads != 0 {
		t.Errorf("/-/reload without lifecycle: %d, %d reloads", code, reloads)
	}
	code, page := get("GET", "/")
	if code != 200 || !strings.Contains(page, "dns_nxdomain") || strings.Contains(page, "<script>alert") || !strings.Contains(page, "&lt;script&gt;") {
		t.Errorf("status page %d: escaped name or reason missing", code)
	}
	code, body := get("GET", "/api/v1/results")
	var rep Report
	if err := json.Unmarshal([]byte(body), &rep); err != nil || code != 200 {
		t.Fatalf("/api/v1/results %d: %v", code, err)
	}
	if len(rep.Results) != 1 || rep.Results[0].Reason != "dns_nxdomain" || rep.Results[0].Hint == "" || rep.Site != "osaka" {
		t.Errorf("report %+v", rep)
	}
	if code, body := get("GET", "/metrics"); code != 200 || !strings.Contains(body, "reachd_build_info") {
		t.Errorf("/metrics %d lacks build info", code)
	}

	life := NewServer(store, state, ServerOptions{Lifecycle: true, Reload: func() error { return errors.New("reachd.toml:3: bad") }, Logger: slog.New(slog.DiscardHandler)}).Handler()
	rec := httptest.NewRecorder()
	life.ServeHTTP(rec, httptest.NewRequest("POST", "/-/reload", nil))
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), "reachd.toml:3: bad") {
		t.Errorf("failed reload answered %d %q", rec.Code, rec.Body.String())
	}
}

func TestReportJSONShape(t *testing.T) {
	a := fake("a")
	ok, bad := okResult(a), badResult(a)
	data, err := json.Marshal(NewReport("osaka", t0, []*probe.Result{&ok, &bad}))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	json.Unmarshal(data, &doc)
	if doc["started"] != "2026-11-22T06:00:00Z" || doc["site"] != "osaka" {
		t.Errorf("header %v %v", doc["started"], doc["site"])
	}
	results := doc["results"].([]any)
	first, second := results[0].(map[string]any), results[1].(map[string]any)
	if first["port"] != 443.0 || first["stage"] != "" || first["reason"] != "" || first["success"] != true {
		t.Errorf("success entry %v", first)
	}
	tl := first["tls"].(map[string]any)
	if tl["version"] != "1.3" || tl["not_after"] != "2026-11-23T06:00:00Z" || tl["versions_accepted"].(map[string]any)["1.2"] != true {
		t.Errorf("tls %v", tl)
	}
	if second["stage"] != "dns" || second["reason"] != "dns_nxdomain" || second["tls"] != nil || second["detail"] != "127.0.0.1:53 answered NXDOMAIN" {
		t.Errorf("failure entry %v", second)
	}
	if _, ok := doc["dns"].([]any); !ok {
		t.Errorf("dns is %T, want an array", doc["dns"])
	}
}
