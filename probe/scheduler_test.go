package probe

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// recorder is a fake prober: it notes when each job ran.
type recorder struct {
	mu   sync.Mutex
	runs map[string][]time.Time
}

func (r *recorder) job(key string, interval time.Duration, work func(context.Context)) Job {
	return Job{Key: key, Version: "v1", Interval: interval, Timeout: interval, Run: func(ctx context.Context) {
		r.mu.Lock()
		if r.runs == nil {
			r.runs = map[string][]time.Time{}
		}
		r.runs[key] = append(r.runs[key], time.Now())
		r.mu.Unlock()
		if work != nil {
			work(ctx)
		}
	}}
}

func (r *recorder) times(key string) []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.runs[key]...)
}

func TestSchedulerHonoursIntervals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec recorder
		s := NewScheduler(4)
		start := time.Now()
		s.Update([]Job{rec.job("a", time.Minute, nil), rec.job("b", 15*time.Second, nil)}, 4)
		time.Sleep(10 * time.Minute)
		s.Stop()
		for key, interval := range map[string]time.Duration{"a": time.Minute, "b": 15 * time.Second} {
			runs := rec.times(key)
			if first := runs[0].Sub(start); first < 0 || first >= min(interval, FirstRunWithin) {
				t.Errorf("%s: first run %s after start, want within %s", key, first, min(interval, FirstRunWithin))
			}
			for i := 2; i < len(runs); i++ {
				if d := runs[i].Sub(runs[i-1]); d != interval {
					t.Errorf("%s: run %d came %s after the previous, want %s", key, i, d, interval)
				}
			}
			if want := int(10 * time.Minute / interval); len(runs) < want || len(runs) > want+1 {
				t.Errorf("%s: %d runs in 10m, want %d", key, len(runs), want)
			}
		}
		if st := s.Stats(); st.Skipped != 0 || st.Inflight != 0 {
			t.Errorf("stats %+v", st)
		}
	})
}

func TestSchedulerSpreadsStarts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec recorder
		s := NewScheduler(1000)
		var jobs []Job
		for i := range 200 {
			jobs = append(jobs, rec.job(fmt.Sprintf("vendor/region/t%d/direct", i), time.Minute, nil))
		}
		start := time.Now()
		s.Update(jobs, 1000)
		time.Sleep(3 * time.Minute)
		s.Stop()
		firstBuckets := map[int]int{} // second of the first run
		phaseBuckets := map[int]int{} // 6-second slice of the interval for later runs
		for _, j := range jobs {
			runs := rec.times(j.Key)
			firstBuckets[int(runs[0].Sub(start)/time.Second)]++
			phaseBuckets[int(runs[2].Sub(start)%time.Minute/(6*time.Second))]++
		}
		// Spread over the first 8 of the 10 seconds: the last has 2s to end.
		if len(firstBuckets) < 7 || firstBuckets[8] > 0 || firstBuckets[9] > 0 {
			t.Errorf("first runs fall into %d of 8 seconds: %v", len(firstBuckets), firstBuckets)
		}
		if len(phaseBuckets) < 10 {
			t.Errorf("phases fall into %d of 10 slices of the interval: %v", len(phaseBuckets), phaseBuckets)
		}
		for b, n := range phaseBuckets {
			if n > 45 {
				t.Errorf("slice %d holds %d of 200 probes", b, n)
			}
		}
	})
}

func TestSchedulerHoldsConcurrencyBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec recorder
		var now, peak atomic.Int64
		work := func(ctx context.Context) {
			n := now.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			time.Sleep(4 * time.Second)
			now.Add(-1)
		}
		s := NewScheduler(3)
		var jobs []Job
		for i := range 20 {
			jobs = append(jobs, rec.job(fmt.Sprintf("j%d", i), time.Minute, work))
		}
		s.Update(jobs, 3)
		time.Sleep(5 * time.Minute)
		s.Stop()
		if peak.Load() != 3 {
			t.Errorf("peak concurrency %d, want exactly the bound 3", peak.Load())
		}
		count, sum, _ := s.Stats().Delay.Snapshot()
		if count == 0 || sum <= 0 {
			t.Errorf("delay histogram count %d sum %v: waiting for the bound must show as delay", count, sum)
		}
	})
}

