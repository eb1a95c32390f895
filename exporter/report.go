package exporter

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"time"

	"github.com/reachd/reachd/probe"
	"github.com/reachd/reachd/targets"
)

// Report is the JSON document of `reachd check --format json` and
// /api/v1/results (DESIGN §8). Started is when the daemon (or the check)
// started.
type Report struct {
	Site    string         `json:"site"`
	Started time.Time      `json:"started"`
	Results []ResultReport `json:"results"`
	DNS     []DNSReport    `json:"dns"`
}

// ResultReport is one probe (target x path). TLS and HTTP are null until
// the probe reached that stage. State is "up", "down" or "pending" (a
// configured probe whose first run has not ended: success false, no stage
// or reason, LastRun and Since null). LastRun is when the last run started;
// Since when the current state was first seen (the end of the run that
// began it; for a single run, as in `reachd check`, that run's end).
type ResultReport struct {
	Vendor          string        `json:"vendor"`
	Region          string        `json:"region"`
	Target          string        `json:"target"`
	Host            string        `json:"host"`
	Port            int           `json:"port"`
	Path            string        `json:"path"`
	State           string        `json:"state"`
	LastRun         *time.Time    `json:"last_run"`
	Since           *time.Time    `json:"since"`
	Success         bool          `json:"success"`
	Stage           string        `json:"stage"`
	Reason          string        `json:"reason"`
	Detail          string        `json:"detail"`
	Hint            string        `json:"hint"`
	DurationSeconds float64       `json:"duration_seconds"`
	Stages          []StageReport `json:"stages"`
	TLS             *TLSReport    `json:"tls"`
	HTTP            *HTTPReport   `json:"http"`
	PAC             *PACReport    `json:"pac,omitempty"` // pac and wpad paths only
	// Trace is the path trace of a failing direct probe (DESIGN §5).
	Trace *TraceReport `json:"trace,omitempty"`
	// Revocation is what the verified chain's OCSP, CRL and caIssuers
	// URLs answered over the probe's path.
	Revocation []RevocationReport `json:"revocation,omitempty"`
}

// TraceReport is a path trace: where the SYN stops, and each hop. On a
// system that cannot trace, Unsupported says so and there are no hops.
type TraceReport struct {
	Target      string      `json:"target"` // address:port traced
	Verdict     string      `json:"verdict"`
	Hops        []HopReport `json:"hops"`
	Unsupported string      `json:"unsupported,omitempty"`
}

// HopReport is one TTL of a trace: Addr is empty and RTTSeconds 0 when
// nothing answered; ICMP names the router's error ("time exceeded",
// "admin prohibited"); Reached marks the target's own answer.
type HopReport struct {
	TTL        int     `json:"ttl"`
	Addr       string  `json:"addr"`
	RTTSeconds float64 `json:"rtt_seconds"`
	ICMP       string  `json:"icmp"`
	Reached    bool    `json:"reached,omitempty"`
}

// RevocationReport is one revocation or issuer URL of the verified chain.
type RevocationReport struct {
	Kind      string `json:"kind"` // ocsp, crl, aia
	URL       string `json:"url"`
	Reachable bool   `json:"reachable"`
	Status    int    `json:"status"` // 0 when no HTTP answer came
	Detail    string `json:"detail"`
}

// StageReport is one stage of a run.
type StageReport struct {
	Stage           string  `json:"stage"`
	Success         bool    `json:"success"`
	DurationSeconds float64 `json:"duration_seconds"`
}

// TLSReport holds the TLS facts; Version and Cipher are empty when the
// handshake failed but the sweep ran.
type TLSReport struct {
	Version          string          `json:"version"`
	Cipher           string          `json:"cipher"`
	Issuer           string          `json:"issuer"`
	Intercepted      bool            `json:"intercepted"`
	NotAfter         *time.Time      `json:"not_after"`
	VersionsAccepted map[string]bool `json:"versions_accepted"`
}

// HTTPReport holds the HTTP facts.
type HTTPReport struct {
	Status           int      `json:"status"`
	ClockSkewSeconds *float64 `json:"clock_skew_seconds"`
}

