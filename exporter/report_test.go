package exporter

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/reachd/reachd/probe"
)

// TestResultsAPIStates: /api/v1/results lists every configured probe, the
// pending ones too, each with its last run and the time its state began;
// started is the daemon's start, not the request's time.
func TestResultsAPIStates(t *testing.T) {
	store := NewStore()
	a, b, c := fake("a"), fake("b"), fake("c")
	Sync(store, []fakeProbe{a, b, c})
	// a: down at t0, down again a minute later (since stays), then up.
	bad := badResult(a)
	store.Record(a.Key(), bad)
	bad.Start = t0.Add(time.Minute)
	store.Record(a.Key(), bad)
	ok := okResult(a)
	ok.Start = t0.Add(2 * time.Minute)
	store.Record(a.Key(), ok)
	// b: down twice; c: never ran.
	store.Record(b.Key(), badResult(b))
	bad = badResult(b)
	bad.Start = t0.Add(time.Minute)
	store.Record(b.Key(), bad)

	state := NewState()
	state.Loaded("osaka")
	started := state.View().Started
	rec := httptest.NewRecorder()
	NewServer(store, state, ServerOptions{Logger: slog.New(slog.DiscardHandler)}).Handler().
		ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/results", nil))
	var doc struct {
		Started time.Time `json:"started"`
		Results []map[string]any
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil || rec.Code != 200 {
		t.Fatalf("%d %v:\n%s", rec.Code, err, rec.Body)
	}
	if !doc.Started.Equal(started.Truncate(time.Nanosecond)) || doc.Started.Location() != time.UTC {
		t.Errorf("started %v, want the daemon's start %v", doc.Started, started)
	}
	if len(doc.Results) != 3 {
		t.Fatalf("%d results, want 3 (the pending one listed)", len(doc.Results))
	}
	type want struct{ target, state, lastRun, since any }
	for i, w := range []want{
		{"a", "up", "2026-11-22T06:02:00Z", "2026-11-22T06:02:00.25Z"}, // the up run's end
		{"b", "down", "2026-11-22T06:01:00Z", "2026-11-22T06:00:01Z"},  // the first down run's end
		{"c", "pending", nil, nil},
	} {
		r := doc.Results[i]
		if got := (want{r["target"], r["state"], r["last_run"], r["since"]}); got != w {
			t.Errorf("result %d: %v, want %v", i, got, w)
		}
	}
	if p := doc.Results[2]; p["success"] != false || p["stage"] != "" || p["reason"] != "" || p["tls"] != nil || len(p["stages"].([]any)) != 0 {
		t.Errorf("pending entry %v", p)
	}
}

// TestCheckReportTimes: the report of single runs (reachd check) carries
// the same fields: each run's start, and its end as the state's start.
func TestCheckReportTimes(t *testing.T) {
	a := fake("a")
	bad := badResult(a)
	data, err := json.Marshal(NewReport("osaka", t0, []*probe.Result{&bad}))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ Results []map[string]any }
	json.Unmarshal(data, &doc)
	if r := doc.Results[0]; r["state"] != "down" || r["last_run"] != "2026-11-22T06:00:00Z" || r["since"] != "2026-11-22T06:00:01Z" {
		t.Errorf("check result %v", r)
	}
}

// TestStateWarnings: the config's warnings reach the page's input, a
// copy; a failed reload keeps them, as it keeps the config.
func TestStateWarnings(t *testing.T) {
	st := NewState()
	ws := []string{"reachd.toml:9: path env: environment path with no proxy set"}
	st.SetWarnings(ws)
	st.Loaded("osaka")
	ws[0] = "changed"
	st.Failed(errors.New("bad"))
	if v := st.View(); len(v.Warnings) != 1 || v.Warnings[0] != "reachd.toml:9: path env: environment path with no proxy set" {
		t.Errorf("warnings %q", v.Warnings)
	}
}

// TestWriteReportIsTheEncoding: the streamed /api/v1/results document is
// byte for byte what json.Encoder with a two-space indent makes of
// Report: pending, up and down probes, per-resolver DNS entries, and an
// empty store ("results": [], "dns": []).
func TestWriteReportIsTheEncoding(t *testing.T) {
	full := NewStore()
	a, b, c := fake("a"), fake("b"), fake("c")
	Sync(full, []fakeProbe{a, b, c})
	full.Record(a.Key(), okResult(a))
	bad := badResult(b)
	bad.DNS = []probe.DNSResult{{Resolver: "corp", QType: "A", Rcode: "SERVFAIL", Reason: probe.DNSServFail}}
	full.Record(b.Key(), bad)
	var benchLike = benchResult(c, 0, rand.New(rand.NewPCG(1, 2)))
	benchLike.Target.Host = `h<&>"q".example` // escaped as the encoder escapes it
	full.Record(c.Key(), benchLike)
	for _, tt := range []struct {
		name  string
		store *Store
	}{{"probes", full}, {"empty", NewStore()}} {
		t.Run(tt.name, func(t *testing.T) {
			var want, got bytes.Buffer
			enc := json.NewEncoder(&want)
			enc.SetIndent("", "  ")
			if err := enc.Encode(tt.store.Report("osaka <1>", t0)); err != nil {
				t.Fatal(err)
			}
			if err := tt.store.WriteReport(context.Background(), &got, "osaka <1>", t0); err != nil {
				t.Fatal(err)
			}
			if got.String() != want.String() {
				t.Errorf("streamed:\n%s\nencoded:\n%s", got.String(), want.String())
			}
		})
	}
	// A client that left stops the writing.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := full.WriteReport(ctx, io.Discard, "osaka", t0); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}
