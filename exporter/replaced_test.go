package exporter

import (
	"context"
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/reachd/reachd/configs"
	"github.com/reachd/reachd/probe"
	"github.com/reachd/reachd/probe/probetest"
	"github.com/reachd/reachd/targets"
)

// TestReplacedProberLateResultDropped: a reload that changes a probe
// cancels the old prober's run in flight; the failure that run then
// reports is not the new probe's (no run, no failure counted).
func TestReplacedProberLateResultDropped(t *testing.T) {
	arrived := make(chan struct{}, 8)
	tarpit := probetest.NewRawServer(t, func(c net.Conn) {
		arrived <- struct{}{}
		probetest.Hold(c)
	})
	cfg := &configs.Config{Defaults: configs.Defaults{TLSSweepInterval: time.Hour},
		Resolvers: []configs.Resolver{{Name: "none", Servers: []string{"127.0.0.1:1"}, Protocol: "udp"}}}
	tg := targets.Target{Vendor: "lab", Region: "test", Name: "t", Host: "127.0.0.1", Port: tarpit.Port,
		Checks: targets.AllChecks, TLSMinVersion: tls.VersionTLS12, Timeout: 5 * time.Second, Interval: time.Second, HTTP: targets.HTTPCheck{Path: "/"}}
	env := probe.NewEnv(cfg, "reachd-test")
	old := probe.New(tg, configs.Path{Name: "direct"}, env)
	tg.Timeout = 4 * time.Second
	changed := probe.New(tg, configs.Path{Name: "direct"}, env)
	if old.Key() != changed.Key() || old.Version() == changed.Version() {
		t.Fatal("the changed prober must keep the key and change the version")
	}

	store := NewStore()
	Sync(store, []*probe.Prober{old})
	late := make(chan probe.Result, 1)
	var dropped Transition
	s := probe.NewScheduler(2)
	defer s.Stop()
	s.Update([]probe.Job{{Key: old.Key(), Version: old.Version(), Interval: tg.Interval, Timeout: old.MaxRun(), Run: func(ctx context.Context) {
		r := old.Probe(ctx)
		dropped = store.Record(old.Key(), r)
		late <- r
	}}}, 2)
	<-arrived // the old run waits in its tls stage

	Sync(store, []*probe.Prober{changed})
	s.Update([]probe.Job{{Key: changed.Key(), Version: changed.Version(), Interval: time.Hour, Timeout: changed.MaxRun(), Run: func(context.Context) {}}}, 2)
	r := <-late
	if r.Err == nil {
		t.Fatal("the cancelled run succeeded")
	}
	if dropped.Known {
		t.Errorf("the late %s/%s of the replaced prober was recorded", r.Err.Stage, r.Err.Reason)
	}
	store.Range(func(e *Entry) {
		if e.Last != nil || e.Runs != [2]uint64{} || len(e.Failures) != 0 || len(e.History) != 0 {
			t.Errorf("the new probe's entry holds the old run: last %v runs %v failures %v", e.Last.Err, e.Runs, e.Failures)
		}
	})
	// The new prober's own results are recorded.
	if tr := store.Record(changed.Key(), probe.Result{Target: changed.Target(), Path: "direct", Version: changed.Version(), Start: time.Now()}); !tr.Known {
		t.Error("the new prober's result was dropped")
	}
}

// TestStoreOfKeepsVersionedResult: /probe's throwaway store keeps the
// result it was made for, whatever prober version the result carries (the
// late-result check must not drop it).
func TestStoreOfKeepsVersionedResult(t *testing.T) {
	p := fake("a")
	r := okResult(p)
	r.Version = "v7"
	s := storeOf(p.Key(), r)
	n := 0
	s.Range(func(e *Entry) {
		if e.Last != nil {
			n++
		}
	})
	if n != 1 {
		t.Errorf("%d results in the /probe store, want 1", n)
	}
}
