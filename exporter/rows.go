package exporter

import (
	"context"
	"slices"
	"time"

	"github.com/reachd/reachd/probe"
)

// A scrape first copies what the per-probe families print of each entry
// into rows, then renders the families from the rows. The families come
// one after the other, each over every entry in key order (the text
// format keeps a family's samples together), and a result sits wherever
// its probe allocated it when the run ended: at 10,000 probes, 23 passes
// over the results themselves were mostly cache and TLB misses, 1.6
// times as slow as the same passes over results laid out in key order.
// The copy reads each result once; the families then read the rows in
// order.
//
// The copy is made in chunks under the store's read lock. A row holds
// numbers and strings, and points only into results, which never change
// once recorded (a run's extras complete a copy of the result), so the
// families render without the lock, except the stage histograms, which
// change with every run and are read from the entries under the lock. The
// scrape's lists are kept for the next one, emptied: a scrape allocates
// nothing that grows with the probes.

// scrape is the scratch of one GET /metrics.
type scrape struct {
	expo
	entries  []*Entry // the store's, in key order
	rows     []row    // one per entry
	stages   []stageRow
	dns      []dnsRow
	failures []failureRow
}

// span is a row's part of one of the scrape's lists.
type span struct{ from, to int32 }

// row is one entry, as the per-probe families print it.
type row struct {
	labels, dnsLabels string
	runs              [2]uint64
	failures          span

	// The rest is of the last result; ran is false until the first run
	// ends.
	ran, success bool
	succeeded    bool // lastSuccess is set
	hasHTTP      bool
	traced       bool // the trace series are exported: a hop answered (hop, ttl) or none did
	stages       span
	dns          span
	duration     time.Duration
	lastRun      float64 // unix seconds
	lastSuccess  float64
	failure      *probe.Error
	tls          tlsRow
	http         probe.HTTPInfo
	hop          string
	ttl          int
	revocation   []probe.RevocationCheck
	pacUsed      string // the PAC entry that carried the run; "" off pac paths or when none did
	pacFallback  bool
}

// tlsRow is the TLSInfo of a row; version is 0 without a handshake.
type tlsRow struct {
	present         bool
	swept, accepted uint8 // bit i for probe.TLSVersions[i]
	version         uint16
	intercepted     bool
	cipher, issuer  string
	notAfter        float64
}

type stageRow struct {
	stage    probe.Stage
	duration time.Duration
}

type dnsRow struct {
	resolver, qtype, rcode string
	duration               time.Duration
	answers                int32
	success                bool
}

type failureRow struct {
	key FailureKey
	n   uint64
}

// copyChunk is how many entries are copied per hold of the store's lock.
const copyChunk = 256

// copyRows copies the store's entries, in key order, into x, unless ctx
// ends first.
func (s *Store) copyRows(ctx context.Context, x *scrape) error {
	s.mu.RLock()
	for _, k := range s.keys {
		x.entries = append(x.entries, s.entries[k])
	}
	s.mu.RUnlock()
	x.rows = slices.Grow(x.rows, len(x.entries))
	for i := 0; i < len(x.entries); {
		if err := ctx.Err(); err != nil {
			return err
		}
		s.mu.RLock()
		for end := min(i+copyChunk, len(x.entries)); i < end; i++ {
			x.add(x.entries[i])
		}
		s.mu.RUnlock()
	}
	return nil
}

// add appends the row of e.
func (x *scrape) add(e *Entry) {
	x.rows = append(x.rows, row{labels: e.labels, dnsLabels: e.dnsLabels, runs: e.Runs})
	rw := &x.rows[len(x.rows)-1]
	from := len(x.failures)
	for k, n := range e.Failures {
		x.failures = append(x.failures, failureRow{k, n})
	}
	rw.failures = span{int32(from), int32(len(x.failures))}
	r := e.Last
	if r == nil {
		return
	}
	rw.ran = true
	rw.success = r.Success()
	rw.duration = r.Duration
	from = len(x.stages)
	for i := range r.Stages {
		x.stages = append(x.stages, stageRow{r.Stages[i].Stage, r.Stages[i].Duration})
	}
	rw.stages = span{int32(from), int32(len(x.stages))}
	rw.lastRun = unix(r.Start.Add(r.Duration))
	if !e.LastSuccess.IsZero() {
		rw.lastSuccess, rw.succeeded = unix(e.LastSuccess), true
	}
	rw.failure = r.Err
	if tl := r.TLS; tl != nil {
		rw.tls = tlsRow{present: true, version: tl.Version, intercepted: tl.Intercepted, cipher: tl.Cipher, issuer: tl.Issuer, notAfter: unix(tl.NotAfter)}
		for i, v := range probe.TLSVersions {
			if ok, swept := tl.Accepted[v]; swept {
				rw.tls.swept |= 1 << i
				if ok {
					rw.tls.accepted |= 1 << i
				}
			}
		}
	}
	if r.HTTP != nil {
		rw.http, rw.hasHTTP = *r.HTTP, true
	}
	rw.hop, rw.ttl, rw.traced = traceSeries(r)
	rw.revocation = r.Revocation
	if p := r.PAC; p != nil {
		rw.pacUsed, rw.pacFallback = p.Used, p.Fallback
	}
	from = len(x.dns)
	for i := range r.DNS {
		d := &r.DNS[i]
		x.dns = append(x.dns, dnsRow{d.Resolver, d.QType, d.Rcode, d.Duration, int32(len(d.Answers)), d.Success})
	}
	rw.dns = span{int32(from), int32(len(x.dns))}
}

