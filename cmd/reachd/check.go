package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/version"

	"github.com/reachd/reachd/configs"
	"github.com/reachd/reachd/exporter"
	"github.com/reachd/reachd/probe"
	"github.com/reachd/reachd/targets"
)

type checkOptions struct {
	configFile, format           string
	target, vendor, region, path string
	host, proxy, proxyUser       string
	resolver, caFile             string
	timeout                      time.Duration
	wpad                         bool // look for the PAC by WPAD instead of probing
	failed                       bool
}

func check(o checkOptions, logger *slog.Logger, stdout, stderr io.Writer) int {
	cfg, err := checkConfig(o)
	if err != nil {
		fmt.Fprintf(stderr, "reachd check: %v\n", err)
		return exitConfig
	}
	if err := o.checkFilters(cfg); err != nil {
		fmt.Fprintf(stderr, "reachd check: %v\n", err)
		return exitConfig
	}
	var probers []*probe.Prober
	for _, p := range probe.Build(cfg, userAgent()) {
		if o.matches(p) {
			probers = append(probers, p)
		}
	}
	if len(probers) == 0 {
		fmt.Fprintln(stderr, "reachd check: no probe matches the filters together (reachd targets --config.file lists what the config probes)")
		return exitConfig
	}
	m := o.meta(cfg.Site, started(), cfg)
	prog := newProgress(stderr, len(probers))
	results := runAll(probers, cfg.Defaults.Concurrency, prog.done)
	prog.clear()
	logger.Debug("check done", "probes", len(results), "took", time.Since(m.Started))

	switch o.format {
	case "json":
		for _, w := range cfg.Warnings {
			fmt.Fprintf(stderr, "warning: %s\n", w)
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(exporter.NewReport(cfg.Site, m.Started, m.shown(results))); err != nil {
			fmt.Fprintf(stderr, "reachd check: %v\n", err)
			return exitConfig
		}
	case "markdown":
		writeMarkdown(stdout, m, results)
	case "chat":
		m.Emoji = true
		writeMarkdown(stdout, m, results)
	default:
		writeText(stdout, m, results, colorFor(stdout))
	}
	for _, r := range results {
		if !r.Success() {
			return exitFailed
		}
	}
	return exitOK
}

// started is when a check starts; tests fix it.
var started = time.Now

// checkFilters says which filter names nothing the config has, and what
// it has instead.
func (o checkOptions) checkFilters(cfg *configs.Config) error {
	var paths, vendors, regions, names []string
	for _, p := range cfg.Paths {
		paths = append(paths, p.Name)
	}
	for _, t := range cfg.Targets {
		for _, l := range []struct {
			list *[]string
			v    string
		}{{&vendors, t.Vendor}, {&regions, t.Region}, {&names, t.Name}} {
			if !slices.Contains(*l.list, l.v) {
				*l.list = append(*l.list, l.v)
			}
		}
	}
	switch {
	case o.path != "" && !slices.Contains(paths, o.path):
		return fmt.Errorf("--path %s: no such path (configured paths: %s)", o.path, strings.Join(paths, ", "))
	case o.vendor != "" && !slices.Contains(vendors, o.vendor):
		return fmt.Errorf("--vendor %s: the config probes no target of this vendor (configured vendors: %s)", o.vendor, orNone(strings.Join(vendors, ", ")))
	case o.region != "" && !slices.Contains(regions, o.region):
		return fmt.Errorf("--region %s: the config probes no target in this region (configured regions: %s)", o.region, orNone(strings.Join(regions, ", ")))
	case o.target != "" && !strings.Contains(o.target, "/") && !slices.Contains(names, o.target):
		return fmt.Errorf("--target %s: no configured target has this name (reachd targets --config.file lists them)", o.target)
	}
	return nil
}

func (o checkOptions) matches(p *probe.Prober) bool {
	t := p.Target()
	return (o.target == "" || o.target == t.Name || o.target == t.ID()) &&
		(o.vendor == "" || o.vendor == t.Vendor) &&
		(o.region == "" || o.region == t.Region) &&
		(o.path == "" || o.path == p.Path())
}

// runAll probes each prober once, at most concurrency at a time, and
// returns the results in the probers' order; done is called after each.
func runAll(probers []*probe.Prober, concurrency int, done func()) []*probe.Result {
	results := make([]*probe.Result, len(probers))
	sem := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	for i, p := range probers {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			r := p.Probe(context.Background())
			results[i] = &r
			done()
		})
	}
	wg.Wait()
	return results
}

// progress shows "probing 12/40 …" on a terminal while probes run,
// rewritten in place and cleared at the end; elsewhere it writes nothing.
type progress struct {
	mu       sync.Mutex
	w        io.Writer // nil: not a terminal
	n, total int
}

func newProgress(w io.Writer, total int) *progress {
	p := &progress{total: total}
	if isTerminal(w) {
		p.w = w
		p.show()
	}
	return p
}

