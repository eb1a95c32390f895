// Package pac evaluates proxy auto-config files as agents do: the
// script's FindProxyForURL(url, host) runs in a real JavaScript engine
// (goja) with the standard PAC helper functions, each evaluation bounded
// in time and memory, and its answer ("PROXY a:8080; DIRECT") parsed into
// the proxies to try in order. A Loader fetches the file again every
// interval and keeps the last good copy; Candidates and Discover find it
// by WPAD.
package pac

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime/metrics"
	"strings"
	"sync"
	"time"

	"github.com/dop251/goja"
)

// Bounds of one script and of each evaluation. goja interrupts a script
// only between JavaScript instructions, so time is bounded by an
// interrupt from a timer, and memory by three limits together: the
// script's size, the call depth, and a watchdog that interrupts an
// evaluation while the heap grows more than MaxHeapGrowth past where it
// stood when the evaluation began (it samples the process heap every
// few milliseconds, so a loop that builds strings or arrays is stopped
// after some tens of megabytes). The built-ins that allocate a large
// result in one native call (String.prototype.repeat, padStart, padEnd)
// refuse results longer than MaxString, since no interrupt reaches them.
const (
	MaxScript     = 1 << 20
	MaxCallDepth  = 256
	MaxHeapGrowth = 64 << 20
	MaxString     = 1 << 20
)

// EvalTimeout bounds one evaluation (and the script's top level) unless
// the caller's context ends sooner; a variable for tests.
var EvalTimeout = 2 * time.Second

// watchEvery is how often the memory watchdog samples the heap.
const watchEvery = 5 * time.Millisecond

// Env is what the helper functions see of the site.
type Env struct {
	// Resolve returns the addresses (A and AAAA) of a host through the
	// first resolver; dnsResolve, isResolvable and isInNet use it.
	Resolve func(ctx context.Context, host string) ([]netip.Addr, error)
	// MyAddrs are the site's own addresses, the one myIpAddress returns
	// first; empty means 127.0.0.1.
	MyAddrs []netip.Addr
	// Now and Location are the clock and the local time zone of the
	// weekdayRange, dateRange and timeRange helpers (and of Date in the
	// script); nil means time.Now and time.Local.
	Now      func() time.Time
	Location *time.Location
}

func (e Env) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

func (e Env) loc() *time.Location {
	if e.Location != nil {
		return e.Location
	}
	return time.Local
}

// Script is a compiled PAC file. It is safe for concurrent use: each
// evaluation takes a runtime of its own from a small pool.
type Script struct {
	name string // the URL or file, as errors name it
	prog *goja.Program
	env  Env
	idle chan *vm // runtimes whose top level ran, ready to evaluate
}

// poolSize is how many idle runtimes a script keeps.
const poolSize = 4

// Compile compiles src and runs its top level once, so that a script that
// does not parse, throws at load or defines no FindProxyForURL fails here,
// naming the source and the line.
func Compile(name string, src []byte, env Env) (*Script, error) {
	if len(src) > MaxScript {
		return nil, fmt.Errorf("the script is %d bytes long (at most %d)", len(src), MaxScript)
	}
	prog, err := goja.Compile(name, string(src), false)
	if err != nil {
		return nil, fmt.Errorf("does not compile: %w", syntaxError(err))
	}
	s := &Script{name: name, prog: prog, env: env, idle: make(chan *vm, poolSize)}
	v, err := s.newVM(context.Background())
	if err != nil {
		return nil, err
	}
	s.put(v)
	return s, nil
}

// Name is the URL or file the script came from.
func (s *Script) Name() string { return s.name }

// vm is one goja runtime of a script with its helpers installed. The
// fields below rt are the current evaluation's, set by eval.
type vm struct {
	rt   *goja.Runtime
	find goja.Callable
	env  Env
	ctx  context.Context
	dns  map[string][]netip.Addr // dnsResolve answers of this evaluation
}

func (s *Script) newVM(ctx context.Context) (*vm, error) {
	v := &vm{rt: goja.New(), env: s.env}
	v.rt.SetMaxCallStackSize(MaxCallDepth)
	v.rt.SetTimeSource(s.env.now)
	if err := v.install(); err != nil {
		return nil, fmt.Errorf("installing the PAC helpers: %w", err)
	}
	if _, err := v.eval(ctx, func() (goja.Value, error) { return v.rt.RunProgram(s.prog) }); err != nil {
		return nil, fmt.Errorf("its top level fails: %w", err)
	}
	// Internet Explorer's IPv6 extension: a script may define the Ex
	// variant, which is then called instead.
	for _, name := range []string{"FindProxyForURLEx", "FindProxyForURL"} {
		if f, ok := goja.AssertFunction(v.rt.Get(name)); ok {
			v.find = f
			return v, nil
		}
	}
	return nil, errors.New("it defines no function FindProxyForURL(url, host)")
}

