package probe

import (
	"context"
	"crypto/tls"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/reachd/reachd/configs"
	"github.com/reachd/reachd/probe/probetest"
)

// TestRunInTwoParts: Start gives the stages' result, without the sweep,
// and Finish completes it without changing what Start returned (a store
// may hold it already). A failure at tls is not settled: the sweep may
// refine it.
func TestRunInTwoParts(t *testing.T) {
	l := newLab(t)
	srv := l.server("parts.reachd.test")
	legacy := l.server("legacy.reachd.test", probetest.TLSVersions(tls.VersionTLS10, tls.VersionTLS11))
	env := NewEnv(l.config(), "reachd-test")

	p := New(target("parts.reachd.test", srv.Port), configs.Path{Name: "direct"}, env)
	run := p.Start(context.Background())
	stages := run.Stages()
	assertOutcome(t, stages, "", "", "")
	if !run.Settled() || !run.Extras() {
		t.Errorf("a passing run: settled %v, extras %v; want both", run.Settled(), run.Extras())
	}
	if stages.TLS == nil || stages.TLS.Accepted != nil {
		t.Fatalf("the stages' result has the sweep already: %+v", stages.TLS)
	}
	if !run.Due() {
		t.Error("the first run's sweep does not read as due")
	}
	r := run.Finish(context.Background())
	assertOutcome(t, r, "", "", "")
	if r.TLS == nil || !r.TLS.Accepted[tls.VersionTLS12] || !r.TLS.Accepted[tls.VersionTLS13] || r.TLS.Accepted[tls.VersionTLS10] {
		t.Errorf("sweep %+v, want 1.2 and 1.3 accepted, 1.0 not", r.TLS)
	}
	if stages.TLS.Accepted != nil || r.Start != stages.Start || r.Duration != stages.Duration {
		t.Errorf("Finish changed the stages' result (%+v) or its timing", stages.TLS)
	}
	// The next run within the sweep interval has nothing due, and its
	// Finish still attaches the last sweep.
	run = p.Start(context.Background())
	if run.Due() {
		t.Error("a run within the sweep interval reads as due")
	}
	if r := run.Finish(context.Background()); r.TLS == nil || !r.TLS.Accepted[tls.VersionTLS13] {
		t.Errorf("the run that was not due lost the last sweep: %+v", r.TLS)
	}

	p = New(target("legacy.reachd.test", legacy.Port), configs.Path{Name: "direct"}, env)
	run = p.Start(context.Background())
	if run.Settled() {
		t.Errorf("a failure at tls reads as settled before the sweep: %v", run.Stages().Err)
	}
	assertOutcome(t, run.Finish(context.Background()), StageTLS, TLSVersionUnsupported, "accepts only TLS versions below 1.2")
}

// TestSchedulerExtrasNeverDelayStages: jobs in two parts whose second
// parts (a sweep) are slow. Every first part (the stages, whose result
// is recorded at once) starts on its slot, though the second parts queue
// behind one another under the extras limit, and the second parts never
// exceed that limit. A job's next run waits for its second part.
func TestSchedulerExtrasNeverDelayStages(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n, concurrency, sweep = 40, 8, time.Minute
		var (
			mu             sync.Mutex
			stagesAt       = map[string][]time.Time{}
			sweptAt        = map[string][]time.Time{}
			inSweep, worst atomic.Int64
		)
		s := NewScheduler(concurrency)
		var jobs []Job
		for i := range n {
			key := fmt.Sprintf("j%d", i)
			jobs = append(jobs, Job{Key: key, Version: "v1", Interval: time.Hour, Timeout: 2 * time.Hour,
				Start: func(ctx context.Context) func(context.Context) {
					mu.Lock()
					stagesAt[key] = append(stagesAt[key], time.Now())
					mu.Unlock()
					return func(ctx context.Context) {
						m := inSweep.Add(1)
						for w := worst.Load(); m > w && !worst.CompareAndSwap(w, m); w = worst.Load() {
						}
						time.Sleep(sweep)
						inSweep.Add(-1)
						mu.Lock()
						sweptAt[key] = append(sweptAt[key], time.Now())
						mu.Unlock()
					}
				}})
		}
		start := time.Now()
		s.Update(jobs, concurrency)

		time.Sleep(FirstRunWithin)
		synctest.Wait()
		mu.Lock()
		if len(stagesAt) != n {
			t.Errorf("%d of %d jobs ran their stages within %s", len(stagesAt), n, FirstRunWithin)
		}
		mu.Unlock()
		count, sum, _ := s.Stats().Delay.Snapshot()
		if count != n || sum != 0 {
			t.Errorf("%d first parts with %gs of delay in all; want %d on their slots", count, sum, n)
		}

		// 40 one-minute sweeps, one at a time, then every job's second run.
		time.Sleep(time.Hour + FirstRunWithin + n*sweep)
		s.Stop()
		if w := worst.Load(); w != int64(ExtrasConcurrency(concurrency)) {
			t.Errorf("%d second parts at once, want the extras limit %d", w, ExtrasConcurrency(concurrency))
		}
		for key, at := range stagesAt {
			swept := sweptAt[key]
			if len(swept) == 0 || !at[0].Before(swept[0]) || at[0].Sub(start) >= FirstRunWithin {
				t.Errorf("%s: stages at %v, sweeps done at %v", key, at, swept)
			}
			if len(at) > 1 && at[1].Before(swept[0]) {
				t.Errorf("%s: second run at %s, before its first sweep ended at %s", key, at[1].Sub(start), swept[0].Sub(start))
			}
		}
	})
}

