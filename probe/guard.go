package probe

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
)

// guard catches a panic in any goroutine of one probe run, so a bug in
// reachd fails that probe with reason internal instead of the daemon.
type guard struct {
	mu    sync.Mutex
	value any
	stack []byte
}

type guardKey struct{}

func withGuard(ctx context.Context) (context.Context, *guard) {
	g := &guard{}
	return context.WithValue(ctx, guardKey{}, g), g
}

// catch is deferred at the top of every goroutine of a run.
func (g *guard) catch() {
	if v := recover(); v != nil {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.value == nil {
			g.value, g.stack = v, debug.Stack()
		}
	}
}

// apply turns a caught panic into the run's failure.
func (g *guard) apply(r *Result) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.value != nil {
		r.Err = fail(Internal, fmt.Errorf("panic: %v", g.value))
		r.Panic = g.stack
	}
}

// spawn runs f in a goroutine of wg under the run's guard.
func spawn(ctx context.Context, wg *sync.WaitGroup, f func()) {
	g, _ := ctx.Value(guardKey{}).(*guard)
	wg.Go(func() {
		if g != nil {
			defer g.catch()
		}
		f()
	})
}
