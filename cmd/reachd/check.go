package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/version"

	"github.com/reachd/reachd/configs"
	"github.com/reachd/reachd/exporter"
	"github.com/reachd/reachd/probe"
)

type checkOptions struct {
	configFile, format           string
	target, vendor, region, path string
	host, proxy, proxyUser       string
	resolver, caFile             string
	timeout                      time.Duration
	wpad                         bool // look for the PAC by WPAD instead of probing
}

func check(o checkOptions, logger *slog.Logger, stdout, stderr io.Writer) int {
	cfg, err := checkConfig(o)
	if err != nil {
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
		fmt.Fprintln(stderr, "reachd check: no probe matches the filters (reachd targets lists the catalog)")
		return exitConfig
	}
	started := time.Now()
	prog := newProgress(stderr, len(probers))
	results := runAll(probers, cfg.Defaults.Concurrency, prog.done)
	prog.clear()
	logger.Debug("check done", "probes", len(results), "took", time.Since(started))

	switch o.format {
	case "json":
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(exporter.NewReport(cfg.Site, started, results)); err != nil {
			fmt.Fprintf(stderr, "reachd check: %v\n", err)
			return exitConfig
		}
	case "markdown":
		writeMarkdown(stdout, o.meta(cfg.Site, started), results)
	default:
		writeText(stdout, o.meta(cfg.Site, started), results, colorFor(stdout))
	}
	for _, r := range results {
		if !r.Success() {
			return exitFailed
		}
	}
	return exitOK
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

// meta is what the report says about this check besides the results.
func (o checkOptions) meta(site string, started time.Time) reportMeta {
	m := reportMeta{Site: site, Started: started, Version: version.Version, Config: cmp.Or(o.configFile, "the embedded default")}
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

// checkConfig loads the config file, or builds an ad hoc config for
// --host; ad hoc values go through the same validation as a file.
func checkConfig(o checkOptions) (*configs.Config, error) {
	if o.host == "" {
		if o.proxy != "" || o.resolver != "" || o.caFile != "" || o.proxyUser != "" {
			return nil, fmt.Errorf("--proxy, --proxy-user, --resolver and --ca-file go with --host")
		}
		return configs.Load(o.configFile, configs.Options{})
	}
	if o.configFile != "" {
		return nil, fmt.Errorf("--host and --config.file exclude each other")
	}
	host, port := o.host, "443"
	if h, p, err := net.SplitHostPort(o.host); err == nil {
		host, port = h, p
	}
	var b strings.Builder
	if o.proxy != "" {
		b.WriteString("direct = false\n") // a top-level key: before the first table
	}
	fmt.Fprintf(&b, "[defaults]\ntimeout = %q\ninterval = %q\n", o.timeout, o.timeout)
	if o.resolver != "" {
		fmt.Fprintf(&b, "[[resolver]]\nname = \"cli\"\nservers = [%q]\n", o.resolver)
	}
	if o.proxy != "" {
		fmt.Fprintf(&b, "[[path]]\nname = \"proxy\"\nproxy = %q\n", o.proxy)
		if o.proxyUser != "" {
			fmt.Fprintf(&b, "username = %q\npassword_env = \"REACHD_PROXY_PASSWORD\"\n", o.proxyUser)
		}
		if o.caFile != "" { // the proxy's inspection CA
			fmt.Fprintf(&b, "ca_file = %q\n", o.caFile)
		}
	} else if o.caFile != "" { // a private PKI the host legitimately uses
		fmt.Fprintf(&b, "[trust]\nca_files = [%q]\n", o.caFile)
	}
	fmt.Fprintf(&b, "[[target]]\nvendor = \"adhoc\"\nregion = \"cli\"\nname = \"host\"\nhost = %q\nport = %s\n", host, port)
	return configs.Parse("--host", []byte(b.String()), ".", configs.Options{})
}
