package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/reachd/reachd/configs"
	"github.com/reachd/reachd/exporter"
	"github.com/reachd/reachd/probe"
)

type runOptions struct {
	configFile string
	web        *web.FlagConfig
	lifecycle  bool
	routes     routeOptions
	// load and signals stand in for the host in tests; zero values use
	// the real ones.
	load    configs.Options
	signals <-chan os.Signal
}

// daemon owns the scheduler, the store and the reload path.
type daemon struct {
	configFile string
	logger     *slog.Logger
	store      *exporter.Store
	state      *exporter.State
	sched      *probe.Scheduler
	probers    atomic.Pointer[map[string]*probe.Prober] // by key, for /probe
	loadOpts   configs.Options

	mu sync.Mutex // one reload at a time
}

func run(o runOptions, logger *slog.Logger) int {
	if o.configFile == "" {
		logger.Warn("no --config.file: running the embedded default config, which probes the real vendor endpoints")
	}
	logger.Info("starting reachd", "version", version.Info(), "build_context", version.BuildContext())
	d, err := startDaemonWith(o.configFile, logger, o.load)
	if err != nil {
		logger.Error("loading the config", "err", err)
		return exitConfig
	}
	handler, err := d.serverWith(o.lifecycle, o.routes)
	if err != nil {
		logger.Error("web flags", "err", err)
		d.sched.Stop()
		return exitConfig
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- web.ListenAndServe(srv, o.web, logger) }()

	sig := o.signals
	if sig == nil {
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
		defer signal.Stop(c)
		sig = c
	}
	// Reloads run beside the signal loop, so that one stuck on a file
	// (bounded by the loader's file timeout) never delays SIGTERM; SIGHUPs
	// that arrive meanwhile fold into one more reload.
	reloads := make(chan struct{}, 1)
	stopReloads := make(chan struct{})
	go func() {
		for {
			select {
			case <-stopReloads:
				return
			case <-reloads:
				d.reload()
			}
		}
	}()
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
				select {
				case reloads <- struct{}{}:
				default: // one is pending already
				}
				continue
			}
			logger.Info("shutting down", "signal", s.String())
			break loop
		}
	}
	close(stopReloads)
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
	return startDaemonWith(configFile, logger, configs.Options{})
}

func startDaemonWith(configFile string, logger *slog.Logger, opts configs.Options) (*daemon, error) {
	cfg, err := configs.Load(configFile, opts)
	if err != nil {
		return nil, err
	}
	d := &daemon{configFile: configFile, logger: logger, store: exporter.NewStore(), state: exporter.NewState(),
		sched: probe.NewScheduler(cfg.Defaults.Concurrency), loadOpts: opts}
	d.apply(cfg)
	logger.Info("config loaded", "file", cfg.File, "site", cfg.Site, "probes", d.store.Len(), "targets", len(cfg.Targets),
		"paths", pathNames(cfg), "resolvers", len(cfg.Resolvers))
	return d, nil
}

func pathNames(cfg *configs.Config) string {
	names := make([]string, len(cfg.Paths))
	for i, p := range cfg.Paths {
		names[i] = p.Name
	}
	return strings.Join(names, ",")
}

func (d *daemon) server(lifecycle bool) *exporter.Server {
	s, _ := d.serverOptions(lifecycle, routeOptions{})
	return s
}

func (d *daemon) serverOptions(lifecycle bool, ro routeOptions) (*exporter.Server, error) {
	prefix, external, err := ro.resolve()
	if err != nil {
		return nil, err
	}
	return exporter.NewServer(d.store, d.state, exporter.ServerOptions{
		Reload: d.reload, Lifecycle: lifecycle, Scheduler: d.sched.Stats, Probe: d.probeNow, Logger: d.logger,
		RoutePrefix: prefix, ExternalURL: external,
	}), nil
}

func (d *daemon) serverWith(lifecycle bool, ro routeOptions) (http.Handler, error) {
	s, err := d.serverOptions(lifecycle, ro)
	if err != nil {
		return nil, err
	}
	return s.Handler(), nil
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
	d.logger.Info("reloading the config", "file", d.configFile)
	cfg, err := configs.Load(d.configFile, d.loadOpts)
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
	if d.logger.Enabled(context.Background(), slog.LevelDebug) {
		d.logger.Debug("probe run", "probe", p.Key(), "success", r.Success(), "took", r.Duration, "stages", stagesLog(r))
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

// stagesLog is a run's stages for the debug log: "dns ok 1ms, tcp failed 3s".
func stagesLog(r probe.Result) string {
	parts := make([]string, len(r.Stages))
	for i, s := range r.Stages {
		mark := "ok"
		if !s.Success {
			mark = "failed"
		}
		parts[i] = fmt.Sprintf("%s %s %s", s.Stage, mark, round(s.Duration))
	}
	if r.Err != nil {
		parts = append(parts, "reason "+string(r.Err.Reason))
	}
	return strings.Join(parts, ", ")
}
