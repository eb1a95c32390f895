// Package probe runs the stages of a probe — dns, tcp, proxy, tls, http —
// against one target over one path, classifies every failure into the
// closed reason set of reason.go, and schedules probes.
package probe

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"sync"
	"time"

	"golang.org/x/net/http/httpproxy"

	"github.com/reachd/reachd/configs"
	"github.com/reachd/reachd/targets"
)

var noDeadline time.Time

// Env is what every prober of one config shares: the resolvers, the
// anchor sets and the sweep interval. It is built once per load.
type Env struct {
	resolvers     []*resolver
	legit         *x509.CertPool // Mozilla roots + trust.ca_files
	trusted       *x509.CertPool // system roots + trust.ca_files (a path adds its ca_file)
	sweepInterval time.Duration
	settle        time.Duration // SettleTime; tests under load raise it
	userAgent     string
	fingerprint   string // of everything above, for reload comparisons
}

// NewEnv builds the shared environment of cfg. userAgent is sent with
// every HTTP request.
func NewEnv(cfg *configs.Config, userAgent string) *Env {
	e := &Env{sweepInterval: cfg.Defaults.TLSSweepInterval, settle: SettleTime, userAgent: userAgent}
	h := sha256.New()
	for _, r := range cfg.Resolvers {
		e.resolvers = append(e.resolvers, newResolver(r))
		fmt.Fprintf(h, "resolver %s %s %v\n", r.Name, r.Protocol, r.Servers)
		if r.System {
			fmt.Fprintf(h, "system %s %q %d\n", r.HostsFile, r.Search, r.Ndots)
		}
	}
	e.legit = mozillaRoots().Clone()
	e.trusted, _ = x509.SystemCertPool()
	if e.trusted == nil {
		e.trusted = x509.NewCertPool()
	}
	for _, c := range cfg.Trust.CACerts {
		e.legit.AddCert(c)
		e.trusted.AddCert(c)
		h.Write(c.Raw)
	}
	fmt.Fprintf(h, "sweep %s ua %s\n", e.sweepInterval, userAgent)
	e.fingerprint = hex.EncodeToString(h.Sum(nil))
	return e
}

// Prober probes one target over one path. It is built once per config
// load and run many times; runs of one prober may overlap.
type Prober struct {
	target   targets.Target
	path     string
	env      *Env
	resolver *resolver
	proxy    *proxyDialer // nil: direct
	tls      *tlsProber   // nil: no tls check
	http     *httpProber  // nil: no http check
	key      string
	version  string
	// dnsChecks asks every resolver about the host on each run; one
	// prober per target does it (DNS results carry no path).
	dnsChecks bool
	hostIP    netip.Addr // valid when the host is an IP literal: no dns stage

	mu        sync.Mutex
	lastSweep time.Time
	accepted  map[uint16]bool
}

// New builds the prober of target t over path p.
func New(t targets.Target, p configs.Path, env *Env) *Prober {
	pr := &Prober{target: t, path: p.Name, env: env, resolver: env.resolvers[0], key: t.ID() + "/" + p.Name}
	pr.hostIP, _ = netip.ParseAddr(t.Host)
	trusted := env.trusted
	if len(p.CACerts) > 0 {
		trusted = trusted.Clone()
		for _, c := range p.CACerts {
			trusted.AddCert(c)
		}
	}
	if proxy := proxyFor(t, p); proxy != nil {
		pr.proxy = newProxyDialer(proxy, p.Username, p.Password, t.Address(), pr.resolver, trusted)
	}
	if t.Has(targets.CheckTLS) {
		var alpn []string
		if t.Has(targets.CheckHTTP) {
			alpn = []string{"http/1.1"}
		}
		pr.tls = newTLSProber(t.Host, t.TLSMinVersion, alpn, env.legit, trusted, t.PinIssuer)
	}
	if t.Has(targets.CheckHTTP) {
		pr.http = newHTTPProber(t, env.userAgent)
	}
	pr.version = fingerprint(t, p, env)
	return pr
}

