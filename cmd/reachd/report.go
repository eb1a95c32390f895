package main

import (
	"cmp"
	"crypto/tls"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/reachd/reachd/exporter"
	"github.com/reachd/reachd/probe"
	"github.com/reachd/reachd/targets"
)

// reportMeta is what a check report says besides the results.
type reportMeta struct {
	Site    string
	Started time.Time
	Version string // "1.2.3 (revision abc1234, go1.26.8)"
	Config  string // the config file, or what stands for it
	Filters string // the command's filters as flags; "" for none
	// Paths say, per path, which proxy it uses and how that was chosen;
	// Resolvers, per resolver, its servers: what a vendor's support asks.
	Paths     []pathInfo
	Resolvers []string // "corp: 10.1.1.53:53, 10.1.1.54:53 (udp)"
	Warnings  []string // the config's
	// FailedOnly shows only the failing probes (--failed); the summary
	// still counts them all.
	FailedOnly bool
	// Emoji marks results with ✅ and ❌: markdown for a chat tool, not for
	// a ticket system.
	Emoji bool
}

// pathInfo is one path as a report describes it.
type pathInfo struct {
	Name  string
	Proxy string // redacted URL, or "none"
	How   string // how the proxy was chosen
}

func (p pathInfo) String() string {
	if p.How == "" {
		return p.Name + ": " + p.Proxy
	}
	return p.Name + ": " + p.Proxy + " (" + p.How + ")"
}

// expiringWithin is how soon a certificate's expiry is worth a line.
const expiringWithin = 30 * 24 * time.Hour

// expiry says when the leaf certificate of a result expires, if that is
// within expiringWithin of now: "certificate expires 2026-12-01 (in 9 days)".
func expiry(r *probe.Result, now time.Time) string {
	if r.TLS == nil || r.TLS.NotAfter.IsZero() {
		return ""
	}
	left := r.TLS.NotAfter.Sub(now)
	switch {
	case left > expiringWithin:
		return ""
	case left <= 0:
		return "certificate expired " + r.TLS.NotAfter.UTC().Format(time.DateOnly)
	}
	days := int(left.Hours() / 24)
	return fmt.Sprintf("certificate expires %s (in %d days)", r.TLS.NotAfter.UTC().Format(time.DateOnly), days)
}

// shown are the results the report lists row by row.
func (m reportMeta) shown(results []*probe.Result) []*probe.Result {
	if !m.FailedOnly {
		return results
	}
	var out []*probe.Result
	for _, r := range results {
		if !r.Success() {
			out = append(out, r)
		}
	}
	return out
}

// probeName names a probe in a summary: "acme/jp/api via corp-proxy".
func probeName(r *probe.Result) string { return r.Target.ID() + " via " + r.Path }

// failingNames lists the failing probes of a reason, at most max of them.
func failingNames(results []*probe.Result, reason probe.Reason, limit int) string {
	var names []string
	n := 0
	for _, r := range results {
		if !r.Success() && r.Err.Reason == reason {
			if n < limit {
				names = append(names, probeName(r))
			}
			n++
		}
	}
	if n > limit {
		names = append(names, fmt.Sprintf("and %d more", n-limit))
	}
	return strings.Join(names, ", ")
}

// reportGroup is one vendor and region, as the status page groups them.
type reportGroup struct {
	Vendor, Region string
	Targets        []reportTarget
}

// reportTarget is one target with its results, one per path.
type reportTarget struct {
	Target  *targets.Target
	Results []*probe.Result
}

// groupResults groups results by vendor and region, then by target, in
// name order; a target's paths keep their config order.
func groupResults(results []*probe.Result) []reportGroup {
	var groups []reportGroup
	for _, r := range results {
		t := r.Target
		gi := slices.IndexFunc(groups, func(g reportGroup) bool { return g.Vendor == t.Vendor && g.Region == t.Region })
		if gi < 0 {
			groups = append(groups, reportGroup{Vendor: t.Vendor, Region: t.Region})
			gi = len(groups) - 1
		}
		g := &groups[gi]
		ti := slices.IndexFunc(g.Targets, func(rt reportTarget) bool { return rt.Target.Name == t.Name })
		if ti < 0 {
			g.Targets = append(g.Targets, reportTarget{Target: t})
			ti = len(g.Targets) - 1
		}
		g.Targets[ti].Results = append(g.Targets[ti].Results, r)
	}
	slices.SortFunc(groups, func(a, b reportGroup) int {
		return cmp.Or(cmp.Compare(a.Vendor, b.Vendor), cmp.Compare(a.Region, b.Region))
	})
	for _, g := range groups {
		slices.SortFunc(g.Targets, func(a, b reportTarget) int { return cmp.Compare(a.Target.Name, b.Target.Name) })
	}
	return groups
}

