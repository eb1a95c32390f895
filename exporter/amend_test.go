package exporter

import (
	"errors"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/reachd/reachd/probe"
)

// TestStoreAmend: a first run recorded in two parts (the stages' result,
// then the whole run once the sweep ended) counts once, keeps one history
// point, and exports the sweep's versions once amended. An amendment that
// is not of the stored run, or that changed the verdict, changes nothing.
func TestStoreAmend(t *testing.T) {
	store := NewStore()
	p := fake("a")
	Sync(store, []fakeProbe{p})
	if store.HasResult(p.Key()) || store.HasResult("no/such/probe/direct") {
		t.Fatal("a result before any run")
	}
	whole := okResult(p)
	stages := whole
	tls := *whole.TLS
	tls.Accepted = nil
	stages.TLS = &tls
	if tr := store.Record(p.Key(), stages); !tr.Known || !tr.First {
		t.Fatalf("recording the stages: %+v", tr)
	}
	if !store.HasResult(p.Key()) {
		t.Fatal("no result after the stages were recorded")
	}
	metrics := func() string {
		rec := httptest.NewRecorder()
		NewServer(store, NewState(), ServerOptions{Logger: slog.New(slog.DiscardHandler)}).Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		return rec.Body.String()
	}
	if m := metrics(); strings.Contains(m, "reachd_tls_version_accepted{") || !strings.Contains(m, "reachd_probe_success{") {
		t.Errorf("before the sweep: versions exported, or no result:\n%s", m)
	}

	other := whole
	other.Start = whole.Start.Add(1)
	failed := whole
	failed.Err = &probe.Error{Stage: probe.StageHTTP, Reason: probe.Internal, Err: errors.New("panic: extra bug")}
	replaced := whole
	replaced.Version = "v0"
	for name, r := range map[string]probe.Result{"another run": other, "a changed verdict": failed, "a replaced prober": replaced} {
		if store.Amend(p.Key(), r) {
			t.Errorf("%s amended the stored run", name)
		}
	}
	if store.Amend("no/such/probe/direct", whole) {
		t.Error("amended a probe that is not configured")
	}
	if !store.Amend(p.Key(), whole) {
		t.Fatal("the run's own completion was refused")
	}
	m := metrics()
	for _, want := range []string{`version="1.3"} 1`, `result="success"} 1`, `result="failure"} 0`} {
		if !strings.Contains(m, want) {
			t.Errorf("after the sweep: no %s in\n%s", want, m)
		}
	}
	store.Range(func(e *Entry) {
		if e.Runs != [2]uint64{0, 1} || len(e.History) != 1 || e.Last.TLS.Accepted == nil || !e.Last.Start.Equal(whole.Start) {
			t.Errorf("after the amendment: runs %v, history %d, last %+v", e.Runs, len(e.History), e.Last.TLS)
		}
	})
}