// proxyFor is the proxy a target uses on a path; nil means direct. An
// environment path decides per target, as agents do, honouring NO_PROXY.
func proxyFor(t targets.Target, p configs.Path) *url.URL {
	if !p.Environment {
		return p.Proxy
	}
	env := httpproxy.Config{HTTPSProxy: p.ProxyEnv.HTTPSProxy, HTTPProxy: p.ProxyEnv.HTTPProxy, NoProxy: p.ProxyEnv.NoProxy}
	scheme := "https"
	if !t.Has(targets.CheckTLS) {
		scheme = "http"
	}
	u, err := env.ProxyFunc()(&url.URL{Scheme: scheme, Host: t.Address()})
	if err != nil || u == nil {
		return nil
	}
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		u.Host = net.JoinHostPort(u.Hostname(), port)
	}
	return u
}

func fingerprint(t targets.Target, p configs.Path, env *Env) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s|%s|%d|%v|%v|%d|%s|%v|%v|%v|%s|%s|%s\n", t.ID(), t.Host, t.Port, t.Checks, t.Paths, t.TLSMinVersion,
		t.HTTP.Path, t.HTTP.ExpectStatus, t.HTTP.ExpectBody, t.ExpectCIDRs, t.PinIssuer, t.Interval, t.Timeout)
	fmt.Fprintf(h, "%s|%v|%v|%s|%s|%s|%v\n", p.Name, p.Proxy, p.Environment, p.ProxyEnv, p.Username, p.Password, p.CAFile)
	for _, c := range p.CACerts {
		h.Write(c.Raw)
	}
	h.Write([]byte(env.fingerprint))
	return hex.EncodeToString(h.Sum(nil))
}

// Key names the probe: vendor/region/target/path.
func (p *Prober) Key() string { return p.key }

// Version changes whenever anything that shapes the probe changes, so a
// reload can keep probes whose version is unchanged.
func (p *Prober) Version() string { return p.version }

// MaxRun bounds one run: the stages' timeout, then the sweep's parallel
// handshakes, each with a timeout of its own. The scheduler's backstop.
func (p *Prober) MaxRun() time.Duration { return 2 * p.target.Timeout }

// Target is the probed target.
func (p *Prober) Target() *targets.Target { return &p.target }

// Path is the name of the path the probe takes.
func (p *Prober) Path() string { return p.path }

// Probe runs the stages in order, stopping at the first failure, within
// the target's timeout; the TLS sweep follows when it is due.
func (p *Prober) Probe(ctx context.Context) Result {
	base, g := withGuard(ctx) // the sweep's handshakes have timeouts of their own
	ctx, cancel := context.WithTimeout(base, p.target.Timeout)
	defer cancel()
	r := Result{Target: &p.target, Path: p.path, Start: time.Now()}
	// The dns stage asks the first resolver; the per-resolver checks reuse
	// its answers and ask the others meanwhile. A hosts file answer is not
	// reused: the check compares the pin with DNS.
	stageAsks := p.proxy == nil && !p.hostIP.IsValid() && !p.resolver.pins(p.target.Host)
	var others []DNSResult
	var wg sync.WaitGroup
	if p.dnsChecks {
		rest := p.env.resolvers
		if stageAsks {
			rest = rest[1:]
		}
		spawn(ctx, &wg, func() { others = checkResolvers(ctx, rest, p.target.Host, p.target.ExpectCIDRs) })
	}
	var stage [2]answer
	p.safeStages(ctx, base, &r, &stage)
	r.Duration = time.Since(r.Start)
	wg.Wait()
	if p.dnsChecks {
		if stageAsks {
			for i, qtype := range queryTypes {
				r.DNS = append(r.DNS, newDNSResult(p.resolver.name, qtype, stage[i], p.target.ExpectCIDRs))
			}
		}
		r.DNS = append(r.DNS, others...)
	}
	g.apply(&r)
	return r
}

// safeStages runs the stages under the run's guard.
func (p *Prober) safeStages(ctx, base context.Context, r *Result, stage *[2]answer) {
	g, _ := ctx.Value(guardKey{}).(*guard)
	defer g.catch()
	p.stages(ctx, base, r, stage)
}

// stages runs the stages in order, stopping at the first failure.
func (p *Prober) stages(ctx, base context.Context, r *Result, stage *[2]answer) {
	conn, dial := p.connect(ctx, r, stage)
	if conn == nil {
		return
	}
	stop := deadlineOnCancel(ctx, conn)
	defer stop()
	defer conn.Close()
	if p.tls != nil {
		var tc net.Conn
		ok := r.run(StageTLS, func() (err *Error) {
			tc, r.TLS, err = p.tls.handshake(ctx, conn)
			return err
		})
		p.sweepIfDue(base, r, dial)
		if !ok {
			return
		}
		conn = tc
	}
	if p.http != nil {
		r.run(StageHTTP, func() (err *Error) {
			r.HTTP, err = p.http.do(conn)
			return err
		})
		clientCertVerdict(ctx, r, conn) // a refused client certificate shows only now
	}
}