// DNSReport is one target x resolver x query type check.
type DNSReport struct {
	Vendor   string   `json:"vendor"`
	Region   string   `json:"region"`
	Target   string   `json:"target"`
	Host     string   `json:"host"`
	Resolver string   `json:"resolver"`
	QType    string   `json:"qtype"`
	Success  bool     `json:"success"`
	Rcode    string   `json:"rcode"`
	Answers  []string `json:"answers"`
	Reason   string   `json:"reason"`
	// Source is "hosts" (a system resolver's hosts file) or the server
	// that answered; empty when none did.
	Source string `json:"source"`
	// Name is the name answered when the search list lengthened the host.
	Name string `json:"name,omitempty"`
	// Warning flags a hosts file pin that DNS contradicts.
	Warning string `json:"warning,omitempty"`
}

// PACReport is what the PAC of a pac or wpad path chose for the result:
// the file (for wpad, the URL found), its answer for the target, the
// entry that carried the probe ("PROXY b:8080", "DIRECT"; empty when
// none did) and the last refetch's error while an older copy is in use.
type PACReport struct {
	Source    string `json:"source"`
	Answer    string `json:"answer"`
	ProxyUsed string `json:"proxy_used"`
	// Fallback: proxy_used is not the answer's first choice, which could
	// not be reached.
	Fallback   bool   `json:"fallback"`
	FetchError string `json:"fetch_error,omitempty"`
}

// NewResultReport turns a result into its JSON form.
func NewResultReport(r *probe.Result) ResultReport {
	t := r.Target
	out := ResultReport{Vendor: t.Vendor, Region: t.Region, Target: t.Name, Host: t.Host, Port: t.Port, Path: r.Path,
		State: stateUp, Success: r.Success(), DurationSeconds: r.Duration.Seconds(), Stages: []StageReport{}}
	start, end := r.Start.UTC(), r.Start.Add(r.Duration).UTC()
	out.LastRun, out.Since = &start, &end
	if e := r.Err; e != nil {
		out.State = stateDown
		out.Stage, out.Reason, out.Hint = string(e.Stage), string(e.Reason), e.Reason.Hint()
		if e.Err != nil {
			out.Detail = e.Err.Error()
		}
	}
	for _, s := range r.Stages {
		out.Stages = append(out.Stages, StageReport{Stage: string(s.Stage), Success: s.Success, DurationSeconds: s.Duration.Seconds()})
	}
	if tl := r.TLS; tl != nil {
		tr := &TLSReport{Issuer: tl.Issuer, Intercepted: tl.Intercepted}
		if tl.Version != 0 {
			tr.Version, tr.Cipher = probe.TLSVersionName(tl.Version), tl.Cipher
			na := tl.NotAfter.UTC()
			tr.NotAfter = &na
		}
		if tl.Accepted != nil {
			tr.VersionsAccepted = map[string]bool{}
			for v, ok := range tl.Accepted {
				tr.VersionsAccepted[probe.TLSVersionName(v)] = ok
			}
		}
		out.TLS = tr
	}
	if h := r.HTTP; h != nil {
		hr := &HTTPReport{Status: h.Status}
		if h.HasDate {
			s := h.ClockSkew.Seconds()
			hr.ClockSkewSeconds = &s
		}
		out.HTTP = hr
	}
	if tr := r.Trace; tr != nil {
		out.Trace = newTraceReport(tr)
	}
	for _, c := range r.Revocation {
		out.Revocation = append(out.Revocation, RevocationReport{Kind: c.Kind, URL: c.URL, Reachable: c.Reachable, Status: c.Status, Detail: c.Detail})
	}
	if p := r.PAC; p != nil {
		out.PAC = &PACReport{Source: p.Source, Answer: p.Answer, ProxyUsed: p.Used, Fallback: p.Fallback, FetchError: p.FetchError}
	}
	return out
}

func newTraceReport(t *probe.TraceInfo) *TraceReport {
	out := &TraceReport{Target: t.Target.String(), Verdict: t.Verdict, Hops: []HopReport{}, Unsupported: t.Unsupported}
	for _, h := range t.Hops {
		hr := HopReport{TTL: h.TTL, ICMP: h.ICMP, Reached: h.Reached}
		if h.Answered() {
			hr.Addr, hr.RTTSeconds = h.Addr.String(), h.RTT.Seconds()
		}
		out.Hops = append(out.Hops, hr)
	}
	return out
}

