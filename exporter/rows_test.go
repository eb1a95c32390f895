package exporter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/reachd/reachd/probe"
)

// TestRowsHoldTLSVersions: a row keeps the swept versions as bits of a
// uint8.
func TestRowsHoldTLSVersions(t *testing.T) {
	if len(probe.TLSVersions) > 8 {
		t.Fatalf("%d TLS versions do not fit tlsRow's uint8 masks", len(probe.TLSVersions))
	}
}

// TestScrapeWhileProbesRun scrapes twice at a time while results are
// recorded and amended and a reload replaces probes: every scrape is
// valid exposition text (and, with -race, none races with the store),
// and once the store is still a scrape is what it was before.
func TestScrapeWhileProbesRun(t *testing.T) {
	probes := make([]fakeProbe, 300)
	for i := range probes {
		probes[i] = fake(fmt.Sprintf("t%03d", i))
	}
	store := NewStore()
	store.SetStageHistograms(true)
	Sync(store, probes)
	for _, p := range probes {
		store.Record(p.Key(), okResult(p))
	}
	get := func() []byte {
		var b bytes.Buffer
		if err := store.writeProbeFamilies(t.Context(), &b); err != nil {
			t.Error(err)
		}
		return b.Bytes()
	}
	before := get()

	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Go(func() {
		defer close(done)
		for round := range 20 {
			for i, p := range probes {
				r := okResult(p)
				if (i+round)%7 == 0 {
					r = badResult(p)
				}
				store.Record(p.Key(), r)
				store.Amend(p.Key(), r)
			}
			Sync(store, probes[round%2:]) // the first probe comes and goes
		}
		Sync(store, probes)
	})
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				body := get()
				parser := expfmt.NewTextParser(model.LegacyValidation)
				if _, err := parser.TextToMetricFamilies(bytes.NewReader(body)); err != nil {
					t.Errorf("a scrape while probes run is not valid exposition text: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()

	// The same results again: the same bytes, but the counters.
	for _, p := range probes {
		store.Record(p.Key(), okResult(p))
	}
	after := get()
	drop := func(b []byte) string {
		var keep []string
		for _, l := range strings.Split(string(b), "\n") {
			if !strings.Contains(l, "_total") && !strings.Contains(l, "_stage_duration_seconds") && !strings.Contains(l, "last_success") {
				keep = append(keep, l)
			}
		}
		return strings.Join(keep, "\n")
	}
	if drop(after) != drop(before) {
		t.Errorf("a scrape of the same results differs after the concurrent ones")
	}
}

// TestScrapeStopsWhenTheClientLeaves: a scrape whose request ended writes
// nothing more and gives its scratch back.
func TestScrapeStopsWhenTheClientLeaves(t *testing.T) {
	store := NewStore()
	probes := make([]fakeProbe, 2000)
	for i := range probes {
		probes[i] = fake(fmt.Sprintf("t%04d", i))
	}
	Sync(store, probes)
	for _, p := range probes {
		store.Record(p.Key(), okResult(p))
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var b bytes.Buffer
	if err := store.writeProbeFamilies(ctx, &b); !errors.Is(err, context.Canceled) || b.Len() > 0 {
		t.Errorf("after the client left: %v, %d bytes written", err, b.Len())
	}
	if store.scrape.Load() == nil {
		t.Error("the scratch was not given back")
	}
}
