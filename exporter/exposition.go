package exporter

import (
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/reachd/reachd/probe"
)

// The per-probe part of /metrics is the bulk of a scrape (about 12 KB per
// probe, 120 MB at 10,000 probes). Rendering it through the registry on
// every scrape costs seconds, nearly all of it re-encoding text that has
// not changed. So each entry keeps its samples rendered per family, redone
// only after a new result, and a scrape concatenates them under one HELP
// and TYPE per family. Collector emits the same samples as const metrics;
// TestExpositionMatchesCollector holds the two together.

// family is one per-probe metric family, in exposition order.
type family struct {
	name, help, typ string
}

func newFamily(d *prometheus.Desc, name, typ string) family {
	return family{name: name, typ: typ, help: descHelp(d)}
}

// descHelp reads the help text back from a descriptor, so it is written once.
func descHelp(d *prometheus.Desc) string {
	s := d.String()
	const key = `help: "`
	i := strings.Index(s, key)
	if i < 0 {
		return ""
	}
	s = s[i+len(key):]
	help, err := strconv.Unquote(`"` + s[:strings.Index(s, `", `)] + `"`)
	if err != nil {
		return ""
	}
	return help
}

// Indexes into families, one per per-probe metric.
const (
	fSuccess = iota
	fDuration
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
	fDNSSuccess
	fDNSDuration
	fDNSAnswers
	fDNSRcode
	nFamilies
)

var families = [nFamilies]family{
	fSuccess:        newFamily(probeSuccess, "reachd_probe_success", "gauge"),
	fDuration:       newFamily(probeDuration, "reachd_probe_duration_seconds", "gauge"),
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
	fDNSSuccess:     newFamily(dnsSuccess, "reachd_dns_success", "gauge"),
	fDNSDuration:    newFamily(dnsDuration, "reachd_dns_duration_seconds", "gauge"),
	fDNSAnswers:     newFamily(dnsAnswers, "reachd_dns_answers", "gauge"),
	fDNSRcode:       newFamily(dnsRcode, "reachd_dns_rcode", "gauge"),
}

// rendered is an entry's samples, one text block per family.
type rendered [nFamilies][]byte

// renderSamples writes the samples of e; it runs under the store's lock, after a
// new result or a new entry, never on the probe path.
func renderSamples(e *Entry) *rendered {
	var out rendered
	out[fStage] = make([]byte, 0, 8<<10)
	t := e.Target
	labels := `vendor="` + escape(t.Vendor) + `",region="` + escape(t.Region) + `",target="` + escape(t.Name) +
		`",host="` + escape(t.Host) + `",port="` + strconv.Itoa(t.Port) + `",path="` + escape(e.Path) + `"`
	w := sampleWriter{labels: labels}
	add := func(f int, v float64, extra ...string) { out[f] = w.sample(out[f], families[f].name, v, extra...) }

	add(fRuns, float64(e.Runs[1]), "result", "success")
	add(fRuns, float64(e.Runs[0]), "result", "failure")
	for k, n := range e.Failures {
		add(fFailures, float64(n), "stage", string(k.Stage), "reason", string(k.Reason))
	}
	for _, stage := range []probe.Stage{probe.StageDNS, probe.StageTCP, probe.StageProxy, probe.StageTLS, probe.StageHTTP, probe.StageInternal} {
		if h := e.Stages[stage]; h != nil {
			out[fStage] = w.histogram(out[fStage], families[fStage].name, h, "stage", string(stage))
		}
	}
	r := e.Last
	if r == nil {
		return &out
	}
	add(fSuccess, bool01(r.Success()))
	add(fDuration, r.Duration.Seconds())
	add(fLastRun, unix(r.Start.Add(r.Duration)))
	if !e.LastSuccess.IsZero() {
		add(fLastSuccess, unix(e.LastSuccess))
	}
	if r.Err != nil {
		add(fReason, 1, "stage", string(r.Err.Stage), "reason", string(r.Err.Reason))
	}
	if tl := r.TLS; tl != nil {
		for _, v := range probe.TLSVersions {
			if ok, swept := tl.Accepted[v]; swept {
				add(fTLSAccepted, bool01(ok), "version", probe.TLSVersionName(v))
			}
		}
		if tl.Version != 0 {
			add(fTLSNegotiated, 1, "version", probe.TLSVersionName(tl.Version), "cipher", tl.Cipher)
			add(fTLSIntercepted, bool01(tl.Intercepted))
			add(fTLSIssuer, 1, "issuer", tl.Issuer)
			add(fTLSNotAfter, unix(tl.NotAfter))
		}
	}
	if h := r.HTTP; h != nil {
		add(fHTTPStatus, float64(h.Status))
		if h.HasDate {
			add(fHTTPSkew, h.ClockSkew.Seconds())
		}
	}
	dw := sampleWriter{labels: `vendor="` + escape(t.Vendor) + `",region="` + escape(t.Region) + `",target="` + escape(t.Name) + `",host="` + escape(t.Host) + `"`}
	for _, d := range r.DNS {
		extra := []string{"resolver", d.Resolver, "qtype", d.QType}
		out[fDNSSuccess] = dw.sample(out[fDNSSuccess], families[fDNSSuccess].name, bool01(d.Success), extra...)
		out[fDNSDuration] = dw.sample(out[fDNSDuration], families[fDNSDuration].name, d.Duration.Seconds(), extra...)
		out[fDNSAnswers] = dw.sample(out[fDNSAnswers], families[fDNSAnswers].name, float64(len(d.Answers)), extra...)
		if d.Rcode != "" {
			out[fDNSRcode] = dw.sample(out[fDNSRcode], families[fDNSRcode].name, 1, append(extra, "rcode", d.Rcode)...)
		}
	}
	return &out
}

