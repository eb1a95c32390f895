package exporter

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/reachd/reachd/probe"
)

// benchStore holds n probes, each with a realistic full result and a few
// runs of stage history.
func benchStore(b *testing.B, n int) *Store {
	b.Helper()
	store := NewStore()
	probes := make([]fakeProbe, n)
	for i := range probes {
		probes[i] = fake(fmt.Sprintf("t%05d", i))
	}
	Sync(store, probes)
	for _, p := range probes {
		r := okResult(p)
		r.Stages = append(r.Stages, probe.StageResult{Stage: probe.StageTLS, Success: true}, probe.StageResult{Stage: probe.StageHTTP, Success: true})
		for range 3 {
			store.Record(p.Key(), r)
		}
	}
	return store
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
	b.ReportAllocs()
	for b.Loop() {
		w.n = 0
		h.ServeHTTP(w, req)
	}
	b.ReportMetric(float64(w.n)/1e6, "MB/scrape")
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