// connect runs the stages up to an open connection: dns and tcp on a
// direct path, proxy on a proxy path. It returns nil when a stage failed
// or the checks end before a connection; dial opens more connections the
// same way, for the sweep.
func (p *Prober) connect(ctx context.Context, r *Result, stage *[2]answer) (net.Conn, func(context.Context) (net.Conn, *Error)) {
	t := &p.target
	if p.proxy != nil {
		var conn net.Conn
		if !r.run(StageProxy, func() (err *Error) { conn, err = p.proxy.dial(ctx); return err }) {
			return nil, nil
		}
		return conn, p.proxy.dial
	}
	var addrs []netip.Addr
	if p.hostIP.IsValid() {
		addrs = []netip.Addr{p.hostIP}
	} else if !r.run(StageDNS, func() (err *Error) {
		addrs, err, *stage = p.resolver.lookup(ctx, t.Host)
		if err == nil && outside(addrs, t.ExpectCIDRs) {
			err = fail(DNSUnexpectedAddress, fmt.Errorf("%s resolved to %v, outside %v", t.Host, addrs, t.ExpectCIDRs))
		}
		return err
	}) {
		return nil, nil
	}
	if !t.Has(targets.CheckTCP) && p.tls == nil && p.http == nil {
		return nil, nil
	}
	dial := func(ctx context.Context) (net.Conn, *Error) { return dialAddrs(ctx, addrs, t.Port) }
	last := p.tls == nil && p.http == nil // tcp is the deepest check
	var conn net.Conn
	if !r.run(StageTCP, func() (err *Error) {
		if conn, err = dial(ctx); err == nil && last {
			err = settle(ctx, conn, p.env.settle)
			conn.Close()
		}
		return err
	}) || last {
		return nil, nil
	}
	return conn, dial
}

// sweepIfDue tries each TLS version alone on the first run and then every
// sweep interval, and attaches the verdicts to the result. ctx is the
// run's context without the probe's timeout: each handshake has its own.
func (p *Prober) sweepIfDue(ctx context.Context, r *Result, dial func(context.Context) (net.Conn, *Error)) {
	p.mu.Lock()
	due := p.accepted == nil || time.Since(p.lastSweep) >= p.env.sweepInterval
	accepted := p.accepted
	p.mu.Unlock()
	if due {
		accepted = p.tls.sweep(ctx, p.target.Timeout, dial)
		p.mu.Lock()
		p.accepted, p.lastSweep = accepted, time.Now()
		p.mu.Unlock()
	}
	if r.TLS == nil {
		r.TLS = &TLSInfo{}
	}
	r.TLS.Accepted = accepted
	if r.Err != nil && r.Err.Stage == StageTLS && onlyBelow(accepted, p.target.TLSMinVersion) {
		r.Err = fail(TLSVersionUnsupported, fmt.Errorf("the server accepts only TLS versions below %s: %w", TLSVersionName(p.target.TLSMinVersion), r.Err.Err))
	}
}

// onlyBelow reports whether some version below min was accepted and none
// at or above it.
func onlyBelow(accepted map[uint16]bool, min uint16) bool {
	below := false
	for v, ok := range accepted {
		if ok && v >= min {
			return false
		}
		below = below || ok
	}
	return below
}

// Build returns a prober for every target of cfg over each of its paths,
// in config order.
func Build(cfg *configs.Config, userAgent string) []*Prober {
	env := NewEnv(cfg, userAgent)
	paths := make(map[string]configs.Path, len(cfg.Paths))
	for _, p := range cfg.Paths {
		paths[p.Name] = p
	}
	var out []*Prober
	for _, t := range cfg.Targets {
		for i, name := range t.Paths {
			p := New(t, paths[name], env)
			p.dnsChecks = i == 0 && t.Has(targets.CheckDNS) && !p.hostIP.IsValid()
			out = append(out, p)
		}
	}
	return out
}
