package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/exporter-toolkit/web"

	"github.com/reachd/reachd/configs"
	"github.com/reachd/reachd/exporter"
	"github.com/reachd/reachd/probe"
)

type runOptions struct {
	configFile string
	web        *web.FlagConfig
	lifecycle  bool
}

// daemon owns the scheduler, the store and the reload path.
type daemon struct {
	configFile string
	logger     *slog.Logger
	store      *exporter.Store
	state      *exporter.State
	sched      *probe.Scheduler
	probers    atomic.Pointer[map[string]*probe.Prober] // by key, for /probe

	mu sync.Mutex // one reload at a time
}

func run(o runOptions, logger *slog.Logger) int {
	if o.configFile == "" {
		logger.Warn("no --config.file: running the embedded default config, which probes the real vendor endpoints")
	}
	d, err := startDaemon(o.configFile, logger)
	if err != nil {
		logger.Error("loading the config", "err", err)
		return exitConfig
	}
	srv := &http.Server{
		Handler:           d.server(o.lifecycle).Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- web.ListenAndServe(srv, o.web, logger) }()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sig)
	code := exitOK
loop:
	for {
		select {
		case err := <-serveErr:
			logger.Error("serving HTTP", "err", err)
			code = exitFailed
			break loop
		case s := <-sig:
			if s == syscall.SIGHUP {
				d.reload()
				continue
			}
			logger.Info("shutting down", "signal", s.String())
			break loop
		}
	}
	d.sched.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		logger.Warn("stopping the HTTP server", "err", err)
	}
	return code
}

// startDaemon loads the config and starts probing; Stop ends it.
func startDaemon(configFile string, logger *slog.Logger) (*daemon, error) {
	cfg, err := configs.Load(configFile, configs.Options{})
	if err != nil {
		return nil, err
	}
	d := &daemon{configFile: configFile, logger: logger, store: exporter.NewStore(), state: exporter.NewState(),
		sched: probe.NewScheduler(cfg.Defaults.Concurrency)}
	d.apply(cfg)
	return d, nil
}

func (d *daemon) server(lifecycle bool) *exporter.Server {
	return exporter.NewServer(d.store, d.state, exporter.ServerOptions{
		Reload: d.reload, Lifecycle: lifecycle, Scheduler: d.sched.Stats, Probe: d.probeNow, Logger: d.logger,
	})
}

// probeNow runs the configured probe named key once, for /probe.
func (d *daemon) probeNow(ctx context.Context, key string) (probe.Result, bool) {
	p, ok := (*d.probers.Load())[key]
	if !ok {
		return probe.Result{}, false
	}
	return p.Probe(ctx), true
}

// reload loads the config again; a config that fails validation leaves
// the running one in place.
func (d *daemon) reload() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	cfg, err := configs.Load(d.configFile, configs.Options{})
	if err != nil {
		d.state.Failed(err)
		d.logger.Error("reloading the config failed; the previous config keeps running", "err", err)
		return err
	}
	d.apply(cfg)
	d.logger.Info("config reloaded", "file", cfg.File, "probes", d.store.Len())
	return nil
}

// apply builds the probers of cfg and hands them to the store and the
// scheduler; probes it leaves unchanged keep running with their history.
func (d *daemon) apply(cfg *configs.Config) {
	for _, w := range cfg.Warnings {
		d.logger.Warn(w)
	}
	probers := probe.Build(cfg, userAgent())
	exporter.Sync(d.store, probers)
	d.store.SetStageHistograms(cfg.Metrics.StageHistograms)
	byKey := make(map[string]*probe.Prober, len(probers))
	jobs := make([]probe.Job, len(probers))
	for i, p := range probers {
		byKey[p.Key()] = p
		jobs[i] = probe.Job{Key: p.Key(), Version: p.Version(), Interval: p.Target().Interval, Timeout: p.MaxRun(),
			Start: func(ctx context.Context) func(context.Context) { return d.start(ctx, p) }}
	}
	d.probers.Store(&byKey)
	d.sched.Update(jobs, cfg.Defaults.Concurrency)
	d.state.SetWarnings(cfg.Warnings)
	d.state.Loaded(cfg.Site)
}

// record stores a result and logs the probe's state changes, not every run.
func (d *daemon) record(p *probe.Prober, r probe.Result) {
	if len(r.Panic) > 0 {
		d.logger.Error("probe panicked: a bug in reachd; the daemon goes on", "probe", p.Key(), "err", r.Err.Err, "stack", string(r.Panic))
	}
	tr := d.store.Record(p.Key(), r)
	if !tr.Known || !tr.Changed && !(tr.First && !r.Success()) {
		return
	}
	if r.Success() {
		d.logger.Info("probe up", "probe", p.Key())
		return
	}
	d.logger.Warn("probe down", "probe", p.Key(), "stage", r.Err.Stage, "reason", r.Err.Reason, "err", r.Err.Err)
}
