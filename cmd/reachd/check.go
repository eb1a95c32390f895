package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

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
	results := runAll(probers, cfg.Defaults.Concurrency)
	logger.Debug("check done", "probes", len(results), "took", time.Since(started))

	switch o.format {
	case "json":
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(exporter.NewReport(cfg.Site, started, results)); err != nil {
			fmt.Fprintf(stderr, "reachd check: %v\n", err)
			return exitConfig
		}
	default:
		writeText(stdout, cfg.Site, started, results)
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
// returns the results in the probers' order.
func runAll(probers []*probe.Prober, concurrency int) []*probe.Result {
	results := make([]*probe.Result, len(probers))
	sem := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	for i, p := range probers {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			r := p.Probe(context.Background())
			results[i] = &r
		})
	}
	wg.Wait()
	return results
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
	fmt.Fprintf(&b, "[defaults]\ntimeout = %q\ninterval = %q\n", o.timeout, o.timeout)
	if o.resolver != "" {
		fmt.Fprintf(&b, "[[resolver]]\nname = \"cli\"\nservers = [%q]\n", o.resolver)
	}
	if o.proxy != "" {
		fmt.Fprintf(&b, "direct = false\n[[path]]\nname = \"proxy\"\nproxy = %q\n", o.proxy)
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
