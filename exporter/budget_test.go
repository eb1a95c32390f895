package exporter

import (
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/reachd/reachd/probe"
)

// SeriesBudget is DESIGN §7's bound on the samples one direct
// dns+tcp+tls+http probe exports by default, besides its DNS series.
const SeriesBudget = 25

// TestSeriesBudget counts the samples /metrics exports for one full probe
// that passed every stage after a sweep of all four versions, and one that
// failed after failing in two other ways before: the worst case a steady
// probe reaches. The DNS series (per resolver and query type) are counted
// apart, as the budget does.
func TestSeriesBudget(t *testing.T) {
	full := func(p fakeProbe) probe.Result {
		r := okResult(p)
		r.Stages = []probe.StageResult{
			{Stage: probe.StageDNS, Success: true, Duration: time.Millisecond},
			{Stage: probe.StageTCP, Success: true, Duration: time.Millisecond},
			{Stage: probe.StageTLS, Success: true, Duration: time.Millisecond},
			{Stage: probe.StageHTTP, Success: true, Duration: time.Millisecond},
		}
		r.TLS.Accepted = map[uint16]bool{0x0301: false, 0x0302: false, 0x0303: true, 0x0304: true}
		r.Revocation = []probe.RevocationCheck{
			{Kind: probe.RevocationOCSP, URL: "http://ocsp.reachd.test", Reachable: true},
			{Kind: probe.RevocationCRL, URL: "http://crl.reachd.test/ca.crl", Reachable: true},
			{Kind: probe.RevocationAIA, URL: "http://crt.reachd.test/ca.crt", Reachable: true},
		}
		return r
	}
	for _, tt := range []struct {
		name    string
		results func(p fakeProbe) []probe.Result
	}{
		{"passing", func(p fakeProbe) []probe.Result { return []probe.Result{full(p)} }},
		{"failing at http after two other failures", func(p fakeProbe) []probe.Result {
			tcp, tls, http := full(p), full(p), full(p)
			tcp.Err = &probe.Error{Stage: probe.StageTCP, Reason: probe.TCPTimeout}
			tls.Err = &probe.Error{Stage: probe.StageTLS, Reason: probe.TLSUntrustedCA}
			http.Err = &probe.Error{Stage: probe.StageHTTP, Reason: probe.HTTPStatusUnexpected}
			return []probe.Result{full(p), tcp, tls, http}
		}},
		{"failing at tcp with a path trace", func(p fakeProbe) []probe.Result {
			tcp := probe.Result{Target: p.Target(), Path: p.path, Start: t0, Duration: time.Second,
				Err:    &probe.Error{Stage: probe.StageTCP, Reason: probe.TCPTimeout},
				Stages: []probe.StageResult{{Stage: probe.StageDNS, Success: true}, {Stage: probe.StageTCP}},
				DNS:    full(p).DNS, Trace: testTrace()}
			return []probe.Result{full(p), tcp}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			store := NewStore()
			p := fake("a")
			Sync(store, []fakeProbe{p})
			for _, r := range tt.results(p) {
				store.Record(p.Key(), r)
			}
			if e := store.entries[p.Key()]; len(e.Stages) > 0 {
				t.Errorf("%d stage histograms kept while they are not exported (memory for nothing)", len(e.Stages))
			}
			state := NewState()
			state.Loaded("osaka")
			rec := httptest.NewRecorder()
			NewServer(store, state, ServerOptions{Logger: slog.New(slog.DiscardHandler)}).Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
			parser := expfmt.NewTextParser(model.LegacyValidation)
			mfs, err := parser.TextToMetricFamilies(strings.NewReader(rec.Body.String()))
			if err != nil {
				t.Fatal(err)
			}
			probeSamples, dnsSamples, revocationSamples := 0, 0, 0
			for _, mf := range mfs {
				for _, m := range mf.Metric {
					n := 1
					if m.Histogram != nil {
						n = len(m.Histogram.Bucket) + 2
					}
					var isProbe, isDNS, isRevocation bool
					for _, lp := range m.Label {
						isProbe = isProbe || lp.GetName() == "path"
						isDNS = isDNS || lp.GetName() == "resolver"
						isRevocation = isRevocation || lp.GetName() == "kind"
					}
					switch {
					case isDNS:
						dnsSamples += n
					case isRevocation: // per URL of the chain, counted apart like DNS
						revocationSamples += n
					case isProbe:
						probeSamples += n
					}
				}
			}
			if probeSamples > SeriesBudget {
				t.Errorf("one probe exports %d samples by default, over the budget of %d", probeSamples, SeriesBudget)
			}
			if probeSamples < 12 {
				t.Errorf("only %d per-probe samples: the count missed families", probeSamples)
			}
			if dnsSamples != 8 { // success, duration, answers and rcode, for A and for AAAA
				t.Errorf("%d DNS samples, want 8", dnsSamples)
			}
			if wantRev := len(tt.results(p)[len(tt.results(p))-1].Revocation); revocationSamples != wantRev {
				t.Errorf("%d revocation samples, want %d (one per URL)", revocationSamples, wantRev)
			}
			t.Logf("%s: %d per-probe samples, %d DNS samples, %d revocation samples", tt.name, probeSamples, dnsSamples, revocationSamples)
		})
	}
}
