package probe

import (
	"container/heap"
	"context"
	"hash/fnv"
	"sync"
	"sync/atomic"
	"time"
)

// FirstRunWithin bounds how long after the start, or after the reload that
// added it, a probe first runs (DESIGN §5).
const FirstRunWithin = 10 * time.Second

// firstRunSpread is the window over which the first runs of jobs of an
// interval are spread: four fifths of min(interval, FirstRunWithin), so
// that the last of them has the rest of the bound to load, wait for a
// slot and end within it (at 10,000 probes a first run is due every
// 0.8 ms).
func firstRunSpread(interval time.Duration) time.Duration {
	return min(interval, FirstRunWithin) * 4 / 5
}

// Job is one scheduled probe: a target over a path.
type Job struct {
	Key      string // unique: vendor/region/target/path
	Version  string // a job whose key and version survive a reload keeps running
	Interval time.Duration
	Timeout  time.Duration
	Run      func(ctx context.Context)
	// Start, when set, is used instead of Run for a run in two parts: it
	// runs under the concurrency limit and may return the run's second
	// part, then, which waits for a slot of its own once Start's is free,
	// at a lower priority: only while no first part waits, and at most
	// ExtrasConcurrency at once. So slow extras (a TLS sweep) never hold
	// up other jobs' stages. The job's next run waits for both parts.
	// Each part has its own Timeout.
	Start func(ctx context.Context) (then func(ctx context.Context))
}

// ExtrasConcurrency is the bound on the runs' second parts (Job.Start)
// in flight, out of the scheduler's concurrency: half of it, at least
// one. Second parts take only slots that no first part waits for; the
// bound keeps half the slots for the stages even then, above all at the
// start, when every probe runs and then sweeps (four handshakes).
func ExtrasConcurrency(concurrency int) int { return max(1, concurrency/2) }

// DelayBuckets are the bounds of the scheduler delay histogram, in seconds.
var DelayBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// Scheduler runs every job at a deterministic, hash-spread phase of its
// interval, with at most a fixed number of runs in flight. One dispatcher
// goroutine keeps the jobs in a heap by their next planned time; a job's
// run gets a goroutine of its own only while it runs: a run waiting for a
// slot is a task in a queue (slots), so 10,000 idle probes, or 10,000
// probes due at once, cost no stacks and no timers.
type Scheduler struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	wake   chan struct{} // the heap's head changed

	mu    sync.Mutex
	jobs  map[string]*jobState
	queue jobQueue
	slots *slots

	inflight atomic.Int64
	skipped  atomic.Uint64
	delay    *Histogram
}

// jobState is one job's place in the schedule.
type jobState struct {
	job     Job
	phase   time.Duration
	planned time.Time // the next run's slot
	ctx     context.Context
	cancel  context.CancelFunc // ends the job: removed, changed or stopped
	index   int                // in the queue; -1 while it runs or after removal
	fresh   bool               // its first run has not started (slots.pending counts it)
}

// NewScheduler returns a scheduler with no jobs; Update gives it some and
// Stop ends it.
func NewScheduler(concurrency int) *Scheduler {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Scheduler{ctx: ctx, cancel: cancel, wake: make(chan struct{}, 1), jobs: map[string]*jobState{},
		delay: NewHistogram(DelayBuckets)}
	s.slots = newSlots(concurrency, &s.wg, ctx.Done())
	s.wg.Go(s.dispatch)
	return s
}

// Update makes jobs the running set: jobs that are gone or whose version
// changed are stopped (a run in flight is cancelled), new and changed jobs
// first run within FirstRunWithin, unchanged jobs keep their phase.
func (s *Scheduler) Update(jobs []Job, concurrency int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.slots.limit != concurrency {
		old := s.slots
		s.slots = newSlots(concurrency, &s.wg, s.ctx.Done())
		old.mu.Lock()
		s.slots.pending, old.pending = old.pending, 0 // the old slots' waiting second parts go on
		old.fill(false)
		old.mu.Unlock()
	}
	want := make(map[string]Job, len(jobs))
	for _, j := range jobs {
		want[j.Key] = j
	}
	for key, js := range s.jobs {
		if j, ok := want[key]; !ok || j.Version != js.job.Version {
			s.remove(js)
			delete(s.jobs, key)
		}
	}
	now := time.Now()
	for _, j := range jobs {
		if _, ok := s.jobs[j.Key]; ok {
			continue
		}
		h := hash(j.Key)
		ctx, cancel := context.WithCancel(s.ctx)
		js := &jobState{job: j, phase: time.Duration(h % uint64(j.Interval)), ctx: ctx, cancel: cancel, index: -1,
			planned: now.Add(time.Duration(h % uint64(firstRunSpread(j.Interval)))), fresh: true}
		s.jobs[j.Key] = js
		heap.Push(&s.queue, js)
		s.slots.hold(1)
	}
	s.poke()
}

