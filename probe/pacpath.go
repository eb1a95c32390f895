package probe

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/reachd/reachd/configs"
	"github.com/reachd/reachd/probe/pac"
	"github.com/reachd/reachd/targets"
)

// PACInfo is what a pac or wpad path decided for one run.
type PACInfo struct {
	// Source is the PAC file's URL or file (for wpad, the URL found).
	Source string
	// Answer is what FindProxyForURL returned, parsed and rendered
	// ("PROXY a:8080; PROXY b:8080; DIRECT"); empty when it failed.
	Answer string
	// Used is the entry that carried the probe ("PROXY b:8080",
	// "DIRECT"); empty when none did.
	Used string
	// FetchError is the last refetch's failure while an older good copy
	// is in use; empty when the last fetch succeeded.
	FetchError string
	// Fallback is true when Used is not the answer's first choice: a
	// proxy before it could not be reached, and agents fall over it too
	// (each waiting for that proxy first).
	Fallback bool
}

// pacRoute is the PAC file of one path, shared by every prober of it:
// fetched when a probe first needs it and again once older than the
// interval, one fetch at a time.
type pacRoute struct {
	source   *configs.PACSource
	loader   *pac.Loader
	interval time.Duration
	sem      chan struct{}
	lastTry  time.Time // under sem
	mu       sync.Mutex
	found    string // wpad: the URL of the last PAC found
}

func newPACRoute(src *configs.PACSource, res *resolver, interval time.Duration) *pacRoute {
	env := pac.Env{Resolve: res.addrs, MyAddrs: myAddrs(res)}
	pr := &pacRoute{source: src, interval: interval, sem: make(chan struct{}, 1)}
	var fetch pac.Fetcher
	switch {
	case src.WPAD:
		fetch = func(ctx context.Context) ([]byte, error) {
			u, body, _, err := pac.Discover(ctx, src.Domains, res.addrs, env)
			if err == nil {
				pr.mu.Lock()
				pr.found = u
				pr.mu.Unlock()
			}
			return body, err
		}
	case src.File != "":
		fetch = pac.File(src.File)
	default:
		f, err := pac.URL(src.URL, res.addrs)
		if err != nil { // validated at load; kept as the fetch's error
			f = func(context.Context) ([]byte, error) { return nil, err }
		}
		fetch = f
	}
	pr.loader = pac.NewLoader(src.String(), fetch, env)
	return pr
}

// script returns the current script, fetching it first when it is due.
func (pr *pacRoute) script(ctx context.Context) (*pac.Script, error) {
	select {
	case pr.sem <- struct{}{}:
		if pr.lastTry.IsZero() || time.Since(pr.lastTry) >= pr.interval {
			pr.lastTry = time.Now()
			pr.loader.Refresh(ctx)
		}
		<-pr.sem
	case <-ctx.Done():
	}
	s, _, err := pr.loader.Current()
	return s, err
}

func (pr *pacRoute) name() string {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.found != "" {
		return pr.found
	}
	return pr.loader.Source()
}

// addrs is the resolver as the PAC helpers and fetches use it.
func (r *resolver) addrs(ctx context.Context, host string) ([]netip.Addr, error) {
	addrs, err, _ := r.lookup(ctx, host)
	if err != nil {
		return nil, err
	}
	return addrs, nil
}

// myAddrs are the addresses myIpAddress and myIpAddressEx answer: the
// address this host sends from towards the first resolver (a UDP socket
// is connected to learn it, which sends nothing). When that is loopback
// (a local stub resolver such as 127.0.0.53), the host's global unicast
// interface addresses are taken instead, IPv4 first, since PACs test
// myIpAddress() against the site's subnets.
func myAddrs(res *resolver) []netip.Addr {
	var out []netip.Addr
	if len(res.servers) > 0 {
		if c, err := net.Dial("udp", res.servers[0]); err == nil {
			if a, ok := c.LocalAddr().(*net.UDPAddr); ok {
				if ip, ok := netip.AddrFromSlice(a.IP); ok {
					out = append(out, ip.Unmap())
				}
			}
			c.Close()
		}
	}
	if len(out) == 1 && !out[0].IsLoopback() {
		return out
	}
	ifaddrs, _ := net.InterfaceAddrs()
	var v4, v6 []netip.Addr
	for _, a := range ifaddrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok || !ip.Unmap().IsGlobalUnicast() {
			continue
		}
		if ip = ip.Unmap(); ip.Is4() {
			v4 = append(v4, ip)
		} else {
			v6 = append(v6, ip)
		}
	}
	if all := append(v4, v6...); len(all) > 0 {
		return all
	}
	return out
}

// pacProber is the part of a prober on a pac or wpad path: the route,
// and a proxy dialer per proxy the PAC has named, built once.
type pacProber struct {
	route    *pacRoute
	pacURL   string // the url argument of FindProxyForURL
	host     string // its host argument
	address  string // host:port, what CONNECT asks for
	path     configs.Path
	resolver *resolver
	trusted  *x509.CertPool
	// forward builds the forwarder of a plain-HTTP target (no tls
	// check) for a proxy the PAC named: such a target goes to the proxy
	// as an absolute-form GET, as on a proxy path, never CONNECT. Nil
	// for a target with TLS.
	forward func(*proxyDialer) *forwarder

	mu      sync.Mutex
	entries map[string]*pacEntry
}