// NewDNSReports turns a result's per-resolver DNS checks into JSON form.
func NewDNSReports(r *probe.Result) []DNSReport {
	var out []DNSReport
	for _, d := range r.DNS {
		answers := d.Answers
		if answers == nil {
			answers = []string{}
		}
		out = append(out, DNSReport{Vendor: r.Target.Vendor, Region: r.Target.Region, Target: r.Target.Name, Host: r.Target.Host, Resolver: d.Resolver, QType: d.QType,
			Success: d.Success, Rcode: d.Rcode, Answers: answers, Reason: string(d.Reason),
			Source: d.Source, Name: d.Name, Warning: d.Warning})
	}
	return out
}

// NewReport builds the report of a set of results.
func NewReport(site string, started time.Time, results []*probe.Result) Report {
	rep := Report{Site: site, Started: started.UTC(), Results: []ResultReport{}, DNS: []DNSReport{}}
	for _, r := range results {
		rep.Results = append(rep.Results, NewResultReport(r))
		rep.DNS = append(rep.DNS, NewDNSReports(r)...)
	}
	return rep
}

// Report returns the stored last results as a report, in key order, with
// the probes that have not run yet as pending; started is the daemon's
// start.
func (s *Store) Report(site string, started time.Time) Report {
	rep := Report{Site: site, Started: started.UTC(), Results: []ResultReport{}, DNS: []DNSReport{}}
	for _, sn := range s.reportSnapshot() {
		rep.Results = append(rep.Results, sn.result())
		if sn.last != nil {
			rep.DNS = append(rep.DNS, NewDNSReports(sn.last)...)
		}
	}
	return rep
}

// WriteReport writes Report's JSON document to w, indented by two spaces
// as json.Encoder with SetIndent("", "  ") writes it, byte for byte, but
// one result at a time: at 10,000 probes the whole document is about 20
// MB, which a poll of /api/v1/results would otherwise hold in memory
// twice (the report, then its encoding). The store's lock is held only
// while the entries' last results are noted; stored results are never
// changed, only replaced.
func (s *Store) WriteReport(ctx context.Context, w io.Writer, site string, started time.Time) error {
	snaps := s.reportSnapshot()
	bw := bufio.NewWriterSize(w, 64<<10)
	head, err := json.Marshal(site)
	if err != nil {
		return err
	}
	when, err := json.Marshal(started.UTC())
	if err != nil {
		return err
	}
	bw.WriteString("{\n  \"site\": ")
	bw.Write(head)
	bw.WriteString(",\n  \"started\": ")
	bw.Write(when)
	bw.WriteString(",\n  \"results\": [")
	// One encoder for every item: it reuses its buffers.
	var item bytes.Buffer
	enc := json.NewEncoder(&item)
	enc.SetIndent("    ", "  ")
	n := 0
	add := func(v any) error {
		if n%256 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		item.Reset()
		if err := enc.Encode(v); err != nil {
			return err
		}
		if n > 0 {
			bw.WriteByte(',')
		}
		bw.WriteString("\n    ")
		bw.Write(bytes.TrimSuffix(item.Bytes(), []byte("\n")))
		n++
		return nil
	}
	end := func() {
		if n > 0 {
			bw.WriteString("\n  ")
		}
		bw.WriteByte(']')
	}
	for _, sn := range snaps {
		if err := add(sn.result()); err != nil {
			return err
		}
	}
	end()
	bw.WriteString(",\n  \"dns\": [")
	n = 0
	for _, sn := range snaps {
		if sn.last == nil {
			continue
		}
		for _, d := range NewDNSReports(sn.last) {
			if err := add(d); err != nil {
				return err
			}
		}
	}
	end()
	bw.WriteString("\n}\n")
	return bw.Flush()
}

// reportEntry is what a report needs of an entry, noted under the lock.
type reportEntry struct {
	target *targets.Target
	path   string
	last   *probe.Result
	since  time.Time
}

func (s *Store) reportSnapshot() []reportEntry {
	var out []reportEntry
	s.Range(func(e *Entry) {
		out = append(out, reportEntry{target: e.Target, path: e.Path, last: e.Last, since: e.Since})
	})
	return out
}

// result is the entry's report: its last run, or pending.
func (sn reportEntry) result() ResultReport {
	if sn.last == nil {
		t := sn.target
		return ResultReport{Vendor: t.Vendor, Region: t.Region, Target: t.Name, Host: t.Host, Port: t.Port, Path: sn.path,
			State: statePending, Stages: []StageReport{}}
	}
	r := NewResultReport(sn.last)
	since := sn.since.UTC()
	r.Since = &since
	return r
}
