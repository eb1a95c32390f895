package exporter

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/version"

	"github.com/reachd/reachd/probe"
)

// Server serves /metrics, the status page, the JSON API and the lifecycle
// endpoints of one daemon.
type Server struct {
	store     *Store
	state     *State
	reload    func() error
	lifecycle bool
	logger    *slog.Logger
	registry  *prometheus.Registry
	probe     ProbeFunc
	probeSem  chan struct{}
	prefix    string // route prefix without the trailing slash: "" or "/reachd"
	external  string // the path the browser sees for the prefix, without the trailing slash
}

// ServerOptions configure a Server.
type ServerOptions struct {
	// Reload loads the config again; a failure keeps the old one running.
	Reload func() error
	// Lifecycle allows POST /-/reload (--web.enable-lifecycle).
	Lifecycle bool
	// Scheduler reports the scheduler's self-monitoring.
	Scheduler func() probe.SchedulerStats
	// Probe runs one configured probe now, for /probe; nil: /probe
	// answers 404.
	Probe  ProbeFunc
	Logger *slog.Logger
	// RoutePrefix is where the endpoints are served (--web.route-prefix):
	// "/reachd" serves /reachd/metrics, /reachd/ and so on; "" or "/"
	// serves them at the root.
	RoutePrefix string
	// ExternalURL is the path under which browsers reach reachd through a
	// reverse proxy (the path of --web.external-url); redirects point there.
	// Empty: RoutePrefix.
	ExternalURL string
}

// NewServer returns the server of a store and daemon state.
func NewServer(store *Store, state *State, o ServerOptions) *Server {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		&Collector{store: store, state: state, sched: o.Scheduler, noProbes: true},
		versioncollector.NewCollector("reachd"),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	prefix := strings.TrimSuffix(o.RoutePrefix, "/")
	external := prefix
	if o.ExternalURL != "" {
		external = strings.TrimSuffix(o.ExternalURL, "/")
	}
	return &Server{store: store, state: state, reload: o.Reload, lifecycle: o.Lifecycle, logger: o.Logger, registry: reg,
		probe: o.Probe, probeSem: make(chan struct{}, ProbeConcurrency), prefix: prefix, external: external}
}

// Registry is the private registry behind /metrics.
func (s *Server) Registry() *prometheus.Registry { return s.registry }

// Handler routes every endpoint, under the route prefix. The status page
// links relatively ("metrics", "api/v1/results"), so that it works under
// any prefix; the prefix without its slash redirects to the page.
func (s *Server) Handler() http.Handler {
	h := s.routes()
	if s.prefix == "" {
		return h
	}
	outer := http.NewServeMux()
	outer.Handle(s.prefix+"/", http.StripPrefix(s.prefix, h))
	outer.HandleFunc("GET "+s.prefix+"", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, s.external+"/", http.StatusFound)
	})
	outer.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, s.external+"/", http.StatusFound)
	})
	return outer
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", s.metrics)
	mux.HandleFunc("GET /{$}", s.status)
	mux.HandleFunc("GET /api/v1/results", s.results)
	mux.HandleFunc("GET /api/v1/targets", s.targets)
	mux.HandleFunc("GET /probe", s.probeNow)
	mux.HandleFunc("GET /-/healthy", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("reachd is healthy.\n")) })
	mux.HandleFunc("GET /-/ready", s.ready)
	mux.HandleFunc("POST /-/reload", s.reloadHandler)
	mux.HandleFunc("PUT /-/reload", s.reloadHandler)
	return mux
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	buf := pageBuffers.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= maxPooledPage {
			buf.Reset()
			pageBuffers.Put(buf)
		}
	}()
	m := pageMeta{State: s.state.View(), Version: versionString(), Now: time.Now()}
	if err := renderStatus(buf, s.store, m, parseFilter(r.URL.Query())); err != nil {
		s.logger.Error("rendering the status page", "err", err)
		http.Error(w, "rendering the status page failed", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Add("Vary", "Accept-Encoding")
	if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		w.Write(buf.Bytes())
		return
	}
	h.Set("Content-Encoding", "gzip")
	gz, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
	gz.Write(buf.Bytes())
	gz.Close()
}

// versionString is the version the page shows: "1.2.3 (abc1234)".
func versionString() string {
	v := version.Version
	if rev := version.Revision; rev != "" {
		v += " (" + rev[:min(len(rev), 12)] + ")"
	}
	return v
}

func (s *Server) results(w http.ResponseWriter, r *http.Request) {
	st := s.state.View()
	w.Header().Set("Content-Type", "application/json")
	if err := s.store.WriteReport(r.Context(), w, st.Site, st.Started); err != nil {
		s.logger.Debug("writing /api/v1/results", "err", err)
	}
}

func (s *Server) targets(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(TargetsReport{Site: s.state.View().Site, Targets: s.store.Probes()}); err != nil {
		s.logger.Debug("writing /api/v1/targets", "err", err)
	}
}

func (s *Server) ready(w http.ResponseWriter, _ *http.Request) {
	if !s.state.View().Ready {
		http.Error(w, "reachd is not ready: no valid config is running yet.", http.StatusServiceUnavailable)
		return
	}
	w.Write([]byte("reachd is ready.\n"))
}

func (s *Server) reloadHandler(w http.ResponseWriter, _ *http.Request) {
	if !s.lifecycle {
		http.Error(w, "Lifecycle API is not enabled: start reachd with --web.enable-lifecycle.", http.StatusForbidden)
		return
	}
	if err := s.reload(); err != nil {
		http.Error(w, "reload failed, the previous config keeps running: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Write([]byte("config reloaded.\n"))
}
