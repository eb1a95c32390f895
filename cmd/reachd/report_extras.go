package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/reachd/reachd/probe"
)

// writeTextExtras writes what the extras found below a result: the path
// trace of a failing direct probe (verdict, then hops) and the chain's
// revocation URLs (a count when all answered, each one that did not).
func writeTextExtras(w io.Writer, c palette, r *probe.Result, indent string) {
	if t := r.Trace; t != nil {
		if t.Unsupported != "" {
			fmt.Fprintf(w, "%s%s %s\n", indent, c.dim("trace:"), t.Unsupported)
		} else {
			fmt.Fprintf(w, "%s%s %s (to %s)\n", indent, c.dim("trace:"), c.warn(t.Verdict), t.Target)
			for _, h := range t.Hops {
				fmt.Fprintf(w, "%s  %s\n", indent, h.String())
			}
		}
	}
	if len(r.Revocation) == 0 {
		return
	}
	var down []probe.RevocationCheck
	for _, rc := range r.Revocation {
		if !rc.Reachable {
			down = append(down, rc)
		}
	}
	if len(down) == 0 {
		fmt.Fprintf(w, "%s%s %d OCSP/CRL/issuer URLs reachable\n", indent, c.dim("revocation:"), len(r.Revocation))
		return
	}
	for _, rc := range down {
		fmt.Fprintf(w, "%s%s %s %s unreachable: %s\n", indent, c.warn("revocation:"), rc.Kind, rc.URL, rc.Detail)
	}
}

// writeMarkdownTrace adds a failing probe's path trace to its section.
func writeMarkdownTrace(w io.Writer, r *probe.Result) {
	t := r.Trace
	if t == nil {
		return
	}
	if t.Unsupported != "" {
		fmt.Fprintf(w, "- **path trace:** %s\n", mdText(t.Unsupported))
		return
	}
	var hops []string
	for _, h := range t.Hops {
		hops = append(hops, h.String())
	}
	fmt.Fprintf(w, "- **path trace** to `%s`: %s\n\n  ```text\n  %s\n  ```\n", t.Target, mdText(t.Verdict), strings.Join(hops, "\n  "))
}

// writeMarkdownRevocation lists the revocation and issuer URLs that did
// not answer, per probe, after the probes table.
func writeMarkdownRevocation(w io.Writer, results []*probe.Result) {
	var lines []string
	checked := 0
	for _, r := range results {
		for _, rc := range r.Revocation {
			checked++
			if !rc.Reachable {
				lines = append(lines, fmt.Sprintf("| %s | %s | %s | `%s` | %s |", mdText(r.Target.Vendor+"/"+r.Target.Region+"/"+r.Target.Name),
					mdText(r.Path), rc.Kind, mdCell(rc.URL), mdCell(rc.Detail)))
			}
		}
	}
	if checked == 0 {
		return
	}
	fmt.Fprintf(w, "\n### Revocation and issuer URLs\n\n%d checked, %d unreachable.\n", checked, len(lines))
	if len(lines) > 0 {
		fmt.Fprintf(w, "\n| probe | path | kind | URL | detail |\n|---|---|---|---|---|\n%s\n", strings.Join(lines, "\n"))
	}
}
