package exporter

import (
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/reachd/reachd/probe"
)

// benchStore holds n probes, each with what the daemon keeps for a passing
// direct dns+tcp+tls+http probe: four stages, a sweep of all four TLS
// versions, an HTTP status and clock skew, and an A and an AAAA answer of
// one resolver, about 3.8 KB of /metrics per probe. Every run is a result
// of its own with measured (not round) durations, and the last round is
// recorded in an order unrelated to the keys', as probes finish in the
// daemon, so that a scrape walks results scattered over the heap.
func benchStore(b testing.TB, n int) *Store {
	b.Helper()
	store := NewStore()
	probes := make([]fakeProbe, n)
	for i := range probes {
		probes[i] = fake(fmt.Sprintf("t%05d", i))
	}
	Sync(store, probes)
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 3 {
		for _, i := range rng.Perm(n) {
			store.Record(probes[i].Key(), benchResult(probes[i], round, rng))
		}
	}
	return store
}

// benchResult is one passing run of p.
func benchResult(p fakeProbe, round int, rng *rand.Rand) probe.Result {
	ms := func(base int) time.Duration {
		return time.Duration(base)*time.Millisecond + time.Duration(rng.IntN(1e6))
	}
	start := t0.Add(time.Duration(round)*5*time.Minute + time.Duration(rng.Int64N(int64(5*time.Minute))))
	stages := []probe.StageResult{
		{Stage: probe.StageDNS, Success: true, Duration: ms(2)},
		{Stage: probe.StageTCP, Success: true, Duration: ms(15)},
		{Stage: probe.StageTLS, Success: true, Duration: ms(40)},
		{Stage: probe.StageHTTP, Success: true, Duration: ms(60)},
	}
	var total time.Duration
	for _, st := range stages {
		total += st.Duration
	}
	return probe.Result{Target: p.Target(), Path: p.path, Version: p.version, Start: start, Duration: total, Stages: stages,
		TLS: &probe.TLSInfo{Version: 0x0304, Cipher: "TLS_AES_128_GCM_SHA256", Issuer: "R11",
			NotAfter: time.Date(2027, 3, 14, 23, 59, 59, 0, time.UTC), Accepted: map[uint16]bool{0x0301: false, 0x0302: false, 0x0303: true, 0x0304: true}},
		HTTP: &probe.HTTPInfo{Status: 200, ClockSkew: -time.Duration(rng.Int64N(int64(time.Second))), HasDate: true},
		DNS: []probe.DNSResult{
			{Resolver: "corp", QType: "A", Success: true, Rcode: "NOERROR", Answers: []string{"192.0.2.1", "192.0.2.2"}, Duration: ms(1), Source: "10.0.0.53"},
			{Resolver: "corp", QType: "AAAA", Success: true, Rcode: "NOERROR", Duration: ms(1), Source: "10.0.0.53"},
		}}
}

// BenchmarkScrape10k is a whole GET /metrics of 10,000 probes, as
// Prometheus sees it (text format, no compression).
func BenchmarkScrape10k(b *testing.B) {
	store := benchStore(b, 10000)
	state := NewState()
	state.Loaded("bench")
	h := NewServer(store, state, ServerOptions{Logger: slog.New(slog.DiscardHandler)}).Handler()
	req := httptest.NewRequest("GET", "/metrics", nil)
	w := &countingWriter{header: http.Header{}}
	h.ServeHTTP(w, req) // the first scrape allocates the scratch the others reuse
	b.ReportAllocs()
	for b.Loop() {
		w.n = 0
		h.ServeHTTP(w, req)
	}
	b.ReportMetric(float64(w.n)/1e6, "MB/scrape")
}

// BenchmarkScrape10kSocket is BenchmarkScrape10k over a loopback
// connection, as the daemon serves it: the body goes through the socket,
// and the time is the client's, until it has read the last byte (its
// reading takes a share of the two cores too).
func BenchmarkScrape10kSocket(b *testing.B) {
	store := benchStore(b, 10000)
	state := NewState()
	state.Loaded("bench")
	srv := httptest.NewServer(NewServer(store, state, ServerOptions{Logger: slog.New(slog.DiscardHandler)}).Handler())
	b.Cleanup(srv.Close)
	get := func() int64 {
		resp, err := srv.Client().Get(srv.URL + "/metrics")
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		n, err := io.Copy(io.Discard, resp.Body)
		if err != nil {
			b.Fatal(err)
		}
		return n
	}
	get()
	var n int64
	for b.Loop() {
		n = get()
	}
	b.ReportMetric(float64(n)/1e6, "MB/scrape")
}

// countingWriter is a ResponseWriter that counts and drops the body, as a
// socket would take it.
type countingWriter struct {
	header http.Header
	n      int
}

func (w *countingWriter) Header() http.Header         { return w.header }
func (w *countingWriter) WriteHeader(int)             {}
func (w *countingWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }

// BenchmarkCollect10k is the collector alone: the const metrics of 10,000
// probes, without encoding.
func BenchmarkCollect10k(b *testing.B) {
	store := benchStore(b, 10000)
	c := NewCollector(store, NewState(), nil)
	b.ReportAllocs()
	for b.Loop() {
		ch := make(chan prometheus.Metric, 4096)
		go func() { c.Collect(ch); close(ch) }()
		for range ch {
		}
	}
}

// BenchmarkResults10k is a whole GET /api/v1/results of 10,000 probes:
// the document is streamed, so what a call allocates is its garbage,
// not the document held whole.
func BenchmarkResults10k(b *testing.B) {
	store := benchStore(b, 10000)
	state := NewState()
	state.Loaded("bench")
	h := NewServer(store, state, ServerOptions{Logger: slog.New(slog.DiscardHandler)}).Handler()
	req := httptest.NewRequest("GET", "/api/v1/results", nil)
	w := &countingWriter{header: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		w.n = 0
		h.ServeHTTP(w, req)
	}
	b.ReportMetric(float64(w.n)/1e6, "MB/call")
}
