package exporter

import (
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/reachd/reachd/probe"
	"github.com/reachd/reachd/targets"
)

// The per-probe part of /metrics is the bulk of a scrape (about 12 KB per
// probe, 120 MB at 10,000 probes). Through the registry it cost seconds per
// scrape: const metrics, protobuf structs, sorting, then text encoding. So
// /metrics writes the per-probe families itself, straight from the store:
// each entry keeps its escaped label set, and a scrape appends samples
// family by family in chunks, holding the store's read lock only while it
// fills a chunk, so a slow scraper never stalls the probes. Collector
// emits the same samples as const metrics for /probe and as the reference
// TestExpositionMatchesCollector compares /metrics with.

// family is one per-probe metric family, in exposition order.
type family struct {
	name, help, typ string
}

// newFamily takes the family's descriptor so that package initialisation
// creates it (and records its help) first.
func newFamily(_ *prometheus.Desc, name, typ string) family {
	return family{name: name, typ: typ, help: helps[name]}
}

// Indexes into families, one per per-probe metric.
const (
	fSuccess = iota
	fDuration
	fStageLast
	fStage
	fReason
	fRuns
	fFailures
	fLastRun
	fLastSuccess
	fTLSAccepted
	fTLSNegotiated
	fTLSIntercepted
	fTLSIssuer
	fTLSNotAfter
	fHTTPStatus
	fHTTPSkew
	fTraceLastHop
	fTraceHops
	fTLSRevocation
	fDNSSuccess
	fDNSDuration
	fDNSAnswers
	fDNSRcode
	nFamilies
)

var families = [nFamilies]family{
	fSuccess:        newFamily(probeSuccess, "reachd_probe_success", "gauge"),
	fDuration:       newFamily(probeDuration, "reachd_probe_duration_seconds", "gauge"),
	fStageLast:      newFamily(stageLast, "reachd_probe_stage_last_duration_seconds", "gauge"),
	fStage:          newFamily(stageDuration, "reachd_probe_stage_duration_seconds", "histogram"),
	fReason:         newFamily(failureReason, "reachd_probe_failure_reason", "gauge"),
	fRuns:           newFamily(runsTotal, "reachd_probe_runs_total", "counter"),
	fFailures:       newFamily(failuresTotal, "reachd_probe_failures_total", "counter"),
	fLastRun:        newFamily(lastRun, "reachd_probe_last_run_timestamp_seconds", "gauge"),
	fLastSuccess:    newFamily(lastSuccess, "reachd_probe_last_success_timestamp_seconds", "gauge"),
	fTLSAccepted:    newFamily(tlsAccepted, "reachd_tls_version_accepted", "gauge"),
	fTLSNegotiated:  newFamily(tlsNegotiated, "reachd_tls_negotiated_info", "gauge"),
	fTLSIntercepted: newFamily(tlsIntercepted, "reachd_tls_intercepted", "gauge"),
	fTLSIssuer:      newFamily(tlsIssuer, "reachd_tls_issuer_info", "gauge"),
	fTLSNotAfter:    newFamily(tlsNotAfter, "reachd_tls_cert_not_after_timestamp_seconds", "gauge"),
	fHTTPStatus:     newFamily(httpStatus, "reachd_http_status_code", "gauge"),
	fHTTPSkew:       newFamily(httpClockSkew, "reachd_http_clock_skew_seconds", "gauge"),
	fTraceLastHop:   newFamily(traceLastHop, "reachd_path_trace_last_hop", "gauge"),
	fTraceHops:      newFamily(traceHops, "reachd_path_trace_hops", "gauge"),
	fTLSRevocation:  newFamily(tlsRevocation, "reachd_tls_revocation_reachable", "gauge"),
	fDNSSuccess:     newFamily(dnsSuccess, "reachd_dns_success", "gauge"),
	fDNSDuration:    newFamily(dnsDuration, "reachd_dns_duration_seconds", "gauge"),
	fDNSAnswers:     newFamily(dnsAnswers, "reachd_dns_answers", "gauge"),
	fDNSRcode:       newFamily(dnsRcode, "reachd_dns_rcode", "gauge"),
}

// probeLabelSets renders an entry's label sets once: the probe labels, and the
// DNS series' labels (no port or path).
func probeLabelSets(t *targets.Target, path string) (probe, dns string) {
	dns = `vendor="` + escape(t.Vendor) + `",region="` + escape(t.Region) + `",target="` + escape(t.Name) + `",host="` + escape(t.Host) + `"`
	return dns + `,port="` + strconv.Itoa(t.Port) + `",path="` + escape(path) + `"`, dns
}

// expo appends text-format samples to a buffer.
type expo struct {
	b      []byte
	counts []uint64 // scratch for histogram buckets
}

// sample starts `name{labels`; label adds `,name="value"`; value ends the line.
func (x *expo) sample(name, labels string) {
	x.b = append(x.b, name...)
	x.b = append(x.b, '{')
	x.b = append(x.b, labels...)
}

