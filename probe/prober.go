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
	traceInterval time.Duration // 0: no path trace
	settle        time.Duration // SettleTime; tests under load raise it
	userAgent     string
	fingerprint   string // of everything above, for reload comparisons
	// pacs are the PAC files of the pac and wpad paths, by path name,
	// shared by the probers of each path.
	pacs map[string]*pacRoute
}

// NewEnv builds the shared environment of cfg. userAgent is sent with
// every HTTP request.
func NewEnv(cfg *configs.Config, userAgent string) *Env {
	e := &Env{sweepInterval: cfg.Defaults.TLSSweepInterval, traceInterval: cfg.Defaults.TraceInterval, settle: SettleTime, userAgent: userAgent}
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
	fmt.Fprintf(h, "sweep %s ua %s trace %s\n", e.sweepInterval, userAgent, e.traceInterval)
	e.pacs = map[string]*pacRoute{}
	for _, p := range cfg.Paths {
		if p.PAC != nil {
			e.pacs[p.Name] = newPACRoute(p.PAC, e.resolvers[0], cfg.Defaults.Interval)
		}
	}
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
	pac      *pacProber   // a pac or wpad path: the PAC picks the proxy per run
	tls      *tlsProber   // nil: no tls check
	http     *httpProber  // nil: no http check
	key      string
	version  string
	// dnsChecks asks every resolver about the host on each run; one
	// prober per target does it (DNS results carry no path).
	dnsChecks bool
	hostIP    netip.Addr // valid when the host is an IP literal: no dns stage

	forward *forwarder // a plain-HTTP target through a proxy; nil otherwise
	fetch   *fetcher   // plain-HTTP GETs over the path, for AIA and the extras
	extras  []extra    // run after the stages, in order
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
	var route *pacRoute
	if p.PAC != nil {
		if route = env.pacs[p.Name]; route == nil {
			route = newPACRoute(p.PAC, pr.resolver, t.Interval)
		}
		pr.pac = newPACProber(route, t, p, pr.resolver, trusted, env.userAgent)
	} else if proxy := proxyFor(t, p); proxy != nil {
		pr.proxy = newProxyDialer(proxy, p.Username, p.Password, t.Address(), pr.resolver, trusted)
		pr.proxy.setAuth(p)
	}
	pr.fetch = newFetcher(p, pr.resolver, trusted, env.userAgent, route)
	if t.Has(targets.CheckTLS) {
		var alpn []string
		if t.Has(targets.CheckHTTP) {
			alpn = []string{"http/1.1"}
		}
		pr.tls = newTLSProber(t.Host, t.TLSMinVersion, alpn, env.legit, trusted, t.PinIssuer)
		pr.tls.chain = chainCheck{fetch: pr.fetch, breaks: t.Inspection == targets.InspectionBreaks, vendor: t.Vendor, host: t.Host}
		pr.extras = append(pr.extras, &sweep{tls: pr.tls, timeout: t.Timeout, interval: env.sweepInterval, min: t.TLSMinVersion})
		pr.extras = append(pr.extras, newRevocation(t.Timeout, env.sweepInterval))
	}
	if env.traceInterval > 0 && t.Has(targets.CheckTCP) { // it traces only when the probe went direct
		pr.extras = append(pr.extras, newPathTrace(t.Port, env.traceInterval))
	}
	if t.Has(targets.CheckHTTP) {
		pr.http = newHTTPProber(t, env.userAgent)
		pr.http.proxy = pr.proxy
	}
	if pr.proxy != nil && pr.tls == nil {
		pr.forward = newForwarder(pr.proxy, t, env.userAgent)
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
	return withDefaultPort(u)
}

func fingerprint(t targets.Target, p configs.Path, env *Env) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s|%s|%d|%v|%v|%d|%s|%v|%v|%v|%s|%s|%s|%s\n", t.ID(), t.Host, t.Port, t.Checks, t.Paths, t.TLSMinVersion,
		t.HTTP.Path, t.HTTP.ExpectStatus, t.HTTP.ExpectBody, t.ExpectCIDRs, t.PinIssuer, t.Inspection, t.Interval, t.Timeout)
	fmt.Fprintf(h, "%s|%v|%v|%s|%s|%s|%v|%v\n", p.Name, p.Proxy, p.Environment, p.ProxyEnv, p.Username, p.Password, p.CAFile, p.PAC)
	fmt.Fprintf(h, "%s|%s|%s|%s|%s\n", p.Auth, p.Keytab, p.Principal, p.Krb5Conf, p.CCache)
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

