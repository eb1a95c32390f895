package probe

import (
	"sync"
	"time"
)

// slots bounds the runs in flight, with two priorities, and queues the
// runs waiting for a slot as tasks, not goroutines: at the start of
// 10,000 probes, thousands wait, and a goroutine each would cost a stack
// each. A run's first part (the stages) takes a free slot at once, or the
// next one freed; a second part (the extras: a TLS sweep) takes a slot
// only while no first part waits for one, and at most extra of them hold
// slots at once. So the extras fill the slots the stages leave idle, and
// the stages never queue behind more than extra of them.
//
// The tasks run on worker goroutines that outlive them: a worker whose
// task ended takes the next waiting one itself, or parks for the next
// start (the last parked first) and ends after workerIdle without one. A
// goroutine of its own per run grew a handshake-deep stack every run,
// copying it as it grew: 5% of a steady daemon's CPU.
type slots struct {
	wg            *sync.WaitGroup // the scheduler's: Stop waits for the workers
	done          <-chan struct{} // closed: parked workers end now (nil: never)
	mu            sync.Mutex
	limit, extra  int
	busy, extras  int
	first, second []func()    // waiting tasks, oldest first
	idle          []chan task // parked workers, most recently parked last
	// pending counts the jobs whose first run has not started (at the
	// start, or after the reload that added them): no second part takes
	// a slot meanwhile, so the first round's stages have the CPU to
	// themselves and no sweep delays them.
	pending int
}

// task is a run's part with its priority.
type task struct {
	second bool
	run    func()
}

// workerIdle is how long a parked worker waits for a task before it ends.
const workerIdle = 30 * time.Second

func newSlots(limit int, wg *sync.WaitGroup, done <-chan struct{}) *slots {
	return &slots{wg: wg, done: done, limit: limit, extra: ExtrasConcurrency(limit)}
}

// submit runs run on a worker once it has a slot, which it holds until
// run returns.
func (s *slots) submit(second bool, run func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy < s.limit && (!second || len(s.first) == 0 && s.extras < s.extra && s.pending == 0) {
		s.start(task{second, run})
		return
	}
	if second {
		s.second = append(s.second, run)
	} else {
		s.first = append(s.first, run)
	}
}

// start gives t a slot and a worker: a parked one, or a new one; s.mu is
// held.
func (s *slots) start(t task) {
	s.take(t)
	if n := len(s.idle); n > 0 {
		w := s.idle[n-1]
		s.idle[n-1] = nil
		s.idle = s.idle[:n-1]
		w <- t // buffered: a parked worker's channel is empty
		return
	}
	s.wg.Go(func() { s.work(t) })
}

// take counts t in the slots it holds; s.mu is held.
func (s *slots) take(t task) {
	s.busy++
	if t.second {
		s.extras++
	}
}

// work runs t, then the tasks release hands on, then parks until start
// hands it another or workerIdle passes.
func (s *slots) work(t task) {
	var inbox chan task
	var timer *time.Timer
	for {
		t.run()
		next, ok := s.release(t.second)
		if ok {
			t = next
			continue
		}
		if inbox == nil {
			inbox = make(chan task, 1)
			timer = time.NewTimer(workerIdle)
		} else {
			timer.Reset(workerIdle)
		}
		if !s.park(inbox) {
			return
		}
		select {
		case t = <-inbox:
			timer.Stop()
			continue
		case <-timer.C:
		case <-s.done:
			timer.Stop()
		}
		if !s.unpark(inbox) {
			t = <-inbox // handed a task as it gave up
			continue
		}
		return
	}
}

// release frees the slot of a task that ended and hands the free slots on:
// to the oldest waiting first part, else to the oldest second part within
// the extras' bound. The first of them is returned, for the worker that
// freed the slot to run itself.
func (s *slots) release(second bool) (mine task, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.busy--
	if second {
		s.extras--
	}
	return s.fill(true)
}

// hold adds delta to the jobs whose first run is pending, and starts the
// waiting second parts once there are none.
func (s *slots) hold(delta int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending += delta
	s.fill(false)
}

// fill starts waiting tasks while slots are free: the oldest first part,
// else the oldest second part within the extras' bound. With keep, the
// first of them is not started but returned, for the worker that freed
// its slot to run; s.mu is held.
func (s *slots) fill(keep bool) (mine task, ok bool) {
	for s.busy < s.limit {
		var t task
		switch {
		case len(s.first) > 0:
			t = task{false, s.first[0]}
			s.first[0] = nil
			s.first = s.first[1:]
		case len(s.second) > 0 && s.extras < s.extra && s.pending == 0:
			t = task{true, s.second[0]}
			s.second[0] = nil
			s.second = s.second[1:]
		default:
			return mine, ok
		}
		if keep && !ok {
			s.take(t)
			mine, ok = t, true
		} else {
			s.start(t)
		}
	}
	return mine, ok
}

// park lists a worker as idle; false means the slots are done: the
// worker ends.
func (s *slots) park(inbox chan task) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.done:
		return false
	default:
	}
	s.idle = append(s.idle, inbox)
	return true
}

// unpark takes a parked worker off the idle list; false means start took
// it first and sent it a task.
func (s *slots) unpark(inbox chan task) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, w := range s.idle {
		if w == inbox {
			s.idle = append(s.idle[:i], s.idle[i+1:]...)
			return true
		}
	}
	return false
}
