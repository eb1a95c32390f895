package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/reachd/reachd/probe"
)

// writeText prints the check report: per vendor and region, each target
// and path with the stages passed, and for a failure the stage, reason,
// detail and hint; then a summary with counts by reason.
func writeText(w io.Writer, site string, started time.Time, results []*probe.Result) {
	fmt.Fprintf(w, "reachd check · site %s · %s\n", site, started.UTC().Format(time.RFC3339))
	group := ""
	byReason := map[probe.Reason]int{}
	failed := 0
	for _, r := range results {
		t := r.Target
		if g := t.Vendor + "/" + t.Region; g != group {
			group = g
			fmt.Fprintf(w, "\n%s\n", g)
		}
		var passed []string
		for _, s := range r.Stages {
			if s.Success {
				passed = append(passed, string(s.Stage))
			}
		}
		state := "OK  "
		if !r.Success() {
			state = "FAIL"
			failed++
			byReason[r.Err.Reason]++
		}
		fmt.Fprintf(w, "  %s %-24s %-40s %-12s %6s  passed: %s\n", state, t.Name, t.Address(), r.Path,
			r.Duration.Round(time.Millisecond), orNone(strings.Join(passed, " ")))
		if r.Success() {
			if tl := r.TLS; tl != nil && tl.Version != 0 {
				fmt.Fprintf(w, "       TLS %s %s, issuer %q%s\n", probe.TLSVersionName(tl.Version), tl.Cipher, tl.Issuer, intercepted(tl))
			}
			continue
		}
		fmt.Fprintf(w, "       failed at %s: %s\n", r.Err.Stage, r.Err.Reason)
		if r.Err.Err != nil {
			fmt.Fprintf(w, "       detail: %v\n", r.Err.Err)
		}
		fmt.Fprintf(w, "       hint:   %s\n", r.Err.Reason.Hint())
	}
	fmt.Fprintf(w, "\n%d probes: %d passed, %d failed\n", len(results), len(results)-failed, failed)
	reasons := make([]probe.Reason, 0, len(byReason))
	for r := range byReason {
		reasons = append(reasons, r)
	}
	sort.Slice(reasons, func(i, j int) bool {
		return byReason[reasons[i]] > byReason[reasons[j]] || byReason[reasons[i]] == byReason[reasons[j]] && reasons[i] < reasons[j]
	})
	for _, r := range reasons {
		fmt.Fprintf(w, "  %4d %s\n", byReason[r], r)
	}
}

func intercepted(tl *probe.TLSInfo) string {
	if tl.Intercepted {
		return " — INTERCEPTED: the chain anchors in a private CA, not a public root"
	}
	return ""
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
