package exporter

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/reachd/reachd/probe"
)

const namespace = "reachd"

var probeLabels = []string{"vendor", "region", "target", "host", "port", "path"}

// helps keeps each metric's help text by name, for the families that
// /metrics writes itself (exposition.go).
var helps = map[string]string{}

func desc(name, help string, extra ...string) *prometheus.Desc {
	helps[prometheus.BuildFQName(namespace, "", name)] = help
	return prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, append(append([]string{}, probeLabels...), extra...), nil)
}

func plainDesc(name, help string, labels ...string) *prometheus.Desc {
	helps[prometheus.BuildFQName(namespace, "", name)] = help
	return prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, labels, nil)
}

// The descriptors of every metric reachd exports (DESIGN §7).
var (
	probeSuccess      = desc("probe_success", "1 if the last run of the probe passed every stage.")
	probeDuration     = desc("probe_duration_seconds", "Duration of the last run, all stages.")
	stageDuration     = desc("probe_stage_duration_seconds", "Duration of each stage over runs; exported only with [metrics] stage_histograms = true.", "stage")
	stageLast         = desc("probe_stage_last_duration_seconds", "Duration of each stage in the last run, passed or failed.", "stage")
	failureReason     = desc("probe_failure_reason", "1 for the reason of the current failure; absent while the probe succeeds.", "stage", "reason")
	runsTotal         = desc("probe_runs_total", "Runs of the probe by result.", "result")
	failuresTotal     = desc("probe_failures_total", "Failed runs by stage and reason.", "stage", "reason")
	lastRun           = desc("probe_last_run_timestamp_seconds", "When the last run ended.")
	lastSuccess       = desc("probe_last_success_timestamp_seconds", "When the last successful run ended.")
	tlsAccepted       = desc("tls_version_accepted", "1 if the last sweep negotiated this TLS version alone.", "version")
	tlsNegotiated     = desc("tls_negotiated_info", "The TLS version and cipher of the last handshake.", "version", "cipher")
	tlsIntercepted    = desc("tls_intercepted", "1 if the chain anchors only in a private CA (TLS inspection).")
	tlsIssuer         = desc("tls_issuer_info", "The issuing CA of the leaf certificate.", "issuer")
	tlsNotAfter       = desc("tls_cert_not_after_timestamp_seconds", "Earliest expiry in the presented chain.")
	httpStatus        = desc("http_status_code", "HTTP status of the last response.")
	httpClockSkew     = desc("http_clock_skew_seconds", "The server's Date header minus the local clock.")
	traceLastHop      = desc("path_trace_last_hop", "1 for the address of the last hop that answered the path trace of a failing direct probe.", "hop")
	traceHops         = desc("path_trace_hops", "TTL of the last hop that answered the path trace of a failing direct probe; 0 when none did.")
	tlsRevocation     = desc("tls_revocation_reachable", "1 if the verified chain's OCSP, CRL or caIssuers URL answered over the probe's path.", "kind", "url")
	pacProxy          = desc("pac_proxy_info", "1 for the entry of the PAC's answer that carried the last run of a pac or wpad probe (\"PROXY host:port\", \"DIRECT\").", "proxy")
	pacFallback       = desc("pac_fallback", "1 if the entry that carried the last run of a pac or wpad probe is not the PAC's first choice, which could not be reached.")
	dnsLabels         = []string{"vendor", "region", "target", "host", "resolver", "qtype"}
	dnsSuccess        = plainDesc("dns_success", "1 if the resolver answered the query without error (NOERROR, every address inside expect_cidrs); an empty AAAA answer is a success.", dnsLabels...)
	dnsDuration       = plainDesc("dns_duration_seconds", "Duration of the query.", dnsLabels...)
	dnsAnswers        = plainDesc("dns_answers", "Addresses in the answer.", dnsLabels...)
	dnsRcode          = plainDesc("dns_rcode", "1 for the rcode of the last answer.", append(append([]string{}, dnsLabels...), "rcode")...)
	siteInfo          = plainDesc("site_info", "The site this reachd probes from.", "site")
	targetsGauge      = plainDesc("targets", "Configured probes (target x path).")
	reloadSuccessful  = plainDesc("config_last_reload_successful", "1 if the last config load succeeded.")
	reloadSuccessTime = plainDesc("config_last_reload_success_timestamp_seconds", "When the config was last loaded successfully.")
	schedulerInflight = plainDesc("scheduler_inflight", "Probe runs in flight.")
	schedulerSkipped  = plainDesc("scheduler_skipped_total", "Scheduled runs skipped because the previous run of the probe overran.")
	schedulerDelay    = plainDesc("scheduler_delay_seconds", "Delay from a run's planned start to its actual start.")
	allDescs          = []*prometheus.Desc{probeSuccess, probeDuration, stageDuration, stageLast, failureReason, runsTotal, failuresTotal, lastRun, lastSuccess, tlsAccepted, tlsNegotiated, tlsIntercepted, tlsIssuer, tlsNotAfter, httpStatus, httpClockSkew, traceLastHop, traceHops, tlsRevocation, pacProxy, pacFallback, dnsSuccess, dnsDuration, dnsAnswers, dnsRcode, siteInfo, targetsGauge, reloadSuccessful, reloadSuccessTime, schedulerInflight, schedulerSkipped, schedulerDelay}
)