func (x *expo) label(name, value string) {
	x.b = append(x.b, ',')
	x.b = append(x.b, name...)
	x.b = append(x.b, `="`...)
	x.b = appendEscaped(x.b, value)
	x.b = append(x.b, '"')
}

func (x *expo) value(v float64) {
	x.b = append(x.b, "} "...)
	x.b = appendFloat(x.b, v)
	x.b = append(x.b, '\n')
}

// seconds ends the line with a duration in seconds.
func (x *expo) seconds(d time.Duration) {
	x.b = append(x.b, "} "...)
	x.b = appendSeconds(x.b, d)
	x.b = append(x.b, '\n')
}

func (x *expo) gauge(name, labels string, v float64) {
	x.sample(name, labels)
	x.value(v)
}

// family appends family f's samples of entry e.
func (x *expo) family(f int, e *Entry) {
	name := families[f].name
	r := e.Last
	switch f {
	case fRuns:
		for i, result := range [2]string{"failure", "success"} {
			x.sample(name, e.labels)
			x.label("result", result)
			x.value(float64(e.Runs[i]))
		}
	case fFailures:
		for k, n := range e.Failures {
			x.sample(name, e.labels)
			x.label("stage", string(k.Stage))
			x.label("reason", string(k.Reason))
			x.value(float64(n))
		}
	case fStage:
		for _, stage := range stageOrder {
			if h := e.Stages[stage]; h != nil {
				x.histogram(e.labels, string(stage), h)
			}
		}
	}
	if r == nil {
		return
	}
	switch f {
	case fSuccess:
		x.gauge(name, e.labels, bool01(r.Success()))
	case fDuration:
		x.sample(name, e.labels)
		x.seconds(r.Duration)
	case fStageLast:
		for i := range r.Stages {
			st := &r.Stages[i]
			x.sample(name, e.labels)
			x.label("stage", string(st.Stage))
			x.seconds(st.Duration)
		}
	case fLastRun:
		x.gauge(name, e.labels, unix(r.Start.Add(r.Duration)))
	case fLastSuccess:
		if !e.LastSuccess.IsZero() {
			x.gauge(name, e.labels, unix(e.LastSuccess))
		}
	case fReason:
		if r.Err != nil {
			x.sample(name, e.labels)
			x.label("stage", string(r.Err.Stage))
			x.label("reason", string(r.Err.Reason))
			x.value(1)
		}
	case fTLSAccepted, fTLSNegotiated, fTLSIntercepted, fTLSIssuer, fTLSNotAfter:
		x.tls(f, name, e.labels, r.TLS)
	case fHTTPStatus:
		if r.HTTP != nil {
			x.gauge(name, e.labels, float64(r.HTTP.Status))
		}
	case fHTTPSkew:
		if r.HTTP != nil && r.HTTP.HasDate {
			x.sample(name, e.labels)
			x.seconds(r.HTTP.ClockSkew)
		}
	case fTraceLastHop, fTraceHops:
		if hop, ttl, ok := traceSeries(r); ok && f == fTraceHops {
			x.gauge(name, e.labels, float64(ttl))
		} else if ok && hop != "" {
			x.sample(name, e.labels)
			x.label("hop", hop)
			x.value(1)
		}
	case fTLSRevocation:
		for i := range r.Revocation {
			c := &r.Revocation[i]
			x.sample(name, e.labels)
			x.label("kind", c.Kind)
			x.label("url", c.URL)
			x.value(bool01(c.Reachable))
		}
	case fDNSSuccess, fDNSDuration, fDNSAnswers, fDNSRcode:
		for i := range r.DNS {
			x.dns(f, name, e.dnsLabels, &r.DNS[i])
		}
	}
}

func (x *expo) tls(f int, name, labels string, tl *probe.TLSInfo) {
	if tl == nil {
		return
	}
	if f == fTLSAccepted {
		for _, v := range probe.TLSVersions {
			if ok, swept := tl.Accepted[v]; swept {
				x.sample(name, labels)
				x.label("version", probe.TLSVersionName(v))
				x.value(bool01(ok))
			}
		}
		return
	}
	if tl.Version == 0 {
		return
	}
	switch f {
	case fTLSNegotiated:
		x.sample(name, labels)
		x.label("version", probe.TLSVersionName(tl.Version))
		x.label("cipher", tl.Cipher)
		x.value(1)
	case fTLSIntercepted:
		x.gauge(name, labels, bool01(tl.Intercepted))
	case fTLSIssuer:
		x.sample(name, labels)
		x.label("issuer", tl.Issuer)
		x.value(1)
	case fTLSNotAfter:
		x.gauge(name, labels, unix(tl.NotAfter))
	}
}