// TestSlotsServeStagesFirst: a freed slot goes to the oldest waiting first
// part before any second part, and second parts never hold more than
// their bound of slots, even with slots free.
func TestSlotsServeStagesFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var wg sync.WaitGroup
		s := newSlots(4, &wg, nil) // at most 2 second parts
		var mu sync.Mutex
		var started []string
		release := map[string]chan struct{}{}
		task := func(name string) func() {
			ch := make(chan struct{})
			release[name] = ch
			return func() {
				mu.Lock()
				started = append(started, name)
				mu.Unlock()
				<-ch
			}
		}
		for _, name := range []string{"a", "b", "c", "d"} {
			s.submit(false, task(name))
		}
		s.submit(true, task("x"))
		s.submit(true, task("y"))
		s.submit(true, task("z"))
		s.submit(false, task("e"))
		lenStarted := 0
		step := func(name string, want ...string) {
			t.Helper()
			close(release[name])
			synctest.Wait()
			mu.Lock()
			defer mu.Unlock()
			if got := started[len(started)-len(want):]; fmt.Sprint(got) != fmt.Sprint(want) || len(started) != lenStarted+len(want) {
				t.Errorf("after %s ended: started %v, want %v next", name, started, want)
			}
			lenStarted = len(started)
		}
		synctest.Wait()
		lenStarted = len(started)
		if got := slices.Sorted(slices.Values(started)); fmt.Sprint(got) != "[a b c d]" {
			t.Fatalf("started %v, want the four first parts", started)
		}
		step("a", "e") // the waiting first part, before the older second parts
		step("b", "x")
		step("c", "y")
		step("d") // a slot free, but two second parts hold slots already
		step("x", "z")
		for _, name := range []string{"e", "y", "z"} {
			close(release[name])
		}
		wg.Wait()
	})
}

// TestSlotsHoldSecondPartsForTheFirstRound: while a job's first run is
// pending, no second part takes a slot, even with slots free; the last
// first run starting releases them.
func TestSlotsHoldSecondPartsForTheFirstRound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var wg sync.WaitGroup
		s := newSlots(4, &wg, nil)
		var ran atomic.Int32
		s.hold(2)
		s.submit(true, func() { ran.Add(1) })
		synctest.Wait()
		if ran.Load() != 0 {
			t.Fatal("a second part ran while two first runs were pending")
		}
		s.hold(-1)
		synctest.Wait()
		if ran.Load() != 0 {
			t.Fatal("a second part ran while a first run was pending")
		}
		s.hold(-1)
		synctest.Wait()
		if ran.Load() != 1 {
			t.Fatal("the second part did not run once no first run was pending")
		}
		wg.Wait()
	})
}

// TestSlotsReuseWorkers: a task submitted while a worker is parked runs on
// that worker, not on a new goroutine (a new one grows a handshake-deep
// stack again), and a parked worker ends after workerIdle.
func TestSlotsReuseWorkers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var wg sync.WaitGroup
		s := newSlots(4, &wg, nil)
		s.submit(false, func() {})
		synctest.Wait()
		parked := runtime.NumGoroutine() // the test's and the parked worker
		for range 3 {
			block := make(chan struct{})
			s.submit(false, func() { <-block })
			synctest.Wait()
			if n := runtime.NumGoroutine(); n != parked {
				t.Fatalf("%d goroutines while a task runs, %d with a parked worker: the task did not reuse it", n, parked)
			}
			close(block)
			synctest.Wait()
		}
		time.Sleep(workerIdle)
		synctest.Wait()
		if n := runtime.NumGoroutine(); n != parked-1 {
			t.Errorf("%d goroutines after workerIdle, want %d: the parked worker did not end", n, parked-1)
		}
		wg.Wait()
	})
}
