package probe

import "sync"

// slots bounds the runs in flight, with two priorities, and queues the
// runs waiting for a slot as tasks, not goroutines: at the start of
// 10,000 probes, thousands wait, and a goroutine each would cost a stack
// each. A run's first part (the stages) takes a free slot at once, or the
// next one freed; a second part (the extras: a TLS sweep) takes a slot
// only while no first part waits for one, and at most extra of them hold
// slots at once. So the extras fill the slots the stages leave idle, and
// the stages never queue behind more than extra of them.
type slots struct {
	wg            *sync.WaitGroup // the scheduler's: Stop waits for the tasks
	mu            sync.Mutex
	limit, extra  int
	busy, extras  int
	first, second []func() // waiting tasks, oldest first
}

func newSlots(limit int, wg *sync.WaitGroup) *slots {
	return &slots{wg: wg, limit: limit, extra: ExtrasConcurrency(limit)}
}

// submit runs task in a goroutine of its own once it has a slot, which it
// holds until task returns.
func (s *slots) submit(second bool, task func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy < s.limit && (!second || len(s.first) == 0 && s.extras < s.extra) {
		s.start(second, task)
		return
	}
	if second {
		s.second = append(s.second, task)
	} else {
		s.first = append(s.first, task)
	}
}

// start runs task under a slot; s.mu is held.
func (s *slots) start(second bool, task func()) {
	s.busy++
	if second {
		s.extras++
	}
	s.wg.Go(func() {
		defer s.release(second)
		task()
	})
}

// release frees a slot and hands the free slots on: to the oldest waiting
// first part, else to the oldest second part within the extras' bound.
func (s *slots) release(second bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.busy--
	if second {
		s.extras--
	}
	for s.busy < s.limit {
		switch {
		case len(s.first) > 0:
			task := s.first[0]
			s.first[0] = nil
			s.first = s.first[1:]
			s.start(false, task)
		case len(s.second) > 0 && s.extras < s.extra:
			task := s.second[0]
			s.second[0] = nil
			s.second = s.second[1:]
			s.start(true, task)
		default:
			return
		}
	}
}