func (p *progress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	p.show()
}

func (p *progress) show() {
	if p.w != nil {
		fmt.Fprintf(p.w, "\rprobing %d/%d …", p.n, p.total)
	}
}

// clear erases the line, so the report starts on a clean one.
func (p *progress) clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.w != nil {
		fmt.Fprint(p.w, "\r\x1b[K")
	}
}

// meta is what the report says about this check besides the results;
// cfg (nil in some tests) adds the paths, resolvers and warnings.
func (o checkOptions) meta(site string, started time.Time, cfgs ...*configs.Config) reportMeta {
	m := reportMeta{Site: site, Started: started, Version: version.Version, Config: cmp.Or(o.configFile, "the embedded default"), FailedOnly: o.failed}
	for _, cfg := range cfgs {
		for _, p := range cfg.Paths {
			m.Paths = append(m.Paths, describePath(p))
		}
		for _, r := range cfg.Resolvers {
			m.Resolvers = append(m.Resolvers, fmt.Sprintf("%s: %s (%s)", r.Name, strings.Join(r.Servers, ", "), r.Protocol))
		}
		m.Warnings = cfg.Warnings
	}
	if version.Revision != "" {
		m.Version += " (revision " + version.Revision[:min(len(version.Revision), 12)] + ", " + runtime.Version() + ")"
	} else {
		m.Version += " (" + runtime.Version() + ")"
	}
	var flags []string
	add := func(name, value string) {
		if value != "" {
			flags = append(flags, "--"+name+" "+value)
		}
	}
	add("target", o.target)
	add("vendor", o.vendor)
	add("region", o.region)
	add("path", o.path)
	if o.failed {
		flags = append(flags, "--failed")
	}
	if o.host != "" {
		m.Config = "none: an ad hoc check"
		add("host", o.host)
		if u, err := url.Parse(o.proxy); err == nil {
			add("proxy", u.Redacted())
		}
		add("proxy-user", o.proxyUser)
		add("resolver", o.resolver)
		add("ca-file", o.caFile)
	}
	m.Filters = strings.Join(flags, " ")
	return m
}

// describePath says which proxy a path uses and how it was chosen.
func describePath(p configs.Path) pathInfo {
	switch {
	case p.Environment:
		e := p.ProxyEnv
		if e.HTTPSProxy == "" && e.HTTPProxy == "" {
			return pathInfo{p.Name, "none", "proxy = \"environment\", but no proxy variable was set: direct"}
		}
		how := "HTTPS_PROXY from the environment at load"
		if e.HTTPProxy != "" {
			how += "; plain HTTP: HTTP_PROXY " + redactURL(e.HTTPProxy)
		}
		if e.NoProxy != "" {
			how += "; NO_PROXY " + e.NoProxy
		}
		return pathInfo{p.Name, cmp.Or(redactURL(e.HTTPSProxy), "none"), how}
	case p.Proxy != nil:
		how := "configured"
		if p.Username != "" {
			how += ", authenticating as " + p.Username
		}
		if p.CAFile != "" {
			how += ", inspection CA " + p.CAFile
		}
		return pathInfo{p.Name, p.Proxy.Redacted(), how}
	}
	return pathInfo{p.Name, "none", "direct"}
}

// redactURL hides the password of a proxy URL taken from the environment.
func redactURL(s string) string {
	if s == "" {
		return ""
	}
	if u, err := url.Parse(s); err == nil && u.Host != "" {
		return u.Redacted()
	}
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		return "xxxxx@" + s[i+1:]
	}
	return s
}

