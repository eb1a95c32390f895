package main

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/reachd/reachd/configs"
	"github.com/reachd/reachd/exporter"
	"github.com/reachd/reachd/probe"
	"github.com/reachd/reachd/probe/probetest"
	"github.com/reachd/reachd/targets"
)

// scraper reads /metrics of one daemon through its handler.
type scraper struct{ h http.Handler }

func (s scraper) get(t *testing.T, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	s.h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	return rec.Code, rec.Body.String()
}

func (s scraper) metrics(t *testing.T) string {
	t.Helper()
	code, body := s.get(t, "/metrics")
	if code != 200 {
		t.Fatalf("/metrics answered %d", code)
	}
	return body
}

var runsRE = regexp.MustCompile(`(?m)^reachd_probe_runs_total\{([^}]*)\} (\S+)$`)

// runs returns reachd_probe_runs_total by target and result
// ("keep-open/failure").
func runs(t *testing.T, metrics string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, m := range runsRE.FindAllStringSubmatch(metrics, -1) {
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			t.Fatalf("runs_total %q: %v", m[0], err)
		}
		out[label(m[1], "target")+"/"+label(m[1], "result")] = v
	}
	return out
}

// sample returns the value of the first sample of metric whose labels
// include every name, value pair given.
func sample(metrics, metric string, pairs ...string) (float64, bool) {
lines:
	for _, line := range strings.Split(metrics, "\n") {
		labels, rest, ok := strings.Cut(strings.TrimPrefix(line, metric+"{"), "} ")
		if !ok || !strings.HasPrefix(line, metric+"{") {
			continue
		}
		for i := 0; i+1 < len(pairs); i += 2 {
			if label(labels, pairs[i]) != pairs[i+1] {
				continue lines
			}
		}
		v, err := strconv.ParseFloat(rest, 64)
		return v, err == nil
	}
	return 0, false
}

func label(labels, name string) string {
	for _, kv := range strings.Split(labels, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

func closedTCPPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// stormConfig is a loopback config: two targets every valid reload keeps
// as they are, and one that changes with each reload.
func stormConfig(open, closed, i int) string {
	return fmt.Sprintf(`site = "storm"
[defaults]
interval = "1s"
timeout = "500ms"

[[resolver]]
name = "lab"
servers = ["127.0.0.1:1"]

[[target]]
name = "keep-open"
host = "127.0.0.1"
port = %d
checks = ["tcp"]

[[target]]
name = "keep-closed"
host = "127.0.0.1"
port = %d
checks = ["tcp"]

[[target]]
name = "churn-%d"
host = "127.0.0.1"
port = %d
checks = ["dns", "tcp"]
`, open, closed, i, closed)
}

// invalid breaks a config in one of several ways; every one must leave
// the running config alone.
var invalid = []struct{ name, extra, want string }{
	{"unknown key", "colour = \"red\"\n", `unknown key "target.colour"`},
	{"bad duration", "interval = \"often\"\n", `interval: "often" is not a duration`},
	{"duplicate target", "[[target]]\nname = \"keep-open\"\nhost = \"127.0.0.1\"\n", "duplicate target local/local/keep-open"},
	{"unknown path", "paths = [\"nowhere\"]\n", `unknown path "nowhere"`},
	{"syntax", "port = \n", "reachd.toml:"},
}

func TestReloadStorm(t *testing.T) {
	open, closed := probetest.NewTarpit(t).Port, closedTCPPort(t)
	ignore := goleak.IgnoreCurrent() // the tarpit's goroutines end at cleanup
	dir := t.TempDir()
	file := writeFile(t, dir, "reachd.toml", stormConfig(open, closed, 0))
	d, err := startDaemon(file, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			d.sched.Stop()
		}
	}()
	s := scraper{d.server(true).Handler()}

	// Readers of every view keep going during the storm.
	done := make(chan struct{})
	var readers sync.WaitGroup
	for _, path := range []string{"/metrics", "/", "/api/v1/results"} {
		readers.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				rec := httptest.NewRecorder()
				s.h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
				if rec.Code != 200 {
					t.Errorf("%s answered %d during the storm", path, rec.Code)
					return
				}
				time.Sleep(time.Millisecond)
			}
		})
	}

	prev := runs(t, s.metrics(t))
	good := 0 // the churn target of the config that serves
	failed := 0
	start := time.Now()
	for i := 1; i <= 100; i++ {
		body := stormConfig(open, closed, i)
		bad := i%3 == 0
		var want string
		if bad {
			inv := invalid[(i/3)%len(invalid)]
			body += inv.extra
			want = inv.want
		}
		writeFile(t, dir, "reachd.toml", body)
		err := d.reload()
		switch {
		case bad && (err == nil || !strings.Contains(err.Error(), want)):
			t.Fatalf("reload %d: got %v, want an error with %q", i, err, want)
		case bad:
			failed++
		case err != nil:
			t.Fatalf("reload %d of a valid config: %v", i, err)
		default:
			good = i
		}

		m := s.metrics(t)
		wantOK := "reachd_config_last_reload_successful " + map[bool]string{true: "0", false: "1"}[bad]
		if !strings.Contains(m, wantOK+"\n") {
			t.Fatalf("reload %d: lacks %q", i, wantOK)
		}
		now := runs(t, m)
		for _, key := range []string{"keep-open/success", "keep-open/failure", "keep-closed/success", "keep-closed/failure", fmt.Sprintf("churn-%d/failure", good)} {
			v, ok := now[key]
			if !ok {
				t.Fatalf("reload %d: the series of %s vanished", i, key)
			}
			if strings.HasPrefix(key, "keep-") && v < prev[key] {
				t.Fatalf("reload %d: %s went from %v to %v: the unchanged probe was reset", i, key, prev[key], v)
			}
		}
		if n := len(now); n != 6 {
			t.Fatalf("reload %d: %d runs_total series, want 6 (3 targets x 2 results): %v", i, n, now)
		}
		prev = now
		time.Sleep(20 * time.Millisecond) // let probes run between reloads
	}
	storm := time.Since(start)
	close(done)
	readers.Wait()

	// The unchanged probes ran through the storm, on their own loops.
	final := runs(t, s.metrics(t))
	if final["keep-open/success"] < 1 || final["keep-closed/failure"] < 1 {
		t.Errorf("the unchanged probes did not run during the storm: %v", final)
	}
	t.Logf("100 reloads (%d invalid) with probes and readers running in %v; keep-open ran %v times, keep-closed %v times",
		failed, storm.Round(time.Millisecond), final["keep-open/success"], final["keep-closed/failure"])

	d.sched.Stop()
	stopped = true
	goleak.VerifyNone(t, ignore)
}

