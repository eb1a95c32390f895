package main

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

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
	vendor, region, format, catalogDir string
}

// targetRow is one catalog target as `reachd targets --format json` prints it.
type targetRow struct {
	Vendor  string   `json:"vendor"`
	Region  string   `json:"region"`
	Name    string   `json:"name"`
	Host    string   `json:"host"`
	Port    int      `json:"port"`
	Checks  []string `json:"checks"`
	Purpose string   `json:"purpose"`
	File    string   `json:"file"`
}

func listTargets(o targetsOptions, stdout, stderr io.Writer) int {
	cat, err := targets.Load(o.catalogDir)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitConfig
	}
	rows := []targetRow{}
	for _, f := range cat.Files() {
		if o.vendor != "" && f.Vendor != o.vendor || o.region != "" && f.Region != o.region {
			continue
		}
		for _, t := range f.Targets {
			rows = append(rows, targetRow{t.Vendor, t.Region, t.Name, t.Host, t.Port, t.Checks, t.Purpose, f.Path})
		}
	}
	if len(rows) == 0 {
		fmt.Fprintf(stderr, "reachd targets: nothing matches (vendors: %s)\n", cat.Vendors())
		return exitConfig
	}
	if o.format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rows)
		return exitOK
	}
	tw := tabwriter.NewWriter(stdout, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "VENDOR\tREGION\tNAME\tHOST\tPORT\tCHECKS\tPURPOSE")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Vendor, r.Region, r.Name, r.Host, strconv.Itoa(r.Port), strings.Join(r.Checks, ","), r.Purpose)
	}
	tw.Flush()
	return exitOK
}
