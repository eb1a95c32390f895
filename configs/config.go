// Package configs loads the daemon config (DESIGN §3): a strict TOML
// decode, then defaults, then validation that reports every problem at once
// with file:line and field. Everything the probers need — proxy passwords,
// CA certificates, resolver addresses, the selected catalog targets — is
// read and checked here, once per load, never on the probe path.
package configs

import (
	"crypto/x509"
	_ "embed"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/reachd/reachd/internal/tomlpos"
	"github.com/reachd/reachd/targets"
)

//go:embed default.toml
var defaultTOML []byte

// DefaultName is how the embedded default config is named in errors.
const DefaultName = "<embedded default.toml>"

// DirectPath is the name of the implicit path without a proxy.
const DirectPath = "direct"

// Built-in defaults, used where [defaults] leaves a value out.
var (
	DefaultInterval         = 60 * time.Second
	DefaultTimeout          = 10 * time.Second
	DefaultTLSMinVersion    = "1.2"
	DefaultTLSSweepInterval = time.Hour
	DefaultConcurrency      = 32
	// DefaultTraceInterval bounds how often one probe traces its path
	// (DESIGN §5); MinTraceInterval is the least a config may set.
	DefaultTraceInterval = 10 * time.Minute
	MinTraceInterval     = time.Minute
)

// MaxTLSSweepInterval bounds tls_sweep_interval.
const MaxTLSSweepInterval = 30 * 24 * time.Hour

// Config is a loaded, validated daemon config.
type Config struct {
	File      string // where it came from (DefaultName for the embedded one)
	Site      string
	Defaults  Defaults
	Resolvers []Resolver // at least one; dialing uses the first
	Paths     []Path     // direct first when enabled
	Trust     Trust
	Metrics   Metrics
	// Warnings are problems that do not stop the load (a password file
	// that others can read), each with file:line; callers log them.
	Warnings []string
	// Targets are the catalog targets picked by [[use]] followed by the
	// local [[target]]s, with daemon defaults applied: Interval, Timeout
	// and TLSMinVersion are set and Paths lists the paths to probe over.
	Targets []targets.Target
	// Files are the catalog files [[use]] picked, in [[use]] order: where
	// their targets come from (source) and when that was checked.
	Files []*targets.File
}

// CatalogFile returns the catalog file a target of the config comes from; nil
// for a local [[target]].
func (c *Config) CatalogFile(t targets.Target) *targets.File {
	for _, f := range c.Files {
		if f.Vendor == t.Vendor && f.Region == t.Region {
			return f
		}
	}
	return nil
}

// Metrics is the [metrics] table: what /metrics exports beyond the
// default series budget (DESIGN §7).
type Metrics struct {
	// StageHistograms exports reachd_probe_stage_duration_seconds, a
	// histogram per probe and stage: 13 series a stage, three quarters of a
	// scrape when on.
	StageHistograms bool
}

// Defaults is the [defaults] table after validation.
type Defaults struct {
	Interval         time.Duration
	Timeout          time.Duration
	TLSMinVersion    uint16
	TLSSweepInterval time.Duration
	Concurrency      int
	// TraceInterval is the least time between two path traces of one
	// probe; 0 turns the path trace off.
	TraceInterval time.Duration
}

// Resolver is a named set of DNS servers tried in turn.
type Resolver struct {
	Name     string
	Servers  []string // host:port
	Protocol string   // "udp" (falls back to tcp on truncation) or "tcp"
	// System is set for a resolver without servers: it stands for the
	// host's own resolution, so it asks the hosts file first and applies
	// resolv.conf's search list and ndots to names, as the OS does.
	System    bool
	HostsFile string // System only: the hosts file (Options.HostsFile)
	// Search are the search domains: the resolver's search key, or else,
	// for a System resolver, resolv.conf's search line. A System resolver
	// applies them to names; WPAD looks for wpad.<domain> in those of the
	// first resolver.
	Search []string
	Ndots  int // System only: resolv.conf's ndots (default 1)
}

// Path is a way out of the site: direct, or through a proxy.
type Path struct {
	Name string
	// Proxy is the explicit proxy; nil for direct and environment paths.
	// It never carries credentials: they are in Username and Password.
	Proxy *url.URL
	// Environment paths pick a proxy per target from HTTPS_PROXY,
	// HTTP_PROXY and NO_PROXY as they were when the config was loaded.
	Environment bool
	ProxyEnv    ProxyEnv
	Username    string
	Password    string // secret: never log, print or label it
	CAFile      string
	CACerts     []*x509.Certificate // the inspection CA: extra trust on this path
	// PAC, for proxy = "pac" or "wpad", is where the PAC file that picks
	// the proxy per target comes from; nil for other paths.
	PAC *PACSource
	// Auth is how the path authenticates to its proxy: AuthBasic (the
	// default with a username), AuthNTLM or AuthNegotiate; "" for none.
	Auth string
	// Negotiate's key material: a keytab with the principal to log in as,
	// or a credential cache (or username and password); krb5_conf names
	// the realm's KDCs ("" is /etc/krb5.conf). Paths, read when used.
	Keytab, Principal, Krb5Conf, CCache string
}

