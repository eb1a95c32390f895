package exporter

import (
	"github.com/reachd/reachd/probe"
	"github.com/reachd/reachd/targets"
)

// ProbeInfo is one configured probe (a target over a path), as
// /api/v1/targets lists it.
type ProbeInfo struct {
	Vendor          string   `json:"vendor"`
	Region          string   `json:"region"`
	Target          string   `json:"target"`
	Host            string   `json:"host"`
	Port            int      `json:"port"`
	Path            string   `json:"path"`
	Checks          []string `json:"checks"`
	IntervalSeconds float64  `json:"interval_seconds"`
	TimeoutSeconds  float64  `json:"timeout_seconds"`
}

// TargetsReport is the JSON document of /api/v1/targets.
type TargetsReport struct {
	Site    string      `json:"site"`
	Targets []ProbeInfo `json:"targets"`
}

// Probes lists the configured probes in key order.
func (s *Store) Probes() []ProbeInfo {
	out := []ProbeInfo{}
	s.Range(func(e *Entry) {
		t := e.Target
		checks := append([]string{}, t.Checks...)
		out = append(out, ProbeInfo{Vendor: t.Vendor, Region: t.Region, Target: t.Name, Host: t.Host, Port: t.Port, Path: e.Path,
			Checks: checks, IntervalSeconds: t.Interval.Seconds(), TimeoutSeconds: t.Timeout.Seconds()})
	})
	return out
}

// probeKey finds the configured probe of a target ("vendor/region/name")
// over a path; without a path, over the target's first path.
func (s *Store) probeKey(target, path string) (string, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if path != "" {
		e, ok := s.entries[target+"/"+path]
		return target + "/" + path, ok && e.Target.ID() == target && e.Path == path
	}
	var first *Entry // the target's first configured path, else its first key
	for _, k := range s.keys {
		e := s.entries[k]
		if e.Target.ID() != target {
			continue
		}
		if len(e.Target.Paths) > 0 && e.Path == e.Target.Paths[0] {
			return k, true
		}
		if first == nil {
			first = e
		}
	}
	if first == nil {
		return "", false
	}
	return first.Key, true
}

// oneProbe is a probe known only by its result: the throwaway store of
// /probe holds one.
type oneProbe struct {
	key string
	r   *probe.Result
}

func (o oneProbe) Key() string             { return o.key }
func (o oneProbe) Version() string         { return o.r.Version }
func (o oneProbe) Target() *targets.Target { return o.r.Target }
func (o oneProbe) Path() string            { return o.r.Path }

// storeOf returns a store holding only the result r of the probe key.
func storeOf(key string, r probe.Result) *Store {
	s := NewStore()
	Sync(s, []oneProbe{{key: key, r: &r}})
	s.Record(key, r)
	return s
}
