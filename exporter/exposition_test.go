package exporter

import (
	"fmt"
	"log/slog"
	"math"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// flatten turns metric families into sorted "name{sorted labels} value"
// lines, histograms expanded into their bucket, sum and count samples.
func flatten(mfs map[string]*dto.MetricFamily) []string {
	var out []string
	for name, mf := range mfs {
		for _, m := range mf.Metric {
			var labels []string
			for _, lp := range m.Label {
				labels = append(labels, fmt.Sprintf("%s=%q", lp.GetName(), lp.GetValue()))
			}
			line := func(suffix string, extra []string, v float64) {
				l := slices.Concat(labels, extra)
				sort.Strings(l)
				out = append(out, fmt.Sprintf("%s%s{%s} %g", name, suffix, strings.Join(l, ","), v))
			}
			switch {
			case m.Gauge != nil:
				line("", nil, m.Gauge.GetValue())
			case m.Counter != nil:
				line("", nil, m.Counter.GetValue())
			case m.Histogram != nil:
				for _, b := range m.Histogram.Bucket {
					if math.IsInf(b.GetUpperBound(), 1) {
						continue // the text parser keeps it, client_golang leaves it implicit
					}
					line("_bucket", []string{fmt.Sprintf("le=%q", fmt.Sprint(b.GetUpperBound()))}, float64(b.GetCumulativeCount()))
				}
				line("_bucket", []string{`le="+Inf"`}, float64(m.Histogram.GetSampleCount()))
				line("_sum", nil, m.Histogram.GetSampleSum())
				line("_count", nil, float64(m.Histogram.GetSampleCount()))
			}
		}
	}
	sort.Strings(out)
	return out
}

func TestExpositionMatchesCollector(t *testing.T) {
	for _, histograms := range []bool{false, true} {
		t.Run(fmt.Sprintf("stage_histograms=%v", histograms), func(t *testing.T) { testExpositionMatchesCollector(t, histograms) })
	}
}

func testExpositionMatchesCollector(t *testing.T, histograms bool) {
	store := NewStore()
	store.SetStageHistograms(histograms)
	a, b, c := fake("a"), fake("b"), fake("hostile")
	c.t.Host = `evil"host\name` + "\n"
	c.path = `corp "proxy"`
	Sync(store, []fakeProbe{a, b, c})
	store.Record(a.Key(), okResult(a))
	store.Record(b.Key(), badResult(b))
	store.Record(b.Key(), badResult(b))
	hostile := okResult(c)
	hostile.TLS.Issuer = `CN with "quotes" and \ backslash` + "\nnewline"
	store.Record(c.Key(), hostile)
	state := NewState()
	state.Loaded("osaka")

	h := NewServer(store, state, ServerOptions{Logger: slog.New(slog.DiscardHandler)}).Handler()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	parser := expfmt.NewTextParser(model.LegacyValidation)
	scraped, err := parser.TextToMetricFamilies(strings.NewReader(rec.Body.String()))
	if err != nil {
		t.Fatalf("/metrics is not valid exposition text: %v", err)
	}

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector(store, state, nil))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		want[mf.GetName()] = mf
		if got := scraped[mf.GetName()]; got == nil || got.GetHelp() != mf.GetHelp() || got.GetType() != mf.GetType() {
			t.Errorf("%s: help or type differ: %v", mf.GetName(), got)
		}
	}
	for name := range scraped {
		if want[name] == nil && strings.HasPrefix(name, "reachd_") && name != "reachd_build_info" {
			t.Errorf("/metrics has %s, the collector has not", name)
		}
		if want[name] == nil {
			delete(scraped, name) // Go and process metrics
		}
	}
	if g, w := flatten(scraped), flatten(want); !slices.Equal(g, w) {
		t.Errorf("samples differ\n/metrics:\n%s\ncollector:\n%s", strings.Join(g, "\n"), strings.Join(w, "\n"))
	}

	// A new result re-renders only that entry; a removed probe vanishes.
	store.Record(a.Key(), badResult(a))
	Sync(store, []fakeProbe{a, c})
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	if strings.Contains(body, `target="b"`) || !strings.Contains(body, `reachd_probe_failure_reason{vendor="acme",region="jp",target="a"`) {
		t.Errorf("after a new result and a removal:\n%s", body)
	}
}
