package exporter

import (
	"sync"
	"time"
)

// State is the daemon's own state that pages and metrics show beside the
// results: the site, the reload outcome, the start time.
type State struct {
	mu            sync.RWMutex
	site          string
	started       time.Time
	reloadOK      bool
	reloadSuccess time.Time
	reloadErr     string
	ready         bool
	warnings      []string
}

// NewState returns the state of a daemon that started now.
func NewState() *State { return &State{started: time.Now()} }

// Loaded records a successful (re)load of the config of site.
func (s *State) Loaded(site string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.site, s.reloadOK, s.reloadSuccess, s.reloadErr, s.ready = site, true, time.Now(), "", true
}

// Failed records a reload that failed validation; the old config keeps serving.
func (s *State) Failed(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reloadOK, s.reloadErr = false, err.Error()
}

// SetWarnings records the running config's warnings (problems that did
// not stop the load, such as an environment path with no proxy set), for
// the status page. A reload that fails keeps the previous ones, as it
// keeps the previous config.
func (s *State) SetWarnings(warnings []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.warnings = append([]string(nil), warnings...)
}

// StateView is a copy of the state.
type StateView struct {
	Site          string
	Started       time.Time
	ReloadOK      bool
	ReloadSuccess time.Time
	ReloadErr     string
	Ready         bool
	Warnings      []string // the running config's; do not modify
}

// View returns a copy of the state.
func (s *State) View() StateView {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return StateView{s.site, s.started, s.reloadOK, s.reloadSuccess, s.reloadErr, s.ready, s.warnings}
}

func unix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
