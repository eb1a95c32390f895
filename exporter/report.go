package exporter

import (
	"time"

	"github.com/reachd/reachd/probe"
)

// Report is the JSON document of `reachd check --format json` and
// /api/v1/results (DESIGN §8).
type Report struct {
	Site    string         `json:"site"`
	Started time.Time      `json:"started"`
	Results []ResultReport `json:"results"`
	DNS     []DNSReport    `json:"dns"`
}

// ResultReport is one probe (target x path). TLS and HTTP are null until
// the probe reached that stage.
type ResultReport struct {
	Vendor          string        `json:"vendor"`
	Region          string        `json:"region"`
	Target          string        `json:"target"`
	Host            string        `json:"host"`
	Port            int           `json:"port"`
	Path            string        `json:"path"`
	Success         bool          `json:"success"`
	Stage           string        `json:"stage"`
	Reason          string        `json:"reason"`
	Detail          string        `json:"detail"`
	Hint            string        `json:"hint"`
	DurationSeconds float64       `json:"duration_seconds"`
	Stages          []StageReport `json:"stages"`
	TLS             *TLSReport    `json:"tls"`
	HTTP            *HTTPReport   `json:"http"`
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

// NewResultReport turns a result into its JSON form.
func NewResultReport(r *probe.Result) ResultReport {
	t := r.Target
	out := ResultReport{Vendor: t.Vendor, Region: t.Region, Target: t.Name, Host: t.Host, Port: t.Port, Path: r.Path,
		Success: r.Success(), DurationSeconds: r.Duration.Seconds(), Stages: []StageReport{}}
	if e := r.Err; e != nil {
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

// Report returns the stored last results as a report.
func (s *Store) Report(site string, started time.Time) Report {
	var results []*probe.Result
	s.Range(func(e *Entry) {
		if e.Last != nil {
			results = append(results, e.Last)
		}
	})
	return NewReport(site, started, results)
}
