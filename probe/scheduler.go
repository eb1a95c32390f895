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

// Scheduler runs every job at a deterministic, hash-spread phase of its
// interval, with at most a fixed number of runs in flight. One dispatcher
// goroutine keeps the jobs in a heap by their next planned time; a job's
// run gets a goroutine of its own only while it waits for a slot and runs,
// so 10,000 idle probes cost no stacks and no timers.
type Scheduler struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	wake   chan struct{} // the heap's head changed

	mu    sync.Mutex
	jobs  map[string]*jobState
	queue jobQueue
	sem   chan struct{}

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
}

// NewScheduler returns a scheduler with no jobs; Update gives it some and
// Stop ends it.
func NewScheduler(concurrency int) *Scheduler {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Scheduler{ctx: ctx, cancel: cancel, wake: make(chan struct{}, 1), jobs: map[string]*jobState{},
		sem: make(chan struct{}, concurrency), delay: NewHistogram(DelayBuckets)}
	s.wg.Go(s.dispatch)
	return s
}

// Update makes jobs the running set: jobs that are gone or whose version
// changed are stopped (a run in flight is cancelled), new and changed jobs
// first run within FirstRunWithin, unchanged jobs keep their phase.
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
			planned: now.Add(time.Duration(h % uint64(min(j.Interval, FirstRunWithin))))}
		s.jobs[j.Key] = js
		heap.Push(&s.queue, js)
	}
	s.poke()
}

// remove takes a job out of the schedule; s.mu is held.
func (s *Scheduler) remove(js *jobState) {
	js.cancel()
	if js.index >= 0 {
		heap.Remove(&s.queue, js.index)
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
			js := heap.Pop(&s.queue).(*jobState)
			s.wg.Go(func() { s.runOnce(js) })
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

// runOnce waits for a slot under the concurrency limit, runs the job, and
// queues its next slot on its phase. A run that overran its next slots
// skips and counts them.
func (s *Scheduler) runOnce(js *jobState) {
	if !s.run(js) {
		return
	}
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

// run waits for a slot and runs the job once; false when the job ended
// while it waited.
func (s *Scheduler) run(js *jobState) bool {
	s.mu.Lock()
	sem := s.sem
	s.mu.Unlock()
	select {
	case <-js.ctx.Done():
		return false
	case sem <- struct{}{}:
	}
	defer func() { <-sem }()
	s.delay.Observe(time.Since(js.planned).Seconds())
	s.inflight.Add(1)
	defer s.inflight.Add(-1)
	rctx, cancel := context.WithTimeout(js.ctx, js.job.Timeout)
	defer cancel()
	js.job.Run(rctx)
	return true
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