// checkConfig loads the config file, or builds an ad hoc config for
// --host; ad hoc values go through the same validation as a file, and
// its problems are told in terms of the flags that caused them.
func checkConfig(o checkOptions) (*configs.Config, error) {
	if o.host == "" {
		if o.proxy != "" || o.resolver != "" || o.caFile != "" || o.proxyUser != "" {
			return nil, fmt.Errorf("--proxy, --proxy-user, --resolver and --ca-file go with --host")
		}
		return configs.Load(o.configFile, configs.Options{})
	}
	switch {
	case o.configFile != "":
		return nil, fmt.Errorf("--host and --config.file exclude each other: --host probes one host without a config")
	case o.vendor != "" || o.region != "" || o.target != "" || o.path != "":
		var given []string
		for _, f := range []struct{ name, v string }{{"--vendor", o.vendor}, {"--region", o.region}, {"--target", o.target}, {"--path", o.path}} {
			if f.v != "" {
				given = append(given, f.name)
			}
		}
		return nil, fmt.Errorf("%s filter the targets of a config; with --host there is just the host (use --proxy to go through a proxy)", strings.Join(given, ", "))
	}
	host, port, scheme, reqPath, err := parseHostFlag(o.host)
	if err != nil {
		return nil, err
	}
	var b adhocConfig
	if o.proxy != "" {
		b.line("", "direct = false") // a top-level key: before the first table
	}
	b.line("", "[defaults]")
	b.line("--timeout", fmt.Sprintf("timeout = %q", o.timeout))
	b.line("--timeout", fmt.Sprintf("interval = %q", max(o.timeout, time.Second)))
	if o.resolver != "" {
		b.line("", "[[resolver]]\nname = \"cli\"")
		b.line("--resolver", fmt.Sprintf("servers = [%q]", o.resolver))
	}
	if o.proxy != "" {
		b.line("", "[[path]]\nname = \"proxy\"")
		b.line("--proxy", fmt.Sprintf("proxy = %q", o.proxy))
		if o.proxyUser != "" {
			b.line("--proxy-user", fmt.Sprintf("username = %q", o.proxyUser))
			b.line("--proxy-user", "password_env = \"REACHD_PROXY_PASSWORD\"")
		}
		if o.caFile != "" { // the proxy's inspection CA
			b.line("--ca-file", fmt.Sprintf("ca_file = %q", o.caFile))
		}
	} else if o.caFile != "" { // a private PKI the host legitimately uses
		b.line("", "[trust]")
		b.line("--ca-file", fmt.Sprintf("ca_files = [%q]", o.caFile))
	}
	b.line("--host", "[[target]]\nvendor = \"adhoc\"\nregion = \"cli\"\nname = \"host\"")
	b.line("--host", fmt.Sprintf("host = %q", host))
	b.line("--host", "port = "+port)
	if scheme == "http" {
		b.line("--host", `checks = ["dns", "tcp", "http"]`)
	}
	if reqPath != "" {
		b.line("--host", fmt.Sprintf("http = { path = %q }", reqPath))
	}
	cfg, err := configs.Parse("--host", []byte(b.String()), ".", configs.Options{})
	if err != nil {
		return nil, b.inFlags(err)
	}
	return cfg, nil
}

// parseHostFlag reads --host: HOST, HOST:PORT, [V6]:PORT, or a URL whose
// scheme (https, or http for a plain-HTTP host) and path are taken.
func parseHostFlag(v string) (host, port, scheme, path string, err error) {
	scheme, port = "https", "443"
	hostport := v
	if strings.Contains(v, "://") {
		u, perr := url.Parse(v)
		switch {
		case perr != nil || u.Host == "":
			return "", "", "", "", fmt.Errorf("--host %s: not a URL such as https://host/path", v)
		case u.Scheme != "https" && u.Scheme != "http":
			return "", "", "", "", fmt.Errorf("--host %s: scheme %q: reachd probes https:// and http:// URLs", v, u.Scheme)
		case u.User != nil:
			return "", "", "", "", fmt.Errorf("--host: a URL with credentials; reachd needs none to test reachability")
		}
		scheme = u.Scheme
		if scheme == "http" {
			port = "80"
		}
		hostport = u.Host
		if p := u.RequestURI(); p != "/" {
			path = p
		}
	}
	host = hostport
	if h, p, serr := net.SplitHostPort(hostport); serr == nil {
		host, port = h, p
	} else {
		host = strings.Trim(hostport, "[]")
	}
	if n, aerr := strconv.Atoi(port); aerr != nil || n < 1 || n > 65535 {
		return "", "", "", "", fmt.Errorf("--host %s: port %q out of range 1-65535", v, port)
	}
	if err := targets.ValidHost(host); err != nil {
		return "", "", "", "", fmt.Errorf("--host %s: %v", v, err)
	}
	return host, port, scheme, path, nil
}

// adhocConfig is the config --host stands for, remembering which flag
// wrote each line so that its problems name the flag.
type adhocConfig struct {
	b     strings.Builder
	flags []string // by line - 1
}

func (a *adhocConfig) line(flag, text string) {
	for _, l := range strings.Split(text, "\n") {
		a.b.WriteString(l + "\n")
		a.flags = append(a.flags, flag)
	}
}

func (a *adhocConfig) String() string { return a.b.String() }

// fieldPrefix is what the loader puts before a message: `target "host": `
// and a field name such as `path.proxy: `.
var fieldPrefix = regexp.MustCompile(`^(target "host": )?([a-z_.]+: )?`)

// inFlags rewrites "--host:12: path.proxy: msg" into "--proxy: msg".
func (a *adhocConfig) inFlags(err error) error {
	var out []string
	for _, l := range strings.Split(err.Error(), "\n") {
		rest, ok := strings.CutPrefix(l, "--host:")
		if !ok {
			out = append(out, l)
			continue
		}
		num, msg, _ := strings.Cut(rest, ": ")
		flag := "--host"
		if n, err := strconv.Atoi(num); err == nil && n >= 1 && n <= len(a.flags) && a.flags[n-1] != "" {
			flag = a.flags[n-1]
		}
		out = append(out, flag+": "+fieldPrefix.ReplaceAllString(msg, ""))
	}
	return errors.New(strings.Join(out, "\n"))
}