// reset empties the lists, dropping what they point to.
func (x *scrape) reset() {
	clear(x.entries)
	clear(x.rows)
	clear(x.stages)
	clear(x.dns)
	clear(x.failures)
	x.entries, x.rows, x.stages, x.dns, x.failures = x.entries[:0], x.rows[:0], x.stages[:0], x.dns[:0], x.failures[:0]
}

// family appends family f's samples of rw.
func (x *scrape) family(f int, rw *row) {
	open := families[f].open
	switch f {
	case fRuns:
		for i, result := range [2]string{"failure", "success"} {
			x.sample(open, rw.labels)
			x.label(`,result="`, result)
			x.value(float64(rw.runs[i]))
		}
	case fFailures:
		for _, fr := range x.failures[rw.failures.from:rw.failures.to] {
			x.sample(open, rw.labels)
			x.label(`,stage="`, string(fr.key.Stage))
			x.label(`,reason="`, string(fr.key.Reason))
			x.value(float64(fr.n))
		}
	}
	if !rw.ran {
		return
	}
	switch f {
	case fSuccess:
		x.gauge(open, rw.labels, bool01(rw.success))
	case fDuration:
		x.sample(open, rw.labels)
		x.seconds(rw.duration)
	case fStageLast:
		for _, st := range x.stages[rw.stages.from:rw.stages.to] {
			x.sample(open, rw.labels)
			x.label(`,stage="`, string(st.stage))
			x.seconds(st.duration)
		}
	case fLastRun:
		x.gauge(open, rw.labels, rw.lastRun)
	case fLastSuccess:
		if rw.succeeded {
			x.gauge(open, rw.labels, rw.lastSuccess)
		}
	case fReason:
		if rw.failure != nil {
			x.sample(open, rw.labels)
			x.label(`,stage="`, string(rw.failure.Stage))
			x.label(`,reason="`, string(rw.failure.Reason))
			x.value(1)
		}
	case fTLSAccepted, fTLSNegotiated, fTLSIntercepted, fTLSIssuer, fTLSNotAfter:
		x.tls(f, open, rw.labels, &rw.tls)
	case fHTTPStatus:
		if rw.hasHTTP {
			x.gauge(open, rw.labels, float64(rw.http.Status))
		}
	case fHTTPSkew:
		if rw.hasHTTP && rw.http.HasDate {
			x.sample(open, rw.labels)
			x.seconds(rw.http.ClockSkew)
		}
	case fTraceLastHop:
		if rw.traced && rw.hop != "" {
			x.sample(open, rw.labels)
			x.label(`,hop="`, rw.hop)
			x.value(1)
		}
	case fTraceHops:
		if rw.traced {
			x.gauge(open, rw.labels, float64(rw.ttl))
		}
	case fTLSRevocation:
		for i := range rw.revocation {
			c := &rw.revocation[i]
			x.sample(open, rw.labels)
			x.label(`,kind="`, c.Kind)
			x.label(`,url="`, c.URL)
			x.value(bool01(c.Reachable))
		}
	case fPACProxy:
		if rw.pacUsed != "" {
			x.sample(open, rw.labels)
			x.label(`,proxy="`, rw.pacUsed)
			x.value(1)
		}
	case fPACFallback:
		if rw.pacUsed != "" {
			x.gauge(open, rw.labels, bool01(rw.pacFallback))
		}
	case fDNSSuccess, fDNSDuration, fDNSAnswers, fDNSRcode:
		for i := rw.dns.from; i < rw.dns.to; i++ {
			x.dnsSample(f, open, rw.dnsLabels, &x.dns[i])
		}
	}
}

func (x *scrape) tls(f int, open, labels string, tl *tlsRow) {
	if !tl.present {
		return
	}
	if f == fTLSAccepted {
		for i, v := range probe.TLSVersions {
			if tl.swept&(1<<i) != 0 {
				x.sample(open, labels)
				x.label(`,version="`, probe.TLSVersionName(v))
				x.value(bool01(tl.accepted&(1<<i) != 0))
			}
		}
		return
	}
	if tl.version == 0 {
		return
	}
	switch f {
	case fTLSNegotiated:
		x.sample(open, labels)
		x.label(`,version="`, probe.TLSVersionName(tl.version))
		x.label(`,cipher="`, tl.cipher)
		x.value(1)
	case fTLSIntercepted:
		x.gauge(open, labels, bool01(tl.intercepted))
	case fTLSIssuer:
		x.sample(open, labels)
		x.label(`,issuer="`, tl.issuer)
		x.value(1)
	case fTLSNotAfter:
		x.gauge(open, labels, tl.notAfter)
	}
}

func (x *scrape) dnsSample(f int, open, labels string, d *dnsRow) {
	if f == fDNSRcode && d.rcode == "" {
		return
	}
	x.sample(open, labels)
	x.label(`,resolver="`, d.resolver)
	x.label(`,qtype="`, d.qtype)
	switch f {
	case fDNSSuccess:
		x.value(bool01(d.success))
	case fDNSDuration:
		x.seconds(d.duration)
	case fDNSAnswers:
		x.value(float64(d.answers))
	case fDNSRcode:
		x.label(`,rcode="`, d.rcode)
		x.value(1)
	}
}