// Collector emits const metrics from the store at scrape time, so the
// series of a removed probe vanish with it. /metrics takes the per-probe
// series from the rendered cache instead (exposition.go) and registers a
// Collector without them; /probe and the tests use the whole Collector.
type Collector struct {
	store    *Store
	state    *State
	sched    func() probe.SchedulerStats // nil: no scheduler (reachd check)
	noProbes bool
}

// NewCollector returns the collector of a store; sched may be nil.
func NewCollector(store *Store, state *State, sched func() probe.SchedulerStats) *Collector {
	return &Collector{store: store, state: state, sched: sched}
}

// Describe sends every descriptor.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

// Collect sends the metrics of every probe and of the daemon.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	st := c.state.View()
	gauge(siteInfo, 1, st.Site)
	gauge(reloadSuccessful, bool01(st.ReloadOK))
	if !st.ReloadSuccess.IsZero() {
		gauge(reloadSuccessTime, unix(st.ReloadSuccess))
	}
	if c.sched != nil {
		s := c.sched()
		gauge(schedulerInflight, float64(s.Inflight))
		counter(schedulerSkipped, float64(s.Skipped))
		n, sum, buckets := s.Delay.Snapshot()
		ch <- prometheus.MustNewConstHistogram(schedulerDelay, n, sum, buckets)
	}
	gauge(targetsGauge, float64(c.store.Len()))
	if !c.noProbes {
		histograms := c.store.StageHistograms()
		c.store.Range(func(e *Entry) { collectEntry(ch, e, histograms, gauge, counter) })
	}
}

func collectEntry(ch chan<- prometheus.Metric, e *Entry, histograms bool, gauge, counter func(*prometheus.Desc, float64, ...string)) {
	t := e.Target
	l := []string{t.Vendor, t.Region, t.Name, t.Host, strconv.Itoa(t.Port), e.Path}
	with := func(extra ...string) []string {
		return append(append(make([]string, 0, len(l)+len(extra)), l...), extra...)
	}
	counter(runsTotal, float64(e.Runs[1]), with("success")...)
	counter(runsTotal, float64(e.Runs[0]), with("failure")...)
	for k, n := range e.Failures {
		counter(failuresTotal, float64(n), with(string(k.Stage), string(k.Reason))...)
	}
	if histograms {
		for stage, h := range e.Stages {
			n, sum, buckets := h.Snapshot()
			ch <- prometheus.MustNewConstHistogram(stageDuration, n, sum, buckets, with(string(stage))...)
		}
	}
	r := e.Last
	if r == nil {
		return
	}
	gauge(probeSuccess, bool01(r.Success()), l...)
	gauge(probeDuration, r.Duration.Seconds(), l...)
	for _, st := range r.Stages {
		gauge(stageLast, st.Duration.Seconds(), with(string(st.Stage))...)
	}
	gauge(lastRun, unix(r.Start.Add(r.Duration)), l...)
	if !e.LastSuccess.IsZero() {
		gauge(lastSuccess, unix(e.LastSuccess), l...)
	}
	if r.Err != nil {
		gauge(failureReason, 1, with(string(r.Err.Stage), string(r.Err.Reason))...)
	}
	if tl := r.TLS; tl != nil {
		for v, ok := range tl.Accepted {
			gauge(tlsAccepted, bool01(ok), with(probe.TLSVersionName(v))...)
		}
		if tl.Version != 0 {
			gauge(tlsNegotiated, 1, with(probe.TLSVersionName(tl.Version), tl.Cipher)...)
			gauge(tlsIntercepted, bool01(tl.Intercepted), l...)
			gauge(tlsIssuer, 1, with(tl.Issuer)...)
			gauge(tlsNotAfter, unix(tl.NotAfter), l...)
		}
	}
	if h := r.HTTP; h != nil {
		gauge(httpStatus, float64(h.Status), l...)
		if h.HasDate {
			gauge(httpClockSkew, h.ClockSkew.Seconds(), l...)
		}
	}
	if hop, ttl, ok := traceSeries(r); ok {
		if hop != "" {
			gauge(traceLastHop, 1, with(hop)...)
		}
		gauge(traceHops, float64(ttl), l...)
	}
	for _, c := range r.Revocation {
		gauge(tlsRevocation, bool01(c.Reachable), with(c.Kind, c.URL)...)
	}
	if p := r.PAC; p != nil && p.Used != "" {
		gauge(pacProxy, 1, with(p.Used)...)
		gauge(pacFallback, bool01(p.Fallback), l...)
	}
	for _, d := range r.DNS {
		dl := []string{t.Vendor, t.Region, t.Name, t.Host, d.Resolver, d.QType}
		gauge(dnsSuccess, bool01(d.Success), dl...)
		gauge(dnsDuration, d.Duration.Seconds(), dl...)
		gauge(dnsAnswers, float64(len(d.Answers)), dl...)
		if d.Rcode != "" {
			gauge(dnsRcode, 1, append(dl, d.Rcode)...)
		}
	}
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// traceSeries is what the path trace series say of r: the address and TTL
// of the last hop that answered (hop "" and ttl 0 when none did); ok is
// false when r has no trace with hops (passing, not traced, unsupported).
func traceSeries(r *probe.Result) (hop string, ttl int, ok bool) {
	if r.Err == nil || r.Trace == nil || len(r.Trace.Hops) == 0 {
		return "", 0, false
	}
	if h, answered := r.Trace.LastAnswered(); answered {
		return h.Addr.String(), h.TTL, true
	}
	return "", 0, true
}