// MaxRun bounds one run: the stages' timeout, then each extra's budget
// (the sweep's parallel handshakes share one handshake timeout), and a
// grace. The scheduler's backstop.
func (p *Prober) MaxRun() time.Duration {
	d := p.target.Timeout + runGrace
	for _, x := range p.extras {
		d += x.budget()
	}
	return d
}

// Target is the probed target.
func (p *Prober) Target() *targets.Target { return &p.target }

// Path is the name of the path the probe takes.
func (p *Prober) Path() string { return p.path }

// Probe runs the stages in order, stopping at the first failure, within
// the target's timeout; once their connection is closed, the extras (the
// TLS sweep when it is due) follow, each within a budget of its own. The
// result's Duration is the stages' alone.
func (p *Prober) Probe(ctx context.Context) Result {
	return p.Start(ctx).Finish(ctx)
}

// Run is one run of a prober in two parts, so that the scheduler can
// record the stages' result at once and run the extras later, at a lower
// priority: Start runs the stages, Finish the extras.
type Run struct {
	p  *Prober
	r  Result
	rt route
}

// Start runs the stages (Probe's first part) under ctx and the target's
// timeout; their connection is closed when it returns.
func (p *Prober) Start(ctx context.Context) *Run {
	base, g := withGuard(ctx)
	run := &Run{p: p, r: Result{Target: &p.target, Path: p.path, Start: time.Now(), Version: p.version}}
	if p.proxy != nil {
		run.r.Proxy, run.r.ProxyAuth = p.proxy.display, p.proxy.auth != nil
	}
	run.rt = p.runStages(base, &run.r)
	run.rt.fetch = p.fetch
	g.apply(&run.r)
	return run
}

// Stages is the stages' result, without what the extras add. The caller
// must not change it (it shares maps and slices with Finish's result).
func (run *Run) Stages() Result { return run.r }

// Settled reports whether the extras leave the stages' verdict as it is,
// so the stages' result may be recorded before they run: only the sweep
// refines a verdict, a failure at tls (DESIGN §5). A panic in an extra is
// the other exception; a caller that recorded early checks the verdict.
func (run *Run) Settled() bool {
	return len(run.p.extras) == 0 || run.r.Err == nil || run.r.Err.Stage != StageTLS
}

// Extras reports whether the prober has extras, that is whether Finish
// has anything to do.
func (run *Run) Extras() bool { return len(run.p.extras) > 0 && len(run.r.Panic) == 0 }

// Due reports whether any extra has work of its own to do after these
// stages (a sweep, a check or a trace that is due) rather than only
// attach what it found on an earlier run. When none has, Finish is cheap
// and may run at once, in the stages' slot.
func (run *Run) Due() bool {
	if !run.Extras() {
		return false
	}
	for _, x := range run.p.extras {
		if x.due(&run.r, run.rt) {
			return true
		}
	}
	return false
}

// Finish runs the extras under ctx, each within its own budget, and
// returns the complete result. ctx is the extras' own: it may start long
// after the stages ended. Call it once.
func (run *Run) Finish(ctx context.Context) Result {
	if len(run.r.Panic) > 0 {
		return run.r
	}
	base, g := withGuard(ctx)
	r, rt := run.r, run.rt
	if r.TLS != nil { // the extras add to it; the stages' result may be in a store already
		tls := *r.TLS
		r.TLS = &tls
	}
	rt.run = base
	run.p.runExtras(base, &r, rt)
	g.apply(&r)
	return r
}