// The proxy authentication schemes of a path.
const (
	AuthBasic     = "basic"
	AuthNTLM      = "ntlm"
	AuthNegotiate = "negotiate"
)

// ProxyEnv is the proxy environment an environment path decides with.
type ProxyEnv struct {
	HTTPSProxy, HTTPProxy, NoProxy string
}

// Direct reports whether the path connects without a proxy.
func (p Path) Direct() bool { return p.Proxy == nil && !p.Environment && p.PAC == nil }

// Trust is the [trust] table: roots legitimate for the targets.
type Trust struct {
	CAFiles []string
	CACerts []*x509.Certificate
}

// Options are the load's view of its host; zero values use the real one.
type Options struct {
	ResolvConf string                                     // default /etc/resolv.conf
	HostsFile  string                                     // default /etc/hosts
	LookupEnv  func(key string) (string, bool)            // default os.LookupEnv
	Catalog    func(dir string) (*targets.Catalog, error) // default targets.Load
	// FileTimeout bounds the read of each file the config names
	// (password and CA files): a hung mount or a FIFO fails the load
	// instead of blocking it. Default DefaultFileTimeout.
	FileTimeout time.Duration
	// SkipSecrets leaves password_file and password_env unread: for
	// listing what a config probes (reachd targets) where its secrets
	// are not readable.
	SkipSecrets bool
}

// DefaultFileTimeout is how long a load waits for one file it names.
const DefaultFileTimeout = 5 * time.Second

func (o Options) withDefaults() Options {
	if o.ResolvConf == "" {
		o.ResolvConf = "/etc/resolv.conf"
	}
	if o.HostsFile == "" {
		o.HostsFile = "/etc/hosts"
	}
	if o.LookupEnv == nil {
		o.LookupEnv = os.LookupEnv
	}
	if o.Catalog == nil {
		o.Catalog = targets.Load
	}
	if o.FileTimeout <= 0 {
		o.FileTimeout = DefaultFileTimeout
	}
	return o
}

