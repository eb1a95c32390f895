package probe

import (
	"context"
	"hash/fnv"
	"sync"
	"sync/atomic"
	"time"
)

// FirstRunWithin bounds how long after the start, or after the reload that
// added it, a probe first runs (DESIGN §5).
const FirstRunWithin = 10 * time.Second

// Job is one scheduled probe: a target over a path.
type Job struct {
	Key      string // unique: vendor/region/target/path
	Version  string // a job whose key and version survive a reload keeps running
	Interval time.Duration
	Timeout  time.Duration
	Run      func(ctx context.Context)
}

// DelayBuckets are the bounds of the scheduler delay histogram, in seconds.
var DelayBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// Scheduler runs one loop per job at a deterministic, hash-spread phase
// of its interval, with at most a fixed number of runs in flight.
type Scheduler struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	loops map[string]*loop
	sem   chan struct{}

	inflight atomic.Int64
	skipped  atomic.Uint64
	delay    *Histogram
}

type loop struct {
	job    Job
	cancel context.CancelFunc
}

// NewScheduler returns a scheduler with no jobs; Update gives it some and
// Stop ends it.
func NewScheduler(concurrency int) *Scheduler {
	ctx, cancel := context.WithCancel(context.Background())
	return &Scheduler{ctx: ctx, cancel: cancel, loops: map[string]*loop{}, sem: make(chan struct{}, concurrency), delay: NewHistogram(DelayBuckets)}
}

// Update makes jobs the running set: loops of jobs that are gone or whose
// version changed are stopped, new and changed jobs start, unchanged jobs
// keep running on their phase.
func (s *Scheduler) Update(jobs []Job, concurrency int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cap(s.sem) != concurrency {
		s.sem = make(chan struct{}, concurrency)
	}
	want := make(map[string]Job, len(jobs))
	for _, j := range jobs {
		want[j.Key] = j
	}
	for key, l := range s.loops {
		if j, ok := want[key]; !ok || j.Version != l.job.Version {
			l.cancel()
			delete(s.loops, key)
		}
	}
	now := time.Now()
	for _, j := range jobs {
		if _, ok := s.loops[j.Key]; ok {
			continue
		}
		ctx, cancel := context.WithCancel(s.ctx)
		s.loops[j.Key] = &loop{job: j, cancel: cancel}
		s.wg.Go(func() { s.run(ctx, j, now) })
	}
}

// Stop cancels every loop, and the runs in flight, and waits for them.
func (s *Scheduler) Stop() {
	s.cancel()
	s.wg.Wait()
}

// SchedulerStats is the scheduler's self-monitoring.
type SchedulerStats struct {
	Inflight int64
	Skipped  uint64
	Delay    *Histogram // seconds from a run's planned to its actual start
}

// Stats returns the current figures.
func (s *Scheduler) Stats() SchedulerStats {
	return SchedulerStats{Inflight: s.inflight.Load(), Skipped: s.skipped.Load(), Delay: s.delay}
}

// run is a job's loop: the first run within FirstRunWithin of added, then
// every interval on the job's phase. A run that overruns its next slots
// skips and counts them.
func (s *Scheduler) run(ctx context.Context, j Job, added time.Time) {
	h := hash(j.Key)
	phase := time.Duration(h % uint64(j.Interval))
	planned := added.Add(time.Duration(h % uint64(min(j.Interval, FirstRunWithin))))
	timer := time.NewTimer(time.Until(planned))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		if !s.once(ctx, j, planned) {
			return
		}
		next := nextSlot(planned, phase, j.Interval)
		if now := time.Now(); !next.After(now) {
			missed := nextSlot(now, phase, j.Interval)
			s.skipped.Add(uint64((missed.Sub(next)) / j.Interval))
			next = missed
		}
		planned = next
		timer.Reset(time.Until(planned))
	}
}

// once waits for a slot under the concurrency limit and runs the job.
func (s *Scheduler) once(ctx context.Context, j Job, planned time.Time) bool {
	s.mu.Lock()
	sem := s.sem
	s.mu.Unlock()
	select {
	case <-ctx.Done():
		return false
	case sem <- struct{}{}:
	}
	defer func() { <-sem }()
	s.delay.Observe(time.Since(planned).Seconds())
	s.inflight.Add(1)
	defer s.inflight.Add(-1)
	rctx, cancel := context.WithTimeout(ctx, j.Timeout)
	defer cancel()
	// The run gets a goroutine of its own, so the deep stack a TLS
	// handshake grows dies with it: the loops, one per probe, keep small
	// stacks (10,000 loops held 9 KB each when they ran probes themselves).
	done := make(chan struct{})
	go func() {
		defer close(done)
		j.Run(rctx)
	}()
	<-done
	return true
}

// nextSlot is the first time after t that lies on the job's phase:
// (slot - phase) is a whole number of intervals since the Unix epoch, so
// the phase survives restarts and reloads.
func nextSlot(t time.Time, phase, interval time.Duration) time.Time {
	since := time.Duration(t.UnixNano()) - phase
	n := since / interval
	return time.Unix(0, int64(phase+(n+1)*interval))
}

func hash(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}