// remove takes a job out of the schedule; s.mu is held.
func (s *Scheduler) remove(js *jobState) {
	js.cancel()
	if js.index >= 0 {
		heap.Remove(&s.queue, js.index)
	}
	s.started(js)
}

// started notes that a job's first run started (or that it will never
// run): once every first run has, second parts may take slots; s.mu is
// held.
func (s *Scheduler) started(js *jobState) {
	if js.fresh {
		js.fresh = false
		s.slots.hold(-1)
	}
}

func (s *Scheduler) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Stop cancels every job, and the runs in flight, and waits for them.
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

// dispatch starts every job whose slot has come, then sleeps until the
// next slot or until Update or a finished run changes the queue.
func (s *Scheduler) dispatch() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.mu.Lock()
		now := time.Now()
		for len(s.queue) > 0 && !s.queue[0].planned.After(now) {
			js, slots := heap.Pop(&s.queue).(*jobState), s.slots
			slots.submit(false, func() { s.runFirst(js, slots) })
		}
		wait := time.Hour
		if len(s.queue) > 0 {
			wait = s.queue[0].planned.Sub(now)
		}
		s.mu.Unlock()
		timer.Reset(wait)
		select {
		case <-s.ctx.Done():
			return
		case <-s.wake:
		case <-timer.C:
		}
	}
}

// runFirst runs the job's first part, once a slot gave it a goroutine,
// then queues its second part (Job.Start) behind the waiting first parts,
// or else the job's next run. A job removed or changed while it waited
// does not run.
func (s *Scheduler) runFirst(js *jobState, slots *slots) {
	if js.ctx.Err() != nil {
		return
	}
	s.mu.Lock()
	s.started(js)
	s.mu.Unlock()
	then := s.part(js, func(ctx context.Context) func(context.Context) {
		// Observed in flight: a run counted in the delay histogram is in
		// reachd_scheduler_inflight until it ends, so a reader that sees
		// every run counted and none in flight sees every result.
		s.delay.Observe(time.Since(js.planned).Seconds())
		if js.job.Start != nil {
			return js.job.Start(ctx)
		}
		js.job.Run(ctx)
		return nil
	})
	if then == nil {
		s.reschedule(js)
		return
	}
	slots.submit(true, func() {
		if js.ctx.Err() == nil {
			s.part(js, func(ctx context.Context) func(context.Context) { then(ctx); return nil })
		}
		s.reschedule(js)
	})
}

// part runs f under the job's timeout and counts it in flight.
func (s *Scheduler) part(js *jobState, f func(context.Context) func(context.Context)) func(context.Context) {
	s.inflight.Add(1)
	defer s.inflight.Add(-1)
	rctx, cancel := context.WithTimeout(js.ctx, js.job.Timeout)
	defer cancel()
	return f(rctx)
}

// reschedule queues the job's next slot on its phase once its run ended.
// A run that overran its next slots skips and counts them.
func (s *Scheduler) reschedule(js *jobState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if js.ctx.Err() != nil { // removed or changed meanwhile
		return
	}
	next := nextSlot(js.planned, js.phase, js.job.Interval)
	if now := time.Now(); !next.After(now) {
		missed := nextSlot(now, js.phase, js.job.Interval)
		// A slot is skipped when it comes a whole interval or more after
		// the run's own slot and passes while the run is still going. The
		// first run is off the phase (within FirstRunWithin of the start):
		// the phase slot just after it is no skip, only the schedule
		// settling onto its phase.
		owed := nextSlot(js.planned.Add(js.job.Interval-1), js.phase, js.job.Interval) // first slot >= planned+interval
		if !owed.After(now) {
			s.skipped.Add(uint64(missed.Sub(owed) / js.job.Interval))
		}
		next = missed
	}
	js.planned = next
	heap.Push(&s.queue, js)
	if js.index == 0 {
		s.poke()
	}
}

// jobQueue is a min-heap of jobs by planned time (container/heap).
type jobQueue []*jobState

func (q jobQueue) Len() int           { return len(q) }
func (q jobQueue) Less(i, j int) bool { return q[i].planned.Before(q[j].planned) }
func (q jobQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}
func (q *jobQueue) Push(x any) {
	js := x.(*jobState)
	js.index = len(*q)
	*q = append(*q, js)
}
func (q *jobQueue) Pop() any {
	old := *q
	js := old[len(old)-1]
	old[len(old)-1] = nil
	js.index = -1
	*q = old[:len(old)-1]
	return js
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