// Load reads and validates the config file; an empty file name loads the
// embedded default config.
func Load(file string, opts Options) (*Config, error) {
	if file == "" {
		return Parse(DefaultName, defaultTOML, "", opts)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return Parse(file, data, filepath.Dir(file), opts)
}

// Parse validates a config read from name; relative file names in it are
// taken relative to dir.
func Parse(name string, data []byte, dir string, opts Options) (*Config, error) {
	opts = opts.withDefaults()
	var s spec
	ix, err := tomlpos.Decode(name, data, &s)
	if ix == nil {
		return nil, err
	}
	l := &loader{name: name, dir: dir, ix: ix, opts: opts, errs: []error{err}}
	cfg := l.build(&s)
	if err := targets.JoinSorted(l.errs...); err != nil {
		return nil, err
	}
	return cfg, nil
}

// loader collects every problem of one load.
type loader struct {
	name string
	dir  string
	ix   *tomlpos.Index
	opts Options
	errs []error
	warn []string
	// search are the first resolver's search domains, for wpad paths.
	search []string
}

// bad records a problem at a key path ("path.1.password_file").
func (l *loader) bad(key, field, format string, args ...any) {
	l.errs = append(l.errs, fmt.Errorf("%s: %s: %s", l.ix.At(l.name, key), field, fmt.Sprintf(format, args...)))
}

func (l *loader) file(p string) string {
	if p == "" || filepath.IsAbs(p) || l.dir == "" {
		return p
	}
	return filepath.Join(l.dir, p)
}

func (l *loader) build(s *spec) *Config {
	cfg := &Config{File: l.name, Site: s.Site}
	if cfg.Site == "" {
		cfg.Site, _ = os.Hostname()
	}
	cfg.Defaults = l.defaults(s.Defaults)
	cfg.Resolvers = l.resolvers(s.Resolver)
	cfg.Paths = l.paths(s)
	cfg.Trust = Trust{CAFiles: s.Trust.CAFiles}
	cfg.Metrics = Metrics{StageHistograms: s.Metrics.StageHistograms}
	for i, f := range s.Trust.CAFiles {
		certs, err := l.readCerts(l.file(f))
		if err != nil {
			l.bad(fmt.Sprintf("trust.ca_files.%d", i), "trust.ca_files", "%v", err)
		}
		cfg.Trust.CACerts = append(cfg.Trust.CACerts, certs...)
	}
	cfg.Targets = l.targets(s, cfg)
	cfg.Warnings = l.warn
	return cfg
}

func (l *loader) defaults(d defaultsSpec) Defaults {
	out := Defaults{Interval: DefaultInterval, Timeout: DefaultTimeout, TLSSweepInterval: DefaultTLSSweepInterval, Concurrency: DefaultConcurrency, TraceInterval: DefaultTraceInterval}
	duration := func(key, v string, into *time.Duration, lo, hi time.Duration) {
		if d, err := targets.ParseBounded(v, lo, hi); err != nil {
			l.bad("defaults."+key, "defaults."+key, "%v", err)
		} else if d > 0 {
			*into = d
		}
	}
	duration("interval", d.Interval, &out.Interval, targets.MinInterval, targets.MaxInterval)
	duration("timeout", d.Timeout, &out.Timeout, targets.MinTimeout, targets.MaxInterval)
	duration("tls_sweep_interval", d.TLSSweepInterval, &out.TLSSweepInterval, targets.MinInterval, MaxTLSSweepInterval)
	l.traceInterval(d.TraceInterval, &out.TraceInterval)
	v, err := targets.ParseTLSVersion(cmpOr(d.TLSMinVersion, DefaultTLSMinVersion))
	if err != nil {
		l.bad("defaults.tls_min_version", "defaults.tls_min_version", "%v", err)
	}
	out.TLSMinVersion = v
	if out.Timeout > out.Interval {
		l.bad("defaults.timeout", "defaults.timeout", "%s is longer than the interval %s", out.Timeout, out.Interval)
	}
	if d.Concurrency != nil {
		if *d.Concurrency < 1 {
			l.bad("defaults.concurrency", "defaults.concurrency", "%d must be at least 1", *d.Concurrency)
		} else {
			out.Concurrency = *d.Concurrency
		}
	}
	return out
}

// traceInterval reads defaults.trace_interval: "0" turns the path trace
// off; anything else is MinTraceInterval to MaxTLSSweepInterval.
func (l *loader) traceInterval(v string, into *time.Duration) {
	if v == "0" {
		*into = 0
		return
	}
	if d, err := targets.ParseBounded(v, MinTraceInterval, MaxTLSSweepInterval); err != nil {
		l.bad("defaults.trace_interval", "defaults.trace_interval", "%v (or \"0\" for no path trace)", err)
	} else if d > 0 {
		*into = d
	}
}

func (l *loader) resolvers(specs []resolverSpec) []Resolver {
	if len(specs) == 0 {
		specs = []resolverSpec{{Name: "system"}}
	}
	var out []Resolver
	seen := map[string]bool{}
	for i, r := range specs {
		key := fmt.Sprintf("resolver.%d", i)
		switch {
		case r.Name == "":
			l.bad(key, "resolver.name", "missing")
		case seen[r.Name]:
			l.bad(key+".name", "resolver.name", "%q is defined twice", r.Name)
		}
		seen[r.Name] = true
		res := Resolver{Name: r.Name, Protocol: cmpOr(r.Protocol, "udp")}
		if res.Protocol != "udp" && res.Protocol != "tcp" {
			l.bad(key+".protocol", "resolver.protocol", "%q must be udp or tcp", r.Protocol)
		}
		if r.Servers != nil && len(r.Servers) == 0 {
			l.bad(key+".servers", "resolver.servers", "empty: list IP[:port] servers, or leave servers out for %s", l.opts.ResolvConf)
		} else if len(r.Servers) == 0 {
			cc, servers, err := systemServers(l.opts.ResolvConf)
			if err != nil {
				l.bad(key, "resolver.servers", "none given and %v", err)
			}
			res.Servers = servers
			res.System, res.HostsFile = true, l.opts.HostsFile
			if cc != nil {
				res.Search, res.Ndots = cc.Search, cc.Ndots
			}
		}
		if r.Search != nil {
			res.Search = r.Search
		}
		for j, srv := range r.Servers {
			addr, err := serverAddr(srv)
			if err != nil {
				l.bad(fmt.Sprintf("%s.servers.%d", key, j), "resolver.servers", "%v", err)
			}
			res.Servers = append(res.Servers, addr)
		}
		out = append(out, res)
	}
	if len(out) > 0 {
		l.search = out[0].Search
	}
	return out
}

func (l *loader) targets(s *spec, cfg *Config) []targets.Target {
	pathNames := make([]string, len(cfg.Paths))
	for i, p := range cfg.Paths {
		pathNames[i] = p.Name
	}
	checkPaths := func(key string, paths []string) []string {
		if paths == nil {
			return pathNames
		}
		if len(paths) == 0 {
			l.bad(key, "paths", "empty: the target would never be probed (leave paths out for every path)")
		}
		for _, p := range paths {
			if !slices.Contains(pathNames, p) {
				l.bad(key, "paths", "unknown path %q (defined: %s)", p, strings.Join(pathNames, ", "))
			}
		}
		return paths
	}

	var out []targets.Target
	seen := map[string]string{} // target ID -> where it was defined
	add := func(t targets.Target, key string) {
		if where, dup := seen[t.ID()]; dup {
			l.errs = append(l.errs, fmt.Errorf("%s: target %q: duplicate target %s (first defined at %s)", l.ix.At(l.name, key), t.Name, t.ID(), where))
			return
		}
		seen[t.ID()] = t.Pos
		if t.Interval == 0 {
			t.Interval = cfg.Defaults.Interval
		}
		if t.Timeout == 0 {
			t.Timeout = min(cfg.Defaults.Timeout, t.Interval)
		}
		if t.TLSMinVersion == 0 {
			t.TLSMinVersion = cfg.Defaults.TLSMinVersion
		}
		// A timeout of its own may outlast the interval it inherits.
		if t.Timeout > t.Interval {
			l.errs = append(l.errs, fmt.Errorf("%s: target %q: timeout: %s is longer than the interval %s", l.ix.At(l.name, key+".timeout"), t.Name, t.Timeout, t.Interval))
			return
		}
		out = append(out, t)
	}

	if len(s.Use) > 0 {
		dir := l.file(s.CatalogDir)
		if dir != "" {
			// The catalog names its own files in its errors; a missing
			// directory is this file's problem, at this line.
			if _, err := os.Stat(dir); err != nil {
				l.bad("catalog_dir", "catalog_dir", "%v", err)
				return nil
			}
		}
		cat, err := l.opts.Catalog(dir)
		if err != nil {
			l.errs = append(l.errs, err)
			return nil
		}
		used := map[string]bool{}
		for i, u := range s.Use {
			key := fmt.Sprintf("use.%d", i)
			f := cat.File(u.Vendor, u.Region)
			switch {
			case u.Vendor == "":
				l.bad(key, "use.vendor", "missing (catalog: %s)", cat.Vendors())
				continue
			case u.Region == "" && len(cat.Regions(u.Vendor)) > 0:
				l.bad(key, "use.region", "missing (vendor %q has: %s)", u.Vendor, strings.Join(cat.Regions(u.Vendor), ", "))
				continue
			case f == nil && len(cat.Regions(u.Vendor)) == 0:
				l.bad(key+".vendor", "use.vendor", "unknown vendor %q (catalog: %s)", u.Vendor, cat.Vendors())
				continue
			case f == nil:
				l.bad(key+".region", "use.region", "vendor %q has no region %q (it has: %s)", u.Vendor, u.Region, strings.Join(cat.Regions(u.Vendor), ", "))
				continue
			case used[u.Vendor+"/"+u.Region]:
				l.bad(key, "use", "%s/%s is used twice", u.Vendor, u.Region)
				continue
			}
			used[u.Vendor+"/"+u.Region] = true
			cfg.Files = append(cfg.Files, f)
			paths := checkPaths(key+".paths", u.Paths)
			for _, t := range f.Targets {
				if t.Paths == nil {
					t.Paths = paths
				} else {
					// A catalog file may name paths; this config must define them.
					for _, p := range t.Paths {
						if !slices.Contains(pathNames, p) {
							l.bad(key, "use", "target %q (%s) names path %q, which this config does not define (defined: %s)", t.Name, t.Pos, p, strings.Join(pathNames, ", "))
						}
					}
					if len(t.Paths) == 0 {
						l.bad(key, "use", "target %q (%s) has paths = []: it would never be probed", t.Name, t.Pos)
					}
				}
				add(t, key)
			}
		}
	}

	for i, ts := range s.Target {
		key := targets.FieldPath("target", i, "")
		at := func(field string) string { return l.ix.At(l.name, targets.FieldPath("target", i, field)) }
		t, errs := ts.Resolve(targets.Defaults{}, cmpOr(ts.Vendor, "local"), cmpOr(ts.Region, "local"), at)
		if ts.Vendor != "" {
			if err := targets.ValidVendor(ts.Vendor); err != nil {
				errs = append(errs, fmt.Errorf("%s: target %q: vendor: %v", at("vendor"), ts.Name, err))
			}
		}
		if ts.Region != "" {
			if err := targets.ValidRegion(ts.Region); err != nil {
				errs = append(errs, fmt.Errorf("%s: target %q: region: %v", at("region"), ts.Name, err))
			}
		}
		l.errs = append(l.errs, errs...)
		if len(errs) > 0 {
			continue
		}
		t.Paths = checkPaths(key+".paths", t.Paths)
		add(t, key)
	}
	return out
}

func cmpOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