func (s *Script) get(ctx context.Context) (*vm, error) {
	select {
	case v := <-s.idle:
		return v, nil
	default:
		return s.newVM(ctx)
	}
}

func (s *Script) put(v *vm) {
	select {
	case s.idle <- v:
	default:
	}
}

// FindProxy evaluates FindProxyForURL(url, host) and parses its answer.
// The error names the JavaScript error and its line, a timeout, the
// memory bound, or what is wrong with the answer; the caller adds the
// script's name.
func (s *Script) FindProxy(ctx context.Context, url, host string) ([]Proxy, error) {
	v, err := s.get(ctx)
	if err != nil {
		return nil, err
	}
	val, err := v.eval(ctx, func() (goja.Value, error) {
		return v.find(goja.Undefined(), v.rt.ToValue(url), v.rt.ToValue(host))
	})
	if err != nil {
		// An interrupted or failing script may have left its globals
		// half-changed: its runtime is not reused.
		return nil, fmt.Errorf("FindProxyForURL(%q, %q): %w", url, host, err)
	}
	s.put(v)
	str, ok := val.Export().(string)
	if !ok {
		return nil, fmt.Errorf("FindProxyForURL(%q, %q) returned %s, not a string", url, host, describe(val))
	}
	proxies, err := ParseAnswer(str)
	if err != nil {
		return nil, fmt.Errorf("FindProxyForURL(%q, %q) returned garbage: %w", url, host, err)
	}
	return proxies, nil
}

// eval runs f on the runtime within the bounds: EvalTimeout or ctx,
// whichever ends first, and the heap watchdog.
func (v *vm) eval(ctx context.Context, f func() (goja.Value, error)) (goja.Value, error) {
	ctx, cancel := context.WithTimeout(ctx, EvalTimeout)
	defer cancel()
	v.ctx, v.dns = ctx, map[string][]netip.Addr{}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		v.watch(ctx, done)
	}()
	val, err := f()
	close(done)
	wg.Wait()
	v.rt.ClearInterrupt()
	v.ctx, v.dns = nil, nil
	if err != nil {
		return nil, jsError(err)
	}
	return val, nil
}

// watch interrupts the runtime when ctx ends or the heap grows past the
// bound, until done is closed.
func (v *vm) watch(ctx context.Context, done <-chan struct{}) {
	t := time.NewTicker(watchEvery)
	defer t.Stop()
	base := heapBytes()
	for {
		select {
		case <-done:
			return
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				v.rt.Interrupt(fmt.Errorf("the evaluation took longer than %s (an endless loop?)", EvalTimeout))
			} else {
				v.rt.Interrupt(ctx.Err())
			}
			return
		case <-t.C:
			if grown := heapBytes() - base; grown > MaxHeapGrowth {
				v.rt.Interrupt(fmt.Errorf("the evaluation grew the heap by %d MiB (at most %d MiB)", grown>>20, MaxHeapGrowth>>20))
				return
			}
		}
	}
}

var heapSample = []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
var heapMu sync.Mutex

// heapBytes is the process's heap in use, read without stopping the world.
func heapBytes() int64 {
	heapMu.Lock()
	defer heapMu.Unlock()
	metrics.Read(heapSample)
	if heapSample[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return int64(heapSample[0].Value.Uint64())
}

// jsError names a script's failure with its position in the file.
func jsError(err error) error {
	var intr *goja.InterruptedError
	var ex *goja.Exception
	var so *goja.StackOverflowError
	switch {
	case errors.As(err, &intr):
		if e, ok := intr.Value().(error); ok {
			return fmt.Errorf("%w%s", e, at(intr.Stack()))
		}
		return fmt.Errorf("interrupted: %v%s", intr.Value(), at(intr.Stack()))
	case errors.As(err, &so):
		return fmt.Errorf("calls nest deeper than %d (endless recursion?)%s", MaxCallDepth, at(so.Stack()))
	case errors.As(err, &ex):
		msg := "exception"
		if val := ex.Value(); val != nil {
			msg = val.String()
		}
		return fmt.Errorf("%s%s", msg, at(ex.Stack()))
	}
	return err
}

// at is " at line L:C" for the innermost frame that has a position.
func at(stack []goja.StackFrame) string {
	for _, f := range stack {
		if p := f.Position(); p.Line > 0 {
			return fmt.Sprintf(" at line %d:%d", p.Line, p.Column)
		}
	}
	return ""
}

func syntaxError(err error) error {
	var se *goja.CompilerSyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("SyntaxError: %s", strings.TrimSpace(se.Message))
	}
	return err
}

func describe(v goja.Value) string {
	if v == nil || goja.IsUndefined(v) {
		return "undefined"
	}
	if goja.IsNull(v) {
		return "null"
	}
	s := v.String()
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return fmt.Sprintf("%s %q", v.ExportType(), s)
}
