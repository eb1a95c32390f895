package main

import (
	"context"

	"github.com/reachd/reachd/probe"
)

// start is a scheduled run of p in two parts (probe.Job.Start): the stages
// now, under the scheduler's concurrency limit, and the extras (the TLS
// sweep) afterwards, at the lower priority of the extras limit, so that
// at the start, when every probe runs and sweeps, no probe's stages wait
// behind other probes' sweeps.
//
// A probe's first result (at the start, or after the reload that added
// it) is recorded as soon as its stages end, and completed by the extras
// (store.Amend: counted once, its state change logged once), unless the
// extras may change its verdict (a failure at tls, which the sweep
// refines). Later runs are recorded once, whole, when their extras end:
// a result without its sweep's versions would drop series that the last
// one had. A run whose extras have nothing due (most runs: a sweep is due
// once a day) finishes at once, in its stages' slot: the extras only
// attach what they found before.
func (d *daemon) start(ctx context.Context, p *probe.Prober) func(context.Context) {
	run := p.Start(ctx)
	if !run.Extras() {
		d.record(p, run.Stages())
		return nil
	}
	if !run.Due() {
		d.record(p, run.Finish(ctx))
		return nil
	}
	early := run.Settled() && !d.store.HasResult(p.Key())
	if early {
		d.record(p, run.Stages())
	}
	return func(ctx context.Context) {
		r := run.Finish(ctx)
		if !early {
			d.record(p, r)
			return
		}
		if !d.store.Amend(p.Key(), r) && len(r.Panic) > 0 {
			d.logger.Error("probe panicked: a bug in reachd; the daemon goes on", "probe", p.Key(), "err", r.Err.Err, "stack", string(r.Panic))
		}
	}
}