// reasonCount is how many probes failed for one reason.
type reasonCount struct {
	Reason probe.Reason
	N      int
}

// failureCounts counts the failures by reason, most frequent first.
func failureCounts(results []*probe.Result) (failed int, counts []reasonCount) {
	by := map[probe.Reason]int{}
	for _, r := range results {
		if !r.Success() {
			failed++
			by[r.Err.Reason]++
		}
	}
	for reason, n := range by {
		counts = append(counts, reasonCount{reason, n})
	}
	slices.SortFunc(counts, func(a, b reasonCount) int { return cmp.Or(cmp.Compare(b.N, a.N), cmp.Compare(a.Reason, b.Reason)) })
	return failed, counts
}

// pathCount is how many of a path's probes passed.
type pathCount struct {
	Path           string
	Passed, Probes int
}

// pathCounts counts the passes per path, in the order paths first appear.
func pathCounts(results []*probe.Result) []pathCount {
	var out []pathCount
	for _, r := range results {
		i := slices.IndexFunc(out, func(p pathCount) bool { return p.Path == r.Path })
		if i < 0 {
			out = append(out, pathCount{Path: r.Path})
			i = len(out) - 1
		}
		out[i].Probes++
		if r.Success() {
			out[i].Passed++
		}
	}
	return out
}

// palette colours the text report; the zero palette writes plain text.
type palette struct{ on bool }