// lockedBuffer is a log sink that probe goroutines may write to at once.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestPanickingProbeIsLoggedAndDaemonServes builds a config in code with a
// target no config file can produce: a zero regexp.Regexp as its body
// check, which panics in the http stage of every run.
func TestPanickingProbeIsLoggedAndDaemonServes(t *testing.T) {
	srv := probetest.NewHTTPServer(t, nil)
	tg := func(name string, checks []string) targets.Target {
		return targets.Target{Vendor: "lab", Region: "test", Name: name, Host: "127.0.0.1", Port: srv.Port, Checks: checks,
			Paths: []string{configs.DirectPath}, TLSMinVersion: tls.VersionTLS12, Interval: time.Second, Timeout: time.Second,
			HTTP: targets.HTTPCheck{Path: "/", ExpectBody: new(regexp.Regexp)}}
	}
	cfg := &configs.Config{
		Site:      "panic-test",
		Defaults:  configs.Defaults{Interval: time.Second, Timeout: time.Second, TLSMinVersion: tls.VersionTLS12, TLSSweepInterval: time.Hour, Concurrency: 4},
		Resolvers: []configs.Resolver{{Name: "lab", Servers: []string{"127.0.0.1:1"}, Protocol: "udp"}},
		Paths:     []configs.Path{{Name: configs.DirectPath}},
		Targets:   []targets.Target{tg("buggy", []string{"tcp", "http"}), tg("fine", []string{"tcp"})},
	}
	var logs lockedBuffer
	d := &daemon{logger: slog.New(slog.NewTextHandler(&logs, nil)), store: exporter.NewStore(), state: exporter.NewState(),
		sched: probe.NewScheduler(cfg.Defaults.Concurrency)}
	defer d.sched.Stop()
	d.apply(cfg)
	s := scraper{d.server(false).Handler()}

	// Two panics prove the probe's loop goes on after the first.
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(logs.String(), "probe panicked") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no two panics logged in 10s:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	log := logs.String()
	for _, want := range []string{"probe=lab/test/buggy/direct", "nil pointer dereference", "regexp.(*Regexp)", "probe.(*httpProber).do"} {
		if !strings.Contains(log, want) {
			t.Errorf("the panic's log lacks %q:\n%s", want, log)
		}
	}
	m := s.metrics(t)
	if v, ok := sample(m, "reachd_probe_failure_reason", "target", "buggy", "stage", "internal", "reason", "internal"); v != 1 || !ok {
		t.Errorf("buggy: no reachd_probe_failure_reason with reason internal")
	}
	if v, ok := sample(m, "reachd_probe_success", "target", "fine"); v != 1 || !ok {
		t.Errorf("fine: reachd_probe_success %v, want 1: the healthy probe beside the panicking one must pass", v)
	}
	if r := runs(t, m); r["buggy/failure"] < 2 {
		t.Errorf("buggy ran %v times, want at least 2", r["buggy/failure"])
	}
	for _, path := range []string{"/-/healthy", "/-/ready", "/", "/api/v1/results"} {
		if code, _ := s.get(t, path); code != 200 {
			t.Errorf("%s answered %d after the panics", path, code)
		}
	}
	// The stack goes to the log only, never to a page.
	if _, page := s.get(t, "/api/v1/results"); strings.Contains(page, "goroutine ") || strings.Contains(page, "regexp.(*Regexp)") {
		t.Errorf("the JSON shows the stack")
	}
}

