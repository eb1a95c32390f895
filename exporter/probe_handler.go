package exporter

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/reachd/reachd/probe"
)

// ProbeFunc runs the configured probe named key
// ("vendor/region/target/path") once, now. ok is false when no such
// probe is configured (any more).
type ProbeFunc func(ctx context.Context, key string) (r probe.Result, ok bool)

// ProbeConcurrency bounds the /probe requests that run at once; more are
// answered 503 at once rather than queued behind slow probes.
const ProbeConcurrency = 4

// scrapeTimeoutMargin is kept from Prometheus' scrape timeout so that the
// answer arrives before Prometheus gives up.
const scrapeTimeoutMargin = 500 * time.Millisecond

// probeNow serves /probe?target=vendor/region/name[&path=name] (or the
// bare name when only one target has it): it runs
// that configured probe now and answers its metrics, blackbox-exporter
// style. Only configured probes run: the parameters select one, they never
// name a host, so /probe cannot be used to reach anything else.
func (s *Server) probeNow(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	target := q.Get("target")
	if target == "" {
		http.Error(w, "missing the target parameter: /probe?target=<vendor>/<region>/<name>[&path=<path>] (see /api/v1/targets)", http.StatusBadRequest)
		return
	}
	if !strings.Contains(target, "/") { // a bare name, as reachd check --target takes
		ids := s.targetIDs(target)
		switch len(ids) {
		case 0:
			http.Error(w, "no configured probe of target "+strconv.Quote(target)+": no configured target has this name (see "+s.external+"/api/v1/targets)", http.StatusNotFound)
			return
		case 1:
			target = ids[0]
		default:
			http.Error(w, "target name "+strconv.Quote(target)+" is ambiguous: it names "+strings.Join(ids, ", ")+"; give vendor/region/name", http.StatusBadRequest)
			return
		}
	}
	key, ok := s.store.probeKey(target, q.Get("path"))
	if !ok || s.probe == nil {
		http.Error(w, "no configured probe of target "+strconv.Quote(target)+pathNote(q.Get("path"))+" (see /api/v1/targets)", http.StatusNotFound)
		return
	}
	select {
	case s.probeSem <- struct{}{}:
		defer func() { <-s.probeSem }()
	default:
		w.Header().Set("Retry-After", "1")
		http.Error(w, "too many /probe requests in flight; try again", http.StatusServiceUnavailable)
		return
	}
	ctx := r.Context()
	if v, err := strconv.ParseFloat(r.Header.Get("X-Prometheus-Scrape-Timeout-Seconds"), 64); err == nil && v > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, max(time.Duration(v*float64(time.Second))-scrapeTimeoutMargin, scrapeTimeoutMargin))
		defer cancel()
	}
	res, ok := s.probe(ctx, key)
	if !ok {
		http.Error(w, "probe "+strconv.Quote(key)+" is no longer configured", http.StatusNotFound)
		return
	}
	s.logger.Debug("probe on demand", "probe", key, "success", res.Success(), "took", res.Duration)
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(storeOf(key, res), s.state, nil))
	promhttp.HandlerFor(probeGatherer{reg}, promhttp.HandlerOpts{}).ServeHTTP(w, r)
}

// targetIDs are the vendor/region/name of the configured targets named name.
func (s *Server) targetIDs(name string) []string {
	var ids []string
	for _, p := range s.store.Probes() {
		if id := p.Vendor + "/" + p.Region + "/" + p.Target; p.Target == name && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return ids
}

func pathNote(path string) string {
	if path == "" {
		return ""
	}
	return " over path " + strconv.Quote(path)
}

// probeGatherer keeps the gauges of the probe: the daemon's own series
// (site, reload, targets) belong to /metrics, and the counters and
// histograms of a single run would restart at every scrape.
type probeGatherer struct{ g prometheus.Gatherer }

func (p probeGatherer) Gather() ([]*dto.MetricFamily, error) {
	mfs, err := p.g.Gather()
	out := mfs[:0]
	for _, mf := range mfs {
		if mf.GetType() == dto.MetricType_GAUGE && hasTargetLabel(mf) {
			out = append(out, mf)
		}
	}
	return out, err
}

func hasTargetLabel(mf *dto.MetricFamily) bool {
	if len(mf.Metric) == 0 {
		return false
	}
	for _, l := range mf.Metric[0].Label {
		if l.GetName() == "target" {
			return true
		}
	}
	return false
}