func (p palette) wrap(code, s string) string {
	if !p.on || s == "" {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

func (p palette) ok(s string) string   { return p.wrap("32", s) }
func (p palette) bad(s string) string  { return p.wrap("1;31", s) }
func (p palette) warn(s string) string { return p.wrap("33", s) }
func (p palette) bold(s string) string { return p.wrap("1", s) }
func (p palette) dim(s string) string  { return p.wrap("2", s) }

// writeText prints the check report grouped like the status page: per
// vendor and region each target with its paths side by side, for a
// failure the stage, reason and detail; then a summary with the counts by
// path and by reason, and each distinct hint once, under its reason.
func writeText(w io.Writer, m reportMeta, results []*probe.Result, color bool) {
	c := palette{on: color}
	fmt.Fprintf(w, "%s · site %s · %s · reachd %s\n", c.bold("reachd check"), c.bold(m.Site), m.Started.UTC().Format(time.RFC3339), m.Version)
	if m.Config != "" {
		fmt.Fprintf(w, "config: %s\n", m.Config)
	}
	if m.Filters != "" {
		fmt.Fprintf(w, "filters: %s\n", m.Filters)
	}
	for _, p := range m.Paths {
		fmt.Fprintf(w, "path %s\n", p)
	}
	for _, r := range m.Resolvers {
		fmt.Fprintf(w, "resolver %s\n", r)
	}
	for _, warn := range m.Warnings {
		fmt.Fprintf(w, "%s %s\n", c.warn("warning:"), warn)
	}
	pathWidth, nameWidth := 0, 0
	for _, r := range results {
		pathWidth, nameWidth = max(pathWidth, len(r.Path)), max(nameWidth, len(r.Target.Name))
	}
	if m.FailedOnly {
		if failed, _ := failureCounts(results); failed == 0 {
			fmt.Fprintf(w, "\n%s\n", c.ok("nothing failed (--failed shows only failures)"))
		}
	}
	for _, g := range groupResults(m.shown(results)) {
		var probes, failed int
		for _, t := range g.Targets {
			for _, r := range t.Results {
				probes++
				if !r.Success() {
					failed++
				}
			}
		}
		state := c.ok("all passed")
		if failed > 0 {
			state = c.bad(fmt.Sprintf("%d of %d failed", failed, probes))
		}
		fmt.Fprintf(w, "\n%s  %s\n", c.bold(g.Vendor+"/"+g.Region), state)
		for _, t := range g.Targets {
			fmt.Fprintf(w, "  %s  %s\n", c.bold(pad(t.Target.Name, nameWidth)), c.dim(t.Target.Address()))
			for _, r := range t.Results {
				writeTextResult(w, c, r, pathWidth, m.Started)
			}
		}
	}
	writeTextSummary(w, c, results)
}

// The column where a result's outcome starts, after "    FAIL  path  12ms  ".
func outcomeIndent(pathWidth int) string { return strings.Repeat(" ", 4+4+2+pathWidth+2+7+2) }

func writeTextResult(w io.Writer, c palette, r *probe.Result, pathWidth int, now time.Time) {
	state := c.ok("OK  ")
	if !r.Success() {
		state = c.bad("FAIL")
	}
	fmt.Fprintf(w, "    %s  %s  %7s  ", state, pad(r.Path, pathWidth), round(r.Duration))
	indent := outcomeIndent(pathWidth)
	defer writeTextExtras(w, c, r, indent) // trace and revocation (report_extras.go), after the PAC
	defer writeTextPAC(w, c, r, indent)
	if r.Success() {
		line := passedSummary(c, r)
		if e := expiry(r, now); e != "" {
			line += c.warn(" — " + e)
		}
		fmt.Fprintln(w, line)
		return
	}
	fmt.Fprintf(w, "failed at %s: %s\n", r.Err.Stage, c.bad(string(r.Err.Reason)))
	if r.Err.Err != nil {
		detail := strings.ReplaceAll(r.Err.Err.Error(), "\n", "\n"+indent+"        ")
		fmt.Fprintf(w, "%s%s %s\n", indent, c.dim("detail:"), detail)
	}
	if tl := r.TLS; tl != nil && (tl.Issuer != "" || tl.Accepted != nil) {
		fmt.Fprintf(w, "%s%s %s\n", indent, c.dim("tls:"), tlsFacts(tl))
	}
}

// writeTextPAC says, for a pac or wpad path, what the PAC answered and
// which entry carried the probe.
func writeTextPAC(w io.Writer, c palette, r *probe.Result, indent string) {
	p := r.PAC
	if p == nil {
		return
	}
	if p.Answer != "" {
		fallback := ""
		if p.Fallback {
			fallback = ", past the first choice, which could not be reached"
		}
		fmt.Fprintf(w, "%s%s %s → carried by %s%s (%s)\n", indent, c.dim("pac:"), p.Answer, orNone(p.Used), fallback, p.Source)
	}
	if p.FetchError != "" {
		fmt.Fprintf(w, "%s%s %s; the last good copy is in use\n", indent, c.warn("pac refetch failed:"), p.FetchError)
	}
}

// passedSummary is the one line a passing probe gets: its TLS facts, or
// the stages it passed when it had no TLS.
func passedSummary(c palette, r *probe.Result) string {
	if tl := r.TLS; tl != nil && tl.Version != 0 {
		s := fmt.Sprintf("TLS %s %s, issuer %q", probe.TLSVersionName(tl.Version), tl.Cipher, tl.Issuer)
		if r.HTTP != nil {
			s += fmt.Sprintf(", HTTP %d", r.HTTP.Status)
		}
		if tl.Intercepted {
			s += c.warn(" — INTERCEPTED: the chain anchors in a private CA, not a public root")
		}
		return s
	}
	var passed []string
	for _, s := range r.Stages {
		passed = append(passed, string(s.Stage))
	}
	out := "passed: " + orNone(strings.Join(passed, " "))
	if r.HTTP != nil {
		out += fmt.Sprintf(", HTTP %d", r.HTTP.Status)
	}
	return out
}

func writeTextSummary(w io.Writer, c palette, results []*probe.Result) {
	failed, counts := failureCounts(results)
	line := fmt.Sprintf("%d probes: %d passed, %d failed", len(results), len(results)-failed, failed)
	if failed > 0 {
		line = c.bad(line)
	} else {
		line = c.ok(line)
	}
	fmt.Fprintf(w, "\n%s\n", c.bold(line))
	for _, note := range exporter.AuthExemptions(results) {
		for i, l := range wrapText(note, 88) {
			label := "agents: "
			if i > 0 {
				label = "        "
			}
			fmt.Fprintf(w, "  %s%s\n", c.warn(label), l)
		}
	}
	if paths := pathCounts(results); len(paths) > 1 {
		var parts []string
		for _, p := range paths {
			parts = append(parts, fmt.Sprintf("%s %d/%d passed", p.Path, p.Passed, p.Probes))
		}
		fmt.Fprintf(w, "  by path: %s\n", strings.Join(parts, " · "))
	}
	for _, rc := range counts {
		fmt.Fprintf(w, "  %4d  %s %s\n", rc.N, c.bad(string(rc.Reason)), c.dim("("+string(rc.Reason.Stage())+")"))
		for i, l := range wrapText(failingNames(results, rc.Reason, 5), 88) {
			label := "probes: "
			if i > 0 {
				label = "        "
			}
			fmt.Fprintf(w, "        %s%s\n", c.dim(label), l)
		}
		if h := rc.Reason.Hint(); h != "" {
			for i, l := range wrapText(h, 88) {
				label := "hint: "
				if i > 0 {
					label = "      "
				}
				fmt.Fprintf(w, "        %s%s\n", c.dim(label), l)
			}
		}
	}
}

// wrapText breaks s into lines of at most width runes at spaces.
func wrapText(s string, width int) []string {
	var lines []string
	var cur strings.Builder
	for _, word := range strings.Fields(s) {
		if cur.Len() > 0 && len([]rune(cur.String()))+1+len([]rune(word)) > width {
			lines = append(lines, cur.String())
			cur.Reset()
		}
		if cur.Len() > 0 {
			cur.WriteByte(' ')
		}
		cur.WriteString(word)
	}
	if cur.Len() > 0 {
		lines = append(lines, cur.String())
	}
	return lines
}

func pad(s string, n int) string { return s + strings.Repeat(" ", max(0, n-len(s))) }

func round(d time.Duration) string {
	if d < 10*time.Millisecond {
		return d.Round(100 * time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// colorFor says whether the report to w is coloured: only on a terminal,
// and never with NO_COLOR set (https://no-color.org) or TERM=dumb.
func colorFor(w io.Writer) bool {
	return isTerminal(w) && os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb"
}

// writeMarkdown prints the report for a vendor support ticket: where and
// when it ran, with which reachd and filters, a table of every probe, and
// per failing probe the stage, reason, detail and hint.
func writeMarkdown(w io.Writer, m reportMeta, results []*probe.Result) {
	failed, counts := failureCounts(results)
	fmt.Fprintf(w, "## reachd check: %d of %d probes failed at site %s\n\n", failed, len(results), mdText(m.Site))
	fmt.Fprintf(w, "| | |\n|---|---|\n")
	fmt.Fprintf(w, "| site | %s |\n", mdCell(m.Site))
	fmt.Fprintf(w, "| time (UTC) | %s |\n", m.Started.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "| reachd | %s |\n", mdCell(m.Version))
	fmt.Fprintf(w, "| config | %s |\n", mdCell(m.Config))
	fmt.Fprintf(w, "| filters | %s |\n", mdCell(cmp.Or(m.Filters, "none: every configured probe")))
	for _, p := range m.Paths {
		fmt.Fprintf(w, "| path %s | %s |\n", mdCell(p.Name), mdCell(strings.TrimPrefix(p.String(), p.Name+": ")))
	}
	for _, r := range m.Resolvers {
		name, servers, _ := strings.Cut(r, ": ")
		fmt.Fprintf(w, "| resolver %s | %s |\n", mdCell(name), mdCell(servers))
	}
	for _, warn := range m.Warnings {
		fmt.Fprintf(w, "| warning | %s |\n", mdCell(warn))
	}
	fmt.Fprintf(w, "| result | %d probes: %d passed, %d failed |\n", len(results), len(results)-failed, failed)
	if len(counts) > 0 {
		var parts []string
		for _, rc := range counts {
			parts = append(parts, fmt.Sprintf("%d × `%s` (%s)", rc.N, rc.Reason, mdCell(failingNames(results, rc.Reason, 5))))
		}
		fmt.Fprintf(w, "| failures | %s |\n", strings.Join(parts, ", "))
	}
	for _, note := range exporter.AuthExemptions(results) {
		fmt.Fprintf(w, "| agents | %s |\n", mdCell(note))
	}
	okMark, failMark := "OK", "FAIL"
	if m.Emoji {
		okMark, failMark = "✅ OK", "❌"
	}

	fmt.Fprintf(w, "\n### Probes\n\n| vendor/region | target | host:port | path | result |\n|---|---|---|---|---|\n")
	var failing []*probe.Result
	for _, g := range groupResults(m.shown(results)) {
		for _, t := range g.Targets {
			for _, r := range t.Results {
				result := okMark + ", " + round(r.Duration)
				if tl := r.TLS; r.Success() && tl != nil && tl.Version != 0 {
					result += ", TLS " + probe.TLSVersionName(tl.Version)
					if tl.Intercepted {
						result += ", **intercepted** (issuer " + mdText(tl.Issuer) + ")"
					}
				}
				if r.Success() && r.HTTP != nil {
					result += fmt.Sprintf(", HTTP %d", r.HTTP.Status)
				}
				if e := expiry(r, m.Started); r.Success() && e != "" {
					result += ", **" + e + "**"
				}
				if !r.Success() {
					result = fmt.Sprintf("%s %s: `%s`", failMark, r.Err.Stage, r.Err.Reason)
					failing = append(failing, r)
				}
				fmt.Fprintf(w, "| %s | %s | `%s` | %s | %s |\n", mdText(g.Vendor+"/"+g.Region), mdText(t.Target.Name),
					mdCell(t.Target.Address()), mdText(r.Path), result)
			}
		}
	}
	writeMarkdownRevocation(w, results)
	if len(failing) == 0 {
		return
	}
	fmt.Fprintf(w, "\n### Failures\n")
	for _, r := range failing {
		writeMarkdownFailure(w, r, m.Started)
	}
}

func writeMarkdownFailure(w io.Writer, r *probe.Result, now time.Time) {
	t := r.Target
	fmt.Fprintf(w, "\n#### %s/%s/%s via %s: `%s`\n\n", mdText(t.Vendor), mdText(t.Region), mdText(t.Name), mdText(r.Path), r.Err.Reason)
	fmt.Fprintf(w, "- **host:port:** `%s`\n", t.Address())
	var stages []string
	for _, s := range r.Stages {
		mark := "ok"
		if !s.Success {
			mark = "failed"
		}
		stages = append(stages, fmt.Sprintf("%s %s (%s)", s.Stage, mark, round(s.Duration)))
	}
	fmt.Fprintf(w, "- **stage:** %s — %s\n", r.Err.Stage, orNone(strings.Join(stages, ", ")))
	fmt.Fprintf(w, "- **reason:** `%s`\n", r.Err.Reason)
	if h := r.Err.Reason.Hint(); h != "" {
		fmt.Fprintf(w, "- **hint:** %s\n", mdText(h))
	}
	if tl := r.TLS; tl != nil && (tl.Issuer != "" || len(tl.Accepted) > 0) {
		fmt.Fprintf(w, "- **TLS:** %s\n", mdText(tlsFacts(tl)))
	}
	if e := expiry(r, now); e != "" {
		fmt.Fprintf(w, "- **certificate:** %s\n", e)
	}
	for _, d := range r.DNS {
		answer := cmp.Or(d.Rcode, "no answer")
		if len(d.Answers) > 0 {
			answer += ": " + strings.Join(d.Answers, ", ")
		}
		fmt.Fprintf(w, "- **DNS %s via %s:** %s\n", d.QType, mdText(d.Resolver), mdText(answer))
	}
	writeMarkdownTrace(w, r)
	if r.Err.Err != nil {
		detail := r.Err.Err.Error()
		fence := strings.Repeat("`", max(3, longestRun(detail, '`')+1))
		fmt.Fprintf(w, "- **detail:**\n\n  %stext\n  %s\n  %s\n", fence, strings.ReplaceAll(detail, "\n", "\n  "), fence)
	}
}

// sweptVersions are the versions the TLS sweep tests, oldest first.
var sweptVersions = []uint16{tls.VersionTLS10, tls.VersionTLS11, tls.VersionTLS12, tls.VersionTLS13}

// tlsFacts is a one-line summary of what the TLS stage and sweep learned.
func tlsFacts(tl *probe.TLSInfo) string {
	var parts []string
	if tl.Version != 0 {
		parts = append(parts, "negotiated "+probe.TLSVersionName(tl.Version)+" "+tl.Cipher)
	}
	if tl.Issuer != "" {
		parts = append(parts, "issuer "+tl.Issuer)
	}
	if tl.Intercepted {
		parts = append(parts, "intercepted (private CA)")
	}
	if tl.Accepted != nil {
		// A version the sweep could not decide has no key: "?", never "no".
		var acc []string
		for _, v := range sweptVersions {
			mark := "?"
			if ok, decided := tl.Accepted[v]; decided && ok {
				mark = "yes"
			} else if decided {
				mark = "no"
			}
			acc = append(acc, probe.TLSVersionName(v)+" "+mark)
		}
		parts = append(parts, "versions accepted: "+strings.Join(acc, ", "))
	}
	return strings.Join(parts, "; ")
}

// mdText keeps s from turning into Markdown or HTML markup. An underscore
// inside a word (proxy_auth_required) stays as it is: no Markdown flavour
// emphasises it, and a ticket system that shows the source would show
// the backslash.
func mdText(s string) string {
	var b strings.Builder
	rs := []rune(strings.ReplaceAll(s, "\n", " "))
	word := func(i int) bool {
		return i >= 0 && i < len(rs) && (unicode.IsLetter(rs[i]) || unicode.IsDigit(rs[i]))
	}
	for i, r := range rs {
		if strings.ContainsRune("\\`*[]<>|", r) || r == '_' && !(word(i-1) && word(i+1)) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// mdCell is s for a table cell: one line, pipes escaped.
func mdCell(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\n", " "), "|", `\|`)
}

func longestRun(s string, c byte) int {
	longest, n := 0, 0
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			n++
			longest = max(longest, n)
		} else {
			n = 0
		}
	}
	return longest
}
