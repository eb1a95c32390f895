package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/reachd/reachd/configs"
	"github.com/reachd/reachd/exporter"
	"github.com/reachd/reachd/probe"
	"github.com/reachd/reachd/probe/probetest"
	"github.com/reachd/reachd/targets"
)

// TestFirstResultBeforeItsSweep runs a scheduled run's two parts by hand
// against a real TLS server that answers 503: the first run's result is
// in the store (and its failure logged) once the stages end, before the
// sweep; the sweep completes it without counting the run or logging the
// failure again. A later run is recorded once, whole, after its sweep.
func TestFirstResultBeforeItsSweep(t *testing.T) {
	ca := probetest.NewCA(t, "Staged Root CA")
	srv := probetest.NewTLSServer(t, probetest.Issuer(ca), probetest.Hosts("staged.reachd.test"),
		probetest.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })))
	dns := probetest.NewDNSServer(t, probetest.Records{"staged.reachd.test": {A: []string{"127.0.0.1"}}})
	cfg := &configs.Config{
		Site:      "staged",
		Defaults:  configs.Defaults{TLSSweepInterval: 0, Concurrency: 4},
		Resolvers: []configs.Resolver{{Name: "lab", Servers: []string{dns.Addr}, Protocol: "udp"}},
		Paths:     []configs.Path{{Name: configs.DirectPath}},
		Trust:     configs.Trust{CACerts: []*x509.Certificate{ca.Cert}},
	}
	tg := targets.Target{Vendor: "lab", Region: "test", Name: "staged", Host: "staged.reachd.test", Port: srv.Port,
		Checks: targets.AllChecks, TLSMinVersion: tls.VersionTLS12, Timeout: 3 * time.Second, Interval: time.Minute,
		HTTP: targets.HTTPCheck{Path: "/", ExpectStatus: []int{200}}}
	p := probe.New(tg, configs.Path{Name: configs.DirectPath}, probe.NewEnv(cfg, "reachd-test"))
	var logs lockedBuffer
	d := &daemon{logger: slog.New(slog.NewTextHandler(&logs, nil)), store: exporter.NewStore(), state: exporter.NewState()}
	exporter.Sync(d.store, []*probe.Prober{p})
	last := func() (*probe.Result, [2]uint64) {
		var r *probe.Result
		var runs [2]uint64
		d.store.Range(func(e *exporter.Entry) { r, runs = e.Last, e.Runs })
		return r, runs
	}

	then := d.start(context.Background(), p)
	if then == nil {
		t.Fatal("a run with a sweep came back in one part")
	}
	r, runs := last()
	if r == nil || r.Err == nil || r.Err.Reason != probe.HTTPStatusUnexpected || r.TLS == nil || r.TLS.Accepted != nil || runs != [2]uint64{1, 0} {
		t.Fatalf("after the stages: result %+v, runs %v; want the stages' http failure, no sweep, one run", r, runs)
	}
	if n := strings.Count(logs.String(), "probe down"); n != 1 {
		t.Errorf("%d probe down logs after the stages, want 1:\n%s", n, logs.String())
	}
	then(context.Background())
	r, runs = last()
	if r.TLS == nil || !r.TLS.Accepted[tls.VersionTLS13] || r.Err.Reason != probe.HTTPStatusUnexpected || runs != [2]uint64{1, 0} {
		t.Errorf("after the sweep: tls %+v, err %v, runs %v; want the sweep, the same failure, one run", r.TLS, r.Err, runs)
	}

	// The next run (the sweep is due again: interval 0) keeps the
	// complete first result until its own sweep ends.
	then = d.start(context.Background(), p)
	if r2, runs := last(); r2 != r || runs != [2]uint64{1, 0} {
		t.Errorf("a later run was recorded before its sweep: runs %v", runs)
	}
	then(context.Background())
	if r2, runs := last(); r2 == r || r2.TLS.Accepted == nil || runs != [2]uint64{2, 0} {
		t.Errorf("the later run, whole: runs %v, tls %+v", runs, r2.TLS)
	}
	if n := strings.Count(logs.String(), "probe down"); n != 1 {
		t.Errorf("%d probe down logs in all, want 1:\n%s", n, logs.String())
	}
}