func (x *expo) dns(f int, name, labels string, d *probe.DNSResult) {
	if f == fDNSRcode && d.Rcode == "" {
		return
	}
	x.sample(name, labels)
	x.label("resolver", d.Resolver)
	x.label("qtype", d.QType)
	switch f {
	case fDNSSuccess:
		x.value(bool01(d.Success))
	case fDNSDuration:
		x.seconds(d.Duration)
	case fDNSAnswers:
		x.value(float64(len(d.Answers)))
	case fDNSRcode:
		x.label("rcode", d.Rcode)
		x.value(1)
	}
}

// histogram appends the bucket, sum and count lines of one stage; every
// bucket line shares the prefix name_bucket{labels,stage="s".
func (x *expo) histogram(labels, stage string, h *probe.Histogram) {
	counts, count, sum := h.AppendCumulative(x.counts[:0])
	x.counts = counts
	start := len(x.b)
	x.sample(stageBucket, labels)
	x.label("stage", stage)
	prefix := len(x.b) - start
	for i, n := range counts {
		if i > 0 {
			x.b = append(x.b, x.b[start:start+prefix]...)
		}
		x.b = append(x.b, leLabels[i]...)
		x.b = strconv.AppendUint(x.b, n, 10)
		x.b = append(x.b, '\n')
	}
	x.b = append(x.b, x.b[start:start+prefix]...)
	x.b = append(x.b, `,le="+Inf"} `...)
	x.b = strconv.AppendUint(x.b, count, 10)
	x.b = append(x.b, '\n')
	x.sample(stageSum, labels)
	x.label("stage", stage)
	x.value(sum)
	x.sample(stageCount, labels)
	x.label("stage", stage)
	x.value(float64(count))
}

const (
	stageBucket = "reachd_probe_stage_duration_seconds_bucket"
	stageSum    = "reachd_probe_stage_duration_seconds_sum"
	stageCount  = "reachd_probe_stage_duration_seconds_count"
)

// stageOrder is the order stage histograms are written in.
var stageOrder = []probe.Stage{probe.StageDNS, probe.StageTCP, probe.StageProxy, probe.StageTLS, probe.StageHTTP}

// leLabels are `,le="<bound>"} ` for each of StageBuckets, built once.
var leLabels = func() []string {
	out := make([]string, len(StageBuckets))
	for i, bound := range StageBuckets {
		out[i] = `,le="` + string(appendFloat(nil, bound)) + `"} `
	}
	return out
}()

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func escape(s string) string {
	if !needsEscape(s) {
		return s
	}
	return labelEscaper.Replace(s)
}

// appendEscaped appends the label value s, escaped.
func appendEscaped(b []byte, s string) []byte {
	if needsEscape(s) {
		return append(b, labelEscaper.Replace(s)...)
	}
	return append(b, s...)
}

// needsEscape reports whether s holds a byte to escape in a label value.
// Label values are short: a loop over their bytes beats
// strings.ContainsAny, which was a tenth of a scrape.
func needsEscape(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '\\' || c == '"' || c == '\n' {
			return true
		}
	}
	return false
}

var helpEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`)

// SetStageHistograms turns the per-probe stage histograms on or off
// ([metrics] stage_histograms); a reload may change it.
func (s *Store) SetStageHistograms(on bool) { s.stageHistograms.Store(on) }

// StageHistograms reports whether the stage histograms are exported.
func (s *Store) StageHistograms() bool { return s.stageHistograms.Load() }

// chunkSize is how much a scrape renders per hold of the store's lock.
const chunkSize = 256 << 10

// writeProbeFamilies writes every per-probe family: its HELP and TYPE, then
// the samples of each entry, rendered in chunks under the read lock.
func (s *Store) writeProbeFamilies(w io.Writer) error {
	s.mu.RLock()
	entries := make([]*Entry, len(s.keys))
	for i, k := range s.keys {
		entries[i] = s.entries[k]
	}
	s.mu.RUnlock()

	x := &expo{b: make([]byte, 0, chunkSize+16<<10)}
	flush := func() error {
		_, err := w.Write(x.b)
		x.b = x.b[:0]
		return err
	}
	histograms := s.StageHistograms()
	for f, fam := range families {
		if f == fStage && !histograms {
			continue
		}
		x.b = append(x.b, "# HELP "...)
		x.b = append(x.b, fam.name...)
		x.b = append(x.b, ' ')
		x.b = append(x.b, helpEscaper.Replace(fam.help)...)
		x.b = append(x.b, "\n# TYPE "...)
		x.b = append(x.b, fam.name...)
		x.b = append(x.b, ' ')
		x.b = append(x.b, fam.typ...)
		x.b = append(x.b, '\n')
		for i := 0; i < len(entries); {
			s.mu.RLock()
			for ; i < len(entries) && len(x.b) < chunkSize; i++ {
				x.family(f, entries[i])
			}
			s.mu.RUnlock()
			if len(x.b) >= chunkSize {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	return flush()
}