// pacEntry is one proxy a PAC named: its dialer, and for a plain-HTTP
// target its forwarder.
type pacEntry struct {
	dialer    *proxyDialer
	forwarder *forwarder
}

func newPACProber(route *pacRoute, t targets.Target, p configs.Path, res *resolver, trusted *x509.CertPool, userAgent string) *pacProber {
	scheme := "https"
	if !t.Has(targets.CheckTLS) {
		scheme = "http"
	}
	u := (&url.URL{Scheme: scheme, Host: t.Address(), Path: "/"}).String()
	if t.Port == 443 && scheme == "https" || t.Port == 80 && scheme == "http" {
		u = scheme + "://" + t.Host + "/"
	}
	pp := &pacProber{route: route, pacURL: u, host: t.Host, address: t.Address(), path: p,
		resolver: res, trusted: trusted, entries: map[string]*pacEntry{}}
	if scheme == "http" {
		pp.forward = func(pd *proxyDialer) *forwarder { return newForwarder(pd, t, userAgent) }
	}
	return pp
}

// entry returns the dialer (and forwarder) of the proxy u, built the
// first time the PAC names it, with the path's credentials and
// authentication scheme.
func (pp *pacProber) entry(u *url.URL) *pacEntry {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	e, ok := pp.entries[u.String()]
	if !ok {
		d := newProxyDialer(u, pp.path.Username, pp.path.Password, pp.address, pp.resolver, pp.trusted)
		d.setAuth(pp.path)
		e = &pacEntry{dialer: d}
		if pp.forward != nil {
			e.forwarder = pp.forward(d)
		}
		pp.entries[u.String()] = e
	}
	return e
}

// fallsOver reports a proxy failure after which an agent tries the next
// entry: the proxy could not be found or connected. A proxy that answered
// (denied, demanded credentials, failed upstream) carried the probe.
func fallsOver(err *Error) bool {
	switch err.Reason {
	case ProxyDNSFailed, ProxyUnreachable, ProxyTimeout:
		return true
	}
	return false
}

// choose is the proxy stage of a pac path: evaluate the PAC for the
// target, then try its entries in order. It returns the connection and
// the entry of the proxy that carried the probe (a tunnel; for a
// plain-HTTP target a connection for forwarded requests), or direct =
// true when the chain reached DIRECT (the direct stages then follow).
func (pp *pacProber) choose(ctx context.Context, info *PACInfo) (conn net.Conn, used *pacEntry, direct bool, err *Error) {
	script, ferr := pp.route.script(ctx)
	info.Source = pp.route.name()
	if script == nil {
		return nil, nil, false, fail(ProxyPACFailed, ferr)
	}
	if ferr != nil {
		info.FetchError = ferr.Error()
	}
	proxies, perr := script.FindProxy(ctx, pp.pacURL, pp.host)
	if perr != nil {
		return nil, nil, false, fail(ProxyPACFailed, fmt.Errorf("PAC %s: %w", script.Name(), perr))
	}
	parts := make([]string, len(proxies))
	for i, p := range proxies {
		parts[i] = p.String()
	}
	info.Answer = strings.Join(parts, "; ")
	var tried []string
	var last *Error
	for i, p := range proxies {
		if p.Kind == pac.Direct {
			info.Used, info.Fallback = p.String(), last != nil
			return nil, nil, true, nil
		}
		u := p.URL()
		if u == nil {
			tried = append(tried, fmt.Sprintf("%s: skipped, reachd speaks HTTP proxies only", p))
			continue
		}
		e := pp.entry(u)
		open := e.dialer.dial
		if e.forwarder != nil {
			open = e.dialer.connectForward
		}
		actx, cancel := shareOf(ctx, len(proxies)-i)
		c, derr := open(actx)
		cancel()
		if derr == nil {
			info.Used, info.Fallback = p.String(), last != nil
			return c, e, false, nil
		}
		tried = append(tried, fmt.Sprintf("%s: %s", p, derr.Reason))
		last = derr
		if !fallsOver(derr) || ctx.Err() != nil {
			break
		}
	}
	if last == nil { // only entries reachd cannot probe
		return nil, nil, false, fail(ProxyPACFailed, fmt.Errorf("PAC %s answered %q for %s: %s", script.Name(), info.Answer, pp.host, strings.Join(tried, "; ")))
	}
	if len(tried) > 1 {
		last = &Error{Stage: last.Stage, Reason: last.Reason, Err: fmt.Errorf("%w (PAC answer %q: %s)", last.Err, info.Answer, strings.Join(tried, "; "))}
	}
	return nil, nil, false, last
}

// WPADReport is what WPAD discovery found for a config.
type WPADReport struct {
	Resolver string        // the first resolver, which WPAD asks
	Domains  []string      // its search domains
	Found    string        // the URL of the PAC found; empty when none
	Attempts []pac.Attempt // every candidate tried, in order
}

// DiscoverWPAD looks for the PAC by WPAD as a wpad path does: the
// candidates of the first resolver's search domains, in order.
func DiscoverWPAD(ctx context.Context, cfg *configs.Config) (WPADReport, error) {
	first := cfg.Resolvers[0]
	res := newResolver(first)
	rep := WPADReport{Resolver: first.Name, Domains: first.Search}
	found, _, tried, err := pac.Discover(ctx, first.Search, res.addrs, pac.Env{Resolve: res.addrs, MyAddrs: myAddrs(res)})
	rep.Found, rep.Attempts = found, tried
	return rep, err
}