func TestSchedulerSkipsAndCountsOverruns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec recorder
		s := NewScheduler(1)
		j := rec.job("slow", 10*time.Second, func(ctx context.Context) { time.Sleep(25 * time.Second) })
		j.Timeout = time.Hour // a prober that ignores its deadline
		s.Update([]Job{j}, 1)
		time.Sleep(2 * time.Minute)
		s.Stop()
		runs := rec.times("slow")
		for i := 2; i < len(runs); i++ { // the first run is not on the phase
			if d := runs[i].Sub(runs[i-1]); d != 30*time.Second {
				t.Errorf("run %d came %s after the previous, want the next slot after the overrun (30s)", i, d)
			}
		}
		// Two slots fall inside each 25 s overrun; the first run is off
		// its phase (spread over the first seconds), so its overrun may
		// cover only one.
		if got, want := s.Stats().Skipped, uint64(2*(len(runs)-2)+1); len(runs) < 3 || got < want {
			t.Errorf("skipped %d in %d runs, want at least %d (two slots per overrun, one for the first)", got, len(runs), want)
		}
	})
}

func TestSchedulerUpdateKeepsUnchangedJobs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec recorder
		s := NewScheduler(4)
		keep, change, drop := rec.job("keep", time.Minute, nil), rec.job("change", time.Minute, nil), rec.job("drop", time.Minute, nil)
		s.Update([]Job{keep, change, drop}, 4)
		time.Sleep(150 * time.Second)
		before := map[string]int{"keep": len(rec.times("keep")), "change": len(rec.times("change")), "drop": len(rec.times("drop"))}

		change.Version = "v2"
		added := rec.job("added", time.Minute, nil)
		reload := time.Now()
		s.Update([]Job{keep, change, added}, 4)
		time.Sleep(FirstRunWithin)
		s.Stop()

		if got := rec.times("drop"); len(got) != before["drop"] {
			t.Errorf("a dropped job ran %d more times", len(got)-before["drop"])
		}
		keepRuns := rec.times("keep")
		for _, r := range keepRuns[before["keep"]:] {
			if r.Sub(keepRuns[1])%time.Minute != 0 {
				t.Errorf("unchanged job ran off its phase at %s", r)
			}
		}
		for _, key := range []string{"change", "added"} {
			runs := rec.times(key)
			if len(runs) == 0 || runs[len(runs)-1].Before(reload) {
				t.Errorf("%s did not run within %s of the reload", key, FirstRunWithin)
			}
		}
	})
}

func TestSchedulerStopCancelsRunsInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec recorder
		cancelled := make(chan struct{})
		s := NewScheduler(1)
		s.Update([]Job{rec.job("long", time.Minute, func(ctx context.Context) { <-ctx.Done(); close(cancelled) })}, 1)
		time.Sleep(FirstRunWithin)
		s.Stop()
		select {
		case <-cancelled:
		default:
			t.Fatal("Stop returned before the run in flight saw its cancellation")
		}
	})
}

// Issue 12: with a 15 s interval and 6 s runs nothing is ever skipped,
// though each first run, off its phase, ends after the phase slot that
// follows it (the old count said 3 twenty seconds after the start).
func TestSchedulerCountsOnlyRealSkips(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec recorder
		s := NewScheduler(100)
		var jobs []Job
		for i := range 40 {
			jobs = append(jobs, rec.job(fmt.Sprintf("job-%02d", i), 15*time.Second, func(ctx context.Context) { time.Sleep(6 * time.Second) }))
		}
		s.Update(jobs, 100)
		time.Sleep(20 * time.Second)
		if got := s.Stats().Skipped; got != 0 {
			t.Errorf("skipped %d twenty seconds after the start, want 0", got)
		}
		time.Sleep(10 * time.Minute)
		if got := s.Stats().Skipped; got != 0 {
			t.Errorf("skipped %d after ten minutes, want 0", got)
		}
		s.Stop()
		for _, j := range jobs {
			if n := len(rec.times(j.Key)); n < 40 {
				t.Errorf("%s ran %d times in 10m20s at 15s, want 40 or more", j.Key, n)
			}
		}
	})
}