// sampleWriter appends text-format samples that share a label prefix.
type sampleWriter struct {
	labels string // escaped, comma-separated, without braces
}

// sample appends `name{labels,extra...} v`; extra alternates names and values.
func (w sampleWriter) sample(b []byte, name string, v float64, extra ...string) []byte {
	b = append(b, name...)
	b = append(b, '{')
	b = append(b, w.labels...)
	for i := 0; i+1 < len(extra); i += 2 {
		b = append(b, ',')
		b = append(b, extra[i]...)
		b = append(b, `="`...)
		b = append(b, escape(extra[i+1])...)
		b = append(b, '"')
	}
	b = append(b, "} "...)
	b = appendFloat(b, v)
	return append(b, '\n')
}

func (w sampleWriter) histogram(b []byte, name string, h *probe.Histogram, extra ...string) []byte {
	count, sum, buckets := h.Snapshot()
	// Every bucket line shares one prefix: name_bucket{labels,extra,le="
	start := len(b)
	b = w.sample(b, name+"_bucket", 0, extra...)
	prefix := append([]byte(nil), b[start:len(b)-len("} 0\n")]...)
	b = b[:start]
	for i, bound := range StageBuckets {
		b = append(b, prefix...)
		b = append(b, leLabels[i]...)
		b = strconv.AppendUint(b, buckets[bound], 10)
		b = append(b, '\n')
	}
	b = append(b, prefix...)
	b = append(b, `,le="+Inf"} `...)
	b = strconv.AppendUint(b, count, 10)
	b = append(b, '\n')
	b = w.sample(b, name+"_sum", sum, extra...)
	return w.sample(b, name+"_count", float64(count), extra...)
}

// leLabels are `,le="<bound>"} ` for each of StageBuckets, built once.
var leLabels = func() []string {
	out := make([]string, len(StageBuckets))
	for i, bound := range StageBuckets {
		out[i] = `,le="` + string(appendFloat(nil, bound)) + `"} `
	}
	return out
}()

// appendFloat formats like the Prometheus text encoder.
func appendFloat(b []byte, f float64) []byte {
	switch {
	case math.IsInf(f, 1):
		return append(b, "+Inf"...)
	case math.IsInf(f, -1):
		return append(b, "-Inf"...)
	case math.IsNaN(f):
		return append(b, "NaN"...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64)
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func escape(s string) string {
	if !strings.ContainsAny(s, "\\\"\n") {
		return s
	}
	return labelEscaper.Replace(s)
}

var helpEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`)

// writeProbeFamilies writes every per-probe family: its HELP and TYPE,
// then each entry's block. blocks are the entries' rendered samples.
func writeProbeFamilies(w io.Writer, blocks []*rendered) error {
	var head []byte
	for f, fam := range families {
		head = append(head[:0], "# HELP "...)
		head = append(head, fam.name...)
		head = append(head, ' ')
		head = append(head, helpEscaper.Replace(fam.help)...)
		head = append(head, "\n# TYPE "...)
		head = append(head, fam.name...)
		head = append(head, ' ')
		head = append(head, fam.typ...)
		head = append(head, '\n')
		if _, err := w.Write(head); err != nil {
			return err
		}
		for _, r := range blocks {
			if len(r[f]) == 0 {
				continue
			}
			if _, err := w.Write(r[f]); err != nil {
				return err
			}
		}
	}
	return nil
}
