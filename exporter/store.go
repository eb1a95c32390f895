// Package exporter keeps the probe results and serves them: the
// Prometheus collector, the status page, the JSON API and the daemon's
// lifecycle endpoints.
package exporter

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/reachd/reachd/probe"
	"github.com/reachd/reachd/targets"
)

// HistoryLen is how many recent runs an entry remembers for the status page.
const HistoryLen = 60

// StageBuckets are the bounds of the stage duration histograms, in seconds.
var StageBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// Store holds, per probe, the last result, the counters and the recent
// history. Readers see a consistent view through Range.
type Store struct {
	mu      sync.RWMutex
	entries map[string]*Entry
	keys    []string // sorted, for stable output
	// stageHistograms exports the per-probe stage histograms ([metrics]
	// stage_histograms); off by default, for the series budget.
	stageHistograms atomic.Bool
	// scrape is the scratch of the last GET /metrics, kept for the next
	// (exposition.go).
	scrape atomic.Pointer[scrape]
}

// Entry is one probe's state. Its fields change only under the store's
// lock; read them inside Range.
type Entry struct {
	Key     string
	Version string
	Target  *targets.Target
	Path    string

	Last        *probe.Result // nil until the first run ends
	Runs        [2]uint64     // [failure, success]
	Failures    map[FailureKey]uint64
	Stages      map[probe.Stage]*probe.Histogram
	LastSuccess time.Time
	Since       time.Time // when the current state (up or down) began
	History     []HistoryPoint

	// labels and dnsLabels are the entry's escaped label sets in /metrics.
	labels, dnsLabels string
}

// FailureKey counts failures by stage and reason.
type FailureKey struct {
	Stage  probe.Stage
	Reason probe.Reason
}

// HistoryPoint is one past run, for the status page.
type HistoryPoint struct {
	Time    time.Time
	Success bool
	Reason  probe.Reason
}

// Probe is what the store needs to know of a configured probe.
type Probe interface {
	Key() string
	Version() string
	Target() *targets.Target
	Path() string
}

// NewStore returns an empty store.
func NewStore() *Store { return &Store{entries: map[string]*Entry{}} }

// Sync makes probes the stored set: entries of removed probes go at once
// (and with them their series), entries whose probe changed start over,
// unchanged ones keep their results and history.
func Sync[P Probe](s *Store, probes []P) {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := make(map[string]*Entry, len(probes))
	for _, p := range probes {
		if e, ok := s.entries[p.Key()]; ok && e.Version == p.Version() {
			next[p.Key()] = e
			continue
		}
		e := &Entry{Key: p.Key(), Version: p.Version(), Target: p.Target(), Path: p.Path(),
			Failures: map[FailureKey]uint64{}, Stages: map[probe.Stage]*probe.Histogram{}}
		e.labels, e.dnsLabels = probeLabelSets(e.Target, e.Path)
		next[p.Key()] = e
	}
	s.entries = next
	s.keys = s.keys[:0]
	for k := range next {
		s.keys = append(s.keys, k)
	}
	slices.Sort(s.keys)
}

// Transition says how a recorded run changed its probe's state.
type Transition struct {
	Known   bool // false: the probe is no longer configured, or the result is of a prober a reload replaced; it was dropped
	First   bool // the probe's first run
	Changed bool // up became down or down became up (or the reason changed)
}

// Record stores the result of a run of the probe named key.
func (s *Store) Record(key string, r probe.Result) Transition {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[key]
	if !ok || r.Version != "" && r.Version != e.Version {
		// Removed, or replaced by a reload: a late result of the old
		// prober (its run cancelled) is not the new probe's failure.
		return Transition{}
	}
	tr := Transition{Known: true, First: e.Last == nil}
	end := r.Start.Add(r.Duration)
	if tr.First || e.Last.Success() != r.Success() {
		e.Since = end
		tr.Changed = !tr.First
	} else if !r.Success() && e.Last.Err.Reason != r.Err.Reason {
		tr.Changed = true
	}
	e.Last = &r
	if r.Success() {
		e.Runs[1]++
		e.LastSuccess = end
	} else {
		e.Runs[0]++
		e.Failures[FailureKey{r.Err.Stage, r.Err.Reason}]++
	}
	// The histograms cost 13 lines of memory a stage (12 MB at 10,000
	// probes): they are kept only while they are exported.
	for _, st := range r.Stages {
		if !s.stageHistograms.Load() {
			break
		}
		h := e.Stages[st.Stage]
		if h == nil {
			h = probe.NewHistogram(StageBuckets)
			e.Stages[st.Stage] = h
		}
		h.Observe(st.Duration.Seconds())
	}
	p := HistoryPoint{Time: r.Start, Success: r.Success()}
	if r.Err != nil {
		p.Reason = r.Err.Reason
	}
	if len(e.History) == HistoryLen {
		copy(e.History, e.History[1:])
		e.History = e.History[:HistoryLen-1]
	}
	e.History = append(e.History, p)
	return tr
}

// HasResult reports whether the probe named key has a result stored;
// false also when no such probe is configured.
func (s *Store) HasResult(key string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.entries[key]
	return ok && e.Last != nil
}

// Amend completes the stored result of a run recorded in two parts: the
// stages' result first (Record), then the whole run once its extras ended
// (a TLS sweep). It replaces the last result only, so the run is counted
// once and its state change reported once; false, and nothing changed,
// when the stored result is no longer that run's (a reload replaced the
// probe) or when the extras changed the verdict, which only a panic in
// one of them does: then the stages' result stays.
func (s *Store) Amend(key string, r probe.Result) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[key]
	if !ok || e.Last == nil || !e.Last.Start.Equal(r.Start) || e.Last.Version != r.Version || !sameVerdict(e.Last, &r) {
		return false
	}
	e.Last = &r
	return true
}

func sameVerdict(a, b *probe.Result) bool {
	if a.Err == nil || b.Err == nil {
		return a.Err == nil && b.Err == nil
	}
	return a.Err.Stage == b.Err.Stage && a.Err.Reason == b.Err.Reason
}

// Range calls f for every entry in key order, under the read lock: f must
// not keep the entry or call back into the store.
func (s *Store) Range(f func(e *Entry)) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, k := range s.keys {
		f(s.entries[k])
	}
}

// Len is the number of probes stored.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.entries)
}
