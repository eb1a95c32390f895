package probe

import (
	"context"
	"sync"
)

// slots bounds the runs in flight, with two priorities: a run's first
// part (the stages) takes a free slot at once, or the next one freed; a
// second part (the extras: a TLS sweep) takes a slot only while no first
// part waits for one, and at most extra of them hold slots at once. So the
// extras fill the slots the stages leave idle, and the stages never queue
// behind more than extra of them.
type slots struct {
	mu            sync.Mutex
	limit, extra  int
	busy, extras  int
	first, second []chan struct{} // waiters, oldest first; a slot is handed over by closing
}

func newSlots(limit int) *slots {
	return &slots{limit: limit, extra: ExtrasConcurrency(limit)}
}

// acquire waits for a slot; false when ctx ended first (and then no slot
// is held).
func (s *slots) acquire(ctx context.Context, second bool) bool {
	s.mu.Lock()
	if s.busy < s.limit && (!second || len(s.first) == 0 && s.extras < s.extra) {
		s.take(second)
		s.mu.Unlock()
		return true
	}
	ch := make(chan struct{})
	if second {
		s.second = append(s.second, ch)
	} else {
		s.first = append(s.first, ch)
	}
	s.mu.Unlock()
	select {
	case <-ch:
		return true
	case <-ctx.Done():
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-ch: // handed over meanwhile: give it on
		s.releaseLocked(second)
	default:
		if second {
			s.second = remove(s.second, ch)
		} else {
			s.first = remove(s.first, ch)
		}
	}
	return false
}

// release frees a slot that acquire(ctx, second) gave.
func (s *slots) release(second bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releaseLocked(second)
}

func (s *slots) take(second bool) {
	s.busy++
	if second {
		s.extras++
	}
}

func (s *slots) releaseLocked(second bool) {
	s.busy--
	if second {
		s.extras--
	}
	for s.busy < s.limit {
		switch {
		case len(s.first) > 0:
			close(s.first[0])
			s.first = s.first[1:]
			s.take(false)
		case len(s.second) > 0 && s.extras < s.extra:
			close(s.second[0])
			s.second = s.second[1:]
			s.take(true)
		default:
			return
		}
	}
}

func remove(q []chan struct{}, ch chan struct{}) []chan struct{} {
	for i, c := range q {
		if c == ch {
			return append(q[:i], q[i+1:]...)
		}
	}
	return q
}
