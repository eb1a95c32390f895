package main

import (
	"cmp"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/net/http/httpproxy"

	"github.com/reachd/reachd/configs"
	"github.com/reachd/reachd/targets"
)

type validateOptions struct {
	configFile, catalogDir string
}

// validate loads everything a run would load and prints every problem.
func validate(o validateOptions, stdout, stderr io.Writer) int {
	if o.catalogDir != "" {
		cat, err := targets.Load(o.catalogDir)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return exitConfig
		}
		files, n := 0, 0
		for _, f := range cat.Files() {
			if strings.HasPrefix(f.Path, filepath.Clean(o.catalogDir)+string(filepath.Separator)) {
				files++
				n += len(f.Targets)
			}
		}
		fmt.Fprintf(stdout, "%s: valid: %d target files, %d targets\n", o.catalogDir, files, n)
	}
	cfg, err := configs.Load(o.configFile, configs.Options{})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitConfig
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	fmt.Fprintf(stdout, "%s: valid: site %q, %d targets, %d paths, %d resolvers\n", cfg.File, cfg.Site, len(cfg.Targets), len(cfg.Paths), len(cfg.Resolvers))
	return exitOK
}

type targetsOptions struct {
	vendor, region, format, catalogDir, configFile string
}

// targetRow is one line of `reachd targets`: with a config, one target
// over one path, the allow-list entry a firewall or proxy team needs;
// without, one catalog target.
type targetRow struct {
	Vendor  string   `json:"vendor"`
	Region  string   `json:"region"`
	Name    string   `json:"name"`
	Host    string   `json:"host"`
	Port    int      `json:"port"`
	Scheme  string   `json:"scheme"` // https, http, tcp or dns: what crosses the firewall
	Path    string   `json:"path,omitempty"`
	Proxy   string   `json:"proxy,omitempty"` // host:port the path connects to; "" for direct
	Checks  []string `json:"checks"`
	Purpose string   `json:"purpose"`
	Source  string   `json:"source"`
	Checked string   `json:"checked"` // YYYY-MM-DD; "" for a local target
	File    string   `json:"file"`
}

// scheme is what a target's traffic is, to a firewall.
func scheme(t targets.Target) string {
	switch {
	case t.Has(targets.CheckTLS):
		return "https"
	case t.Has(targets.CheckHTTP):
		return "http"
	case t.Has(targets.CheckTCP):
		return "tcp"
	}
	return "dns"
}

func fileRow(t targets.Target, f *targets.File) targetRow {
	r := targetRow{Vendor: t.Vendor, Region: t.Region, Name: t.Name, Host: t.Host, Port: t.Port, Scheme: scheme(t), Checks: t.Checks, Purpose: t.Purpose}
	if f != nil {
		r.Source, r.File = f.Source, f.Path
		if !f.Checked.IsZero() {
			r.Checked = f.Checked.Format(time.DateOnly)
		}
	}
	return r
}

// proxyOf is the proxy address a target uses on a path, "" for direct;
// an environment path decides per target as the probe does.
func proxyOf(t targets.Target, p configs.Path) string {
	if p.Proxy != nil {
		return p.Proxy.Host
	}
	if !p.Environment {
		return ""
	}
	env := httpproxy.Config{HTTPSProxy: p.ProxyEnv.HTTPSProxy, HTTPProxy: p.ProxyEnv.HTTPProxy, NoProxy: p.ProxyEnv.NoProxy}
	sch := "https"
	if !t.Has(targets.CheckTLS) {
		sch = "http"
	}
	u, err := env.ProxyFunc()(&url.URL{Scheme: sch, Host: t.Address()})
	if err != nil || u == nil {
		return ""
	}
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		return net.JoinHostPort(u.Hostname(), port)
	}
	return u.Host
}

func listTargets(o targetsOptions, stdout, stderr io.Writer) int {
	var rows []targetRow
	var regions func(vendor string) []string
	var vendors string
	if o.configFile != "" {
		if o.catalogDir != "" {
			fmt.Fprintln(stderr, "reachd targets: --catalog.dir goes without --config.file: the config names its own catalog_dir")
			return exitConfig
		}
		cfg, err := configs.Load(o.configFile, configs.Options{SkipSecrets: true})
		if err != nil {
			fmt.Fprintln(stderr, err)
			return exitConfig
		}
		paths := map[string]configs.Path{}
		for _, p := range cfg.Paths {
			paths[p.Name] = p
		}
		var vs []string
		regions = func(vendor string) []string {
			var out []string
			for _, t := range cfg.Targets {
				if t.Vendor == vendor && !slices.Contains(out, t.Region) {
					out = append(out, t.Region)
				}
			}
			return out
		}
		for _, t := range cfg.Targets {
			if !slices.Contains(vs, t.Vendor) {
				vs = append(vs, t.Vendor)
			}
			f := cfg.CatalogFile(t)
			for _, name := range t.Paths {
				r := fileRow(t, f)
				if f == nil {
					r.Source, r.File = "local [[target]] in "+cfg.File, t.Pos
				}
				r.Path, r.Proxy = name, proxyOf(t, paths[name])
				rows = append(rows, r)
			}
		}
		vendors = strings.Join(vs, ", ")
	} else {
		cat, err := targets.Load(o.catalogDir)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return exitConfig
		}
		regions, vendors = cat.Regions, cat.Vendors()
		for _, f := range cat.Files() {
			for _, t := range f.Targets {
				rows = append(rows, fileRow(t, f))
			}
		}
	}
	var out []targetRow
	for _, r := range rows {
		if (o.vendor == "" || r.Vendor == o.vendor) && (o.region == "" || strings.EqualFold(r.Region, o.region)) {
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		switch {
		case o.vendor != "" && len(regions(o.vendor)) == 0:
			fmt.Fprintf(stderr, "reachd targets: no vendor %q (vendors: %s)\n", o.vendor, orNone(vendors))
		case o.vendor != "":
			fmt.Fprintf(stderr, "reachd targets: vendor %q has no region %q (it has: %s)\n", o.vendor, o.region, strings.Join(regions(o.vendor), ", "))
		case o.region != "":
			fmt.Fprintf(stderr, "reachd targets: no vendor has region %q (vendors: %s; reachd targets --vendor V lists a vendor's regions)\n", o.region, orNone(vendors))
		default:
			fmt.Fprintln(stderr, "reachd targets: nothing to list")
		}
		return exitConfig
	}
	withPaths := o.configFile != ""
	switch o.format {
	case "json":
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(out)
	case "csv":
		w := csv.NewWriter(stdout)
		w.Write(targetColumns(withPaths))
		for _, r := range out {
			w.Write(r.cells(withPaths))
		}
		w.Flush()
	default:
		tw := tabwriter.NewWriter(stdout, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, strings.ToUpper(strings.Join(targetColumns(withPaths), "\t")))
		for _, r := range out {
			fmt.Fprintln(tw, strings.Join(r.cells(withPaths), "\t"))
		}
		tw.Flush()
	}
	return exitOK
}

func targetColumns(withPaths bool) []string {
	cols := []string{"vendor", "region", "name", "host", "port", "scheme"}
	if withPaths {
		cols = append(cols, "path", "proxy")
	}
	return append(cols, "purpose", "source", "checked")
}

func (r targetRow) cells(withPaths bool) []string {
	c := []string{r.Vendor, r.Region, r.Name, r.Host, strconv.Itoa(r.Port), r.Scheme}
	if withPaths {
		c = append(c, r.Path, cmp.Or(r.Proxy, "direct"))
	}
	return append(c, r.Purpose, r.Source, r.Checked)
}
