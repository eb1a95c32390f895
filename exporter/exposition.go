package exporter

import (
	"context"
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
// /metrics writes the per-probe families itself, from the store: each
// entry keeps its escaped label set, a scrape copies the values it prints
// (rows.go), holding the store's read lock only while it copies a chunk of
// entries, so a slow scraper never stalls the probes, then appends samples
// family by family in chunks, writing each as it fills. Collector
// emits the same samples as const metrics for /probe and as the reference
// TestExpositionMatchesCollector compares /metrics with.

// family is one per-probe metric family, in exposition order.
type family struct {
	name, help, typ string
	open            string // `name{`, which starts each sample
}

// newFamily takes the family's descriptor so that package initialisation
// creates it (and records its help) first.
func newFamily(_ *prometheus.Desc, name, typ string) family {
	return family{name: name, typ: typ, help: helps[name], open: name + "{"}
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
	fPACProxy
	fPACFallback
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
	fPACProxy:       newFamily(pacProxy, "reachd_pac_proxy_info", "gauge"),
	fPACFallback:    newFamily(pacFallback, "reachd_pac_fallback", "gauge"),
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

// A sample is sample(open, labels), `name{` and the entry's labels; then
// label(key, value) for each of its own labels, key `,name="`; then value
// or seconds, which end the line. Each part is one append.
func (x *expo) sample(open, labels string) {
	x.b = append(x.b, open...)
	x.b = append(x.b, labels...)
}

func (x *expo) label(key, value string) {
	x.b = append(x.b, key...)
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

func (x *expo) gauge(open, labels string, v float64) {
	x.sample(open, labels)
	x.value(v)
}

// histograms appends the stage histograms of e; the caller holds the
// store's read lock.
func (x *expo) histograms(e *Entry) {
	for _, stage := range stageOrder {
		if h := e.Stages[stage]; h != nil {
			x.histogram(e.labels, string(stage), h)
		}
	}
}

// histogram appends the bucket, sum and count lines of one stage; every
// bucket line shares the prefix name_bucket{labels,stage="s".
func (x *expo) histogram(labels, stage string, h *probe.Histogram) {
	counts, count, sum := h.AppendCumulative(x.counts[:0])
	x.counts = counts
	start := len(x.b)
	x.sample(stageBucket, labels)
	x.label(`,stage="`, stage)
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
	x.label(`,stage="`, stage)
	x.value(sum)
	x.sample(stageCount, labels)
	x.label(`,stage="`, stage)
	x.value(float64(count))
}

const (
	stageBucket = "reachd_probe_stage_duration_seconds_bucket{"
	stageSum    = "reachd_probe_stage_duration_seconds_sum{"
	stageCount  = "reachd_probe_stage_duration_seconds_count{"
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

// chunkSize is how much a scrape renders before it writes.
const chunkSize = 256 << 10

// writeProbeFamilies writes every per-probe family: its HELP and TYPE, then
// the samples of each entry, rendered in chunks from a copy of the store
// (rows.go). It stops when ctx ends: a client that left (reachbench reads
// only the head of /metrics for its samples) would otherwise hold the
// scratch, and a scrape that follows at once would build one of its own.
func (s *Store) writeProbeFamilies(ctx context.Context, w io.Writer) error {
	x := s.scrape.Swap(nil) // nil while another scrape runs
	if x == nil {
		x = &scrape{expo: expo{b: make([]byte, 0, chunkSize+16<<10)}}
	}
	defer func() {
		x.reset()
		s.scrape.Store(x)
	}()
	if err := s.copyRows(ctx, x); err != nil {
		return err
	}
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
		for i := 0; i < len(x.rows); {
			if f == fStage {
				// The histograms change with every run: they are read
				// from the entries, under the lock.
				s.mu.RLock()
				for ; i < len(x.rows) && len(x.b) < chunkSize; i++ {
					x.histograms(x.entries[i])
				}
				s.mu.RUnlock()
			} else {
				for ; i < len(x.rows) && len(x.b) < chunkSize; i++ {
					x.family(f, &x.rows[i])
				}
			}
			if len(x.b) >= chunkSize {
				if err := ctx.Err(); err != nil {
					return err
				}
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	return flush()
}