// manyTargets is a config of n loopback targets, tcp only, on ports below
// the ephemeral range (where other tests' servers listen), so a run is a
// refused connect that touches no one.
func manyTargets(n int) string {
	var b strings.Builder
	b.WriteString("site = \"big\"\n[defaults]\ninterval = \"5m\"\ntimeout = \"2s\"\n\n[[resolver]]\nname = \"lab\"\nservers = [\"127.0.0.1:1\"]\n")
	for i := range n {
		fmt.Fprintf(&b, "\n[[target]]\nname = \"t-%05d\"\nhost = \"127.0.0.1\"\nport = %d\nchecks = [\"tcp\"]\n", i, 2000+i%20000)
	}
	return b.String()
}

func heapMB() float64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapAlloc) / (1 << 20)
}

// TestTenThousandTargets loads, applies, scrapes and reloads a config of
// 10,000 targets. It logs its figures; it asserts no wall-clock time.
func TestTenThousandTargets(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 targets: not in -short")
	}
	const n = 10000
	ignore := goleak.IgnoreCurrent()
	dir := t.TempDir()
	file := writeFile(t, dir, "reachd.toml", manyTargets(n))
	heap0 := heapMB()

	start := time.Now()
	if _, err := configs.Load(file, configs.Options{}); err != nil {
		t.Fatal(err)
	}
	load := time.Since(start)

	start = time.Now()
	d, err := startDaemon(file, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	loadApply := time.Since(start)
	stopped := false
	defer func() {
		if !stopped {
			d.sched.Stop()
		}
	}()
	heap1 := heapMB()
	s := scraper{d.server(true).Handler()}

	start = time.Now()
	m := s.metrics(t)
	scrape := time.Since(start)
	size := len(m)
	before := runs(t, m)
	if len(before) != 2*n {
		t.Fatalf("%d runs_total series, want %d", len(before), 2*n)
	}

	// Let a share of the first runs (all within 10 s of the start) happen,
	// so that a reset would show.
	time.Sleep(3 * time.Second)
	before = runs(t, s.metrics(t))
	ran := 0
	for k, v := range before {
		if v > 0 && strings.HasSuffix(k, "/failure") {
			ran++
		}
	}

	heapRan := heapMB()
	start = time.Now()
	if err := d.reload(); err != nil {
		t.Fatal(err)
	}
	reload := time.Since(start)
	heapReload := heapMB()
	after := runs(t, s.metrics(t))
	if len(after) != 2*n {
		t.Fatalf("after an unchanged reload: %d runs_total series, want %d", len(after), 2*n)
	}
	for k, v := range before {
		if after[k] < v {
			t.Fatalf("%s went from %v to %v over an unchanged reload: the probe was rebuilt", k, v, after[k])
		}
	}

	writeFile(t, dir, "reachd.toml", manyTargets(n/2))
	start = time.Now()
	if err := d.reload(); err != nil {
		t.Fatal(err)
	}
	shrink := time.Since(start)
	m = s.metrics(t)
	half := runs(t, m)
	if len(half) != n || strings.Contains(m, `target="t-05000"`) || !strings.Contains(m, `target="t-04999"`) {
		t.Fatalf("after removing half: %d runs_total series, want %d, and t-05000 gone", len(half), n)
	}
	heap2 := heapMB()

	start = time.Now()
	d.sched.Stop()
	stopped = true
	stop := time.Since(start)
	goleak.VerifyNone(t, ignore)

	t.Logf("%d targets: load %v; load+apply %v; heap %.1f MB -> %.1f MB (%.1f KB per probe)", n, load.Round(time.Millisecond),
		loadApply.Round(time.Millisecond), heap0, heap1, (heap1-heap0)*1024/n)
	t.Logf("first scrape %v, %d KB of /metrics; %d of %d probes had run before the unchanged reload, which took %v and reset none",
		scrape.Round(time.Millisecond), size/1024, ran, n, reload.Round(time.Millisecond))
	t.Logf("heap with results %.1f MB, after the unchanged reload %.1f MB", heapRan, heapReload)
	t.Logf("removing half took %v (heap %.1f MB); stopping the scheduler %v", shrink.Round(time.Millisecond), heap2, stop.Round(time.Millisecond))
}
