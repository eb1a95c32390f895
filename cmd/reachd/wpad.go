package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/reachd/reachd/probe"
)

// wpadJSON is the --format json form of check --wpad.
type wpadJSON struct {
	Resolver string        `json:"resolver"`
	Domains  []string      `json:"domains"`
	Found    string        `json:"found"`
	Attempts []wpadAttempt `json:"attempts"`
}

type wpadAttempt struct {
	URL   string `json:"url"`
	Error string `json:"error"`
}

// checkWPAD looks for the PAC by WPAD as a wpad path would, and reports
// every candidate: exit 0 when one served a PAC, 1 when none did.
func checkWPAD(o checkOptions, stdout, stderr io.Writer) int {
	cfg, err := checkConfig(o)
	if err != nil {
		fmt.Fprintf(stderr, "reachd check: %v\n", err)
		return exitConfig
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Defaults.Timeout)
	defer cancel()
	rep, err := probe.DiscoverWPAD(ctx, cfg)
	if o.format == "json" {
		out := wpadJSON{Resolver: rep.Resolver, Domains: rep.Domains, Found: rep.Found, Attempts: []wpadAttempt{}}
		if out.Domains == nil {
			out.Domains = []string{}
		}
		for _, a := range rep.Attempts {
			e := ""
			if a.Err != nil {
				e = a.Err.Error()
			}
			out.Attempts = append(out.Attempts, wpadAttempt{URL: a.URL, Error: e})
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(out)
	} else {
		fmt.Fprintf(stdout, "WPAD: search domains of resolver %q: %s\n", rep.Resolver, strings.Join(rep.Domains, ", "))
		for _, a := range rep.Attempts {
			if a.Err == nil {
				fmt.Fprintf(stdout, "  %s: serves a PAC\n", a.URL)
			} else {
				fmt.Fprintf(stdout, "  %s: %v\n", a.URL, a.Err)
			}
		}
		if rep.Found != "" {
			fmt.Fprintf(stdout, "WPAD found the PAC at %s\n", rep.Found)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "reachd check --wpad: %v\n", err)
		return exitFailed
	}
	return exitOK
}