// runStages runs the stages, and the per-resolver DNS checks beside them,
// under the target's timeout. The stages' connection is closed when it
// returns; the route says how to open another.
func (p *Prober) runStages(base context.Context, r *Result) route {
	ctx, cancel := context.WithTimeout(base, p.target.Timeout)
	defer cancel()
	// The dns stage asks the first resolver; the per-resolver checks reuse
	// its answers and ask the others meanwhile. A hosts file answer is not
	// reused: the check compares the pin with DNS.
	stageAsks := p.proxy == nil && p.pac == nil && !p.hostIP.IsValid() && !p.resolver.pins(p.target.Host)
	var others []DNSResult
	var wg sync.WaitGroup
	if p.dnsChecks {
		rest := p.env.resolvers
		if stageAsks {
			rest = rest[1:]
		}
		if len(rest) > 0 {
			spawn(ctx, &wg, func() { others = checkResolvers(ctx, rest, p.target.Host, p.target.ExpectCIDRs) })
		}
	}
	var stage [2]answer
	rt := p.safeStages(ctx, r, &stage)
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
	return rt
}

// safeStages runs the stages under the run's guard.
func (p *Prober) safeStages(ctx context.Context, r *Result, stage *[2]answer) (rt route) {
	g, _ := ctx.Value(guardKey{}).(*guard)
	defer g.catch()
	return p.stages(ctx, r, stage)
}

// stages runs the stages in order, stopping at the first failure, and
// closes their connection before it returns.
func (p *Prober) stages(ctx context.Context, r *Result, stage *[2]answer) route {
	if p.forward != nil {
		return p.forward.stages(ctx, r)
	}
	var rt route
	conn := p.connect(ctx, r, stage, &rt)
	if conn == nil {
		return rt
	}
	stop := deadlineOnCancel(ctx, conn)
	defer stop()
	defer conn.Close()
	if p.tls != nil {
		var tc net.Conn
		if !r.run(StageTLS, func() (err *Error) {
			tc, r.TLS, err = p.tls.handshake(ctx, conn)
			return err
		}) {
			return rt
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
	return rt
}

// connect runs the stages up to an open connection: dns and tcp on a
// direct path, proxy on a proxy path. It returns nil when a stage failed
// or the checks end before a connection. It fills in rt for the extras:
// the addresses the dns stage found, and once a connection opened, how to
// open more the same way.
func (p *Prober) connect(ctx context.Context, r *Result, stage *[2]answer, rt *route) net.Conn {
	t := &p.target
	if p.pac != nil {
		var conn net.Conn
		var used *pacEntry
		direct := false
		r.PAC = &PACInfo{}
		if !r.run(StageProxy, func() (err *Error) {
			conn, used, direct, err = p.pac.choose(ctx, r.PAC)
			if err == nil && used != nil && used.forwarder != nil {
				err = used.forwarder.opened(ctx, conn)
			}
			return err
		}) {
			return nil
		}
		switch {
		case direct:
		case used.forwarder != nil: // a plain-HTTP target: the GET to the proxy is the rest
			used.forwarder.request(ctx, r, conn)
			return nil
		default:
			rt.dial = used.dialer.dial
			return conn
		}
	} else if p.proxy != nil {
		var conn net.Conn
		if !r.run(StageProxy, func() (err *Error) { conn, err = p.proxy.dial(ctx); return err }) {
			return nil
		}
		rt.dial = p.proxy.dial
		return conn
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
		return nil
	}
	rt.addrs = addrs
	if !t.Has(targets.CheckTCP) && p.tls == nil && p.http == nil {
		return nil
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
		return nil
	}
	rt.dial = dial
	if a, ok := conn.RemoteAddr().(*net.TCPAddr); ok {
		rt.peer = a.AddrPort().Addr()
	}
	return conn
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
