package exporter

import (
	"cmp"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/reachd/reachd/probe"
	"github.com/reachd/reachd/targets"
)

// probeView is one probe as the page's summary reads it: its target, its
// path, its state and its last result (nil while pending). Results are
// never changed once stored, so a view can outlive the store's lock.
type probeView struct {
	Target *targets.Target
	Path   string
	State  string
	Last   *probe.Result
	Since  time.Time
	// Runs, Up and Changes sum up the kept history.
	Runs, Up, Changes int
}

// pageSummary is the top of the status page: what is broken, where, why
// and since when; which vendor regions are ready; and the warnings.
type pageSummary struct {
	Causes   []pageCause   // the worst, shown at once
	More     []pageCause   // the rest, behind a <details>
	Failing  int           // causes in all
	Verdicts []pageVerdict // not ready first
	Ready    []pageVerdict // reachable on every path, listed compactly
	Warnings []pageWarning
}

// pageCause is the failures of one reason on one path, collapsed.
type pageCause struct {
	Path, Stage, Reason string
	Probes, OfPath      int  // failing with this cause; probed on the path
	All                 bool // every probe on the path fails so
	Text                string
	Detail              string // the detail the failures share, the host as <host>; "" if they differ
	Details             int    // how many distinct details
	Hint                string
	Since               string // the earliest start of these failures
	Targets             []causeTarget
	More                int      // targets not listed
	Link                string   // the page filtered to these rows
	Paths               []string // more than one: the same targets fail so on each

	ids   []string // every target, sorted
	since time.Time
}

type causeTarget struct{ ID, Name, Href string }

// pageVerdict says whether one vendor region is ready, path by path.
type pageVerdict struct {
	Vendor, Region, ID string
	Level              string // ok, partial, bad, pending
	Text               string
	Paths              []pathVerdict
}

type pathVerdict struct {
	Path                   string
	Up, Down, Pending, All int
}

// pageWarning is something that works now but needs attention.
type pageWarning struct {
	Kind, Text string
	Bad        bool // red rather than amber
}

// Within this much time a certificate's expiry is a warning.
const expiryWarning = 30 * 24 * time.Hour

// shownCauses is how many causes the summary shows before "N more".
const shownCauses = 6

// causeTargets is how many targets a cause names before "and N more".
const causeTargets = 6

// summarize reads every probe of the site (not only those a filter shows).
func summarize(probes []probeView, st StateView, warnings []string, now time.Time) pageSummary {
	var s pageSummary
	s.Causes = causes(probes, now)
	s.Failing = len(s.Causes)
	if len(s.Causes) > shownCauses {
		s.Causes, s.More = s.Causes[:shownCauses], s.Causes[shownCauses:]
	}
	s.Verdicts, s.Ready = verdicts(probes)
	s.Warnings = pageWarnings(probes, st, warnings, now)
	return s
}

// localAddr matches the local end of a socket in an error text
// ("udp 10.0.0.5:43211->"), which differs from run to run.
var localAddr = regexp.MustCompile(`(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9A-Fa-f:.%a-z0-9]+\]):\d+->`)

// resolverAddr finds the DNS server a dns-stage detail names.
var resolverAddr = regexp.MustCompile(`(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9A-Fa-f:.]+\]):53\b`)

// normDetail makes a detail comparable across targets: the target's host
// becomes <host> and the local ends of sockets go.
func normDetail(detail, host string) string {
	if host != "" {
		detail = strings.ReplaceAll(detail, host+".", "<host>")
		detail = strings.ReplaceAll(detail, host, "<host>")
	}
	return localAddr.ReplaceAllString(detail, "")
}

// causes groups the failing probes by path and reason, worst first.
func causes(probes []probeView, now time.Time) []pageCause {
	type key struct{ path, reason string }
	onPath := map[string]int{}
	groups := map[key][]probeView{}
	for _, p := range probes {
		onPath[p.Path]++
		if p.State == stateDown && p.Last != nil && p.Last.Err != nil {
			k := key{p.Path, string(p.Last.Err.Reason)}
			groups[k] = append(groups[k], p)
		}
	}
	out := make([]pageCause, 0, len(groups))
	for k, ps := range groups {
		slices.SortFunc(ps, func(a, b probeView) int { return cmp.Compare(a.Target.ID(), b.Target.ID()) })
		e := ps[0].Last.Err
		c := pageCause{Path: k.path, Stage: string(e.Stage), Reason: k.reason, Probes: len(ps), OfPath: onPath[k.path],
			Hint: e.Reason.Hint()}
		c.All = c.Probes == c.OfPath
		details := map[string]int{}
		since := ps[0].Since
		ids := map[string]bool{}
		for _, p := range ps {
			d := ""
			if p.Last.Err.Err != nil {
				d = normDetail(p.Last.Err.Err.Error(), p.Target.Host)
			}
			details[d]++
			if p.Since.Before(since) {
				since = p.Since
			}
			if id := p.Target.ID(); !ids[id] {
				ids[id] = true
				c.ids = append(c.ids, id)
				if len(c.Targets) < causeTargets {
					c.Targets = append(c.Targets, causeTarget{ID: id, Name: id})
				} else {
					c.More++
				}
			}
		}
		c.Details = len(details)
		if len(details) == 1 {
			for d := range details {
				c.Detail = d
			}
		}
		c.Text, c.since, c.Paths = causeText(c, ps), since, []string{k.path}
		if !since.IsZero() {
			c.Since = since.UTC().Format("2006-01-02 15:04 UTC") + " (" + ago(now.Sub(since)) + ")"
		}
		q := url.Values{"state": {stateDown}, "path": {k.path}, "reason": {k.reason}}
		c.Link = "./?" + q.Encode()
		out = append(out, c)
	}
	out = mergeCauses(out, now)
	slices.SortFunc(out, func(a, b pageCause) int {
		// More probes first; at a tie, a whole path down before part of one.
		return cmp.Or(-cmp.Compare(a.Probes, b.Probes), -cmp.Compare(b2i(a.All), b2i(b.All)), cmp.Compare(a.Path, b.Path), cmp.Compare(a.Reason, b.Reason))
	})
	return out
}

// mergeCauses collapses the causes of one reason that hit the same
// targets on several paths (a target failing at tls everywhere, a name
// that no path resolves) into one.
func mergeCauses(cs []pageCause, now time.Time) []pageCause {
	slices.SortFunc(cs, func(a, b pageCause) int { return cmp.Compare(a.Path, b.Path) })
	type key struct{ reason, ids string }
	at := map[key]int{}
	var out []pageCause
	for _, c := range cs {
		k := key{c.Reason, strings.Join(c.ids, "\x00")}
		i, ok := at[k]
		if !ok {
			at[k] = len(out)
			out = append(out, c)
			continue
		}
		m := &out[i]
		m.Paths = append(m.Paths, c.Path)
		m.Probes += c.Probes
		m.OfPath += c.OfPath
		m.All = m.All && c.All
		if m.Detail != c.Detail || m.Detail == "" {
			m.Detail, m.Details = "", m.Details+c.Details
		}
		if c.since.Before(m.since) {
			m.since = c.since
			m.Since = c.Since
		}
	}
	for i := range out {
		m := &out[i]
		if len(m.Paths) == 1 {
			continue
		}
		n := strconv.Itoa(m.Probes) + " probes"
		if m.All {
			n = "all " + n
		}
		m.Path = strings.Join(m.Paths, ",")
		m.Text = n + " (" + strconv.Itoa(len(m.ids)) + " targets on each of " + strconv.Itoa(len(m.Paths)) + " paths: " + joinAnd(m.Paths) + ") fail at " + m.Stage + " with " + m.Reason
		if len(m.ids) == 1 {
			m.Text = m.ids[0] + " fails at " + m.Stage + " with " + m.Reason + " on " + strconv.Itoa(len(m.Paths)) + " paths: " + joinAnd(m.Paths)
		}
		m.Link = "./?" + url.Values{"state": {stateDown}, "reason": {m.Reason}}.Encode()
	}
	return out
}

// causeText is a cause in one line: "all 28 probes on direct fail at dns:
// resolver 10.1.1.53:53 unreachable".
func causeText(c pageCause, ps []probeView) string {
	var b strings.Builder
	if c.All && c.Probes > 1 {
		b.WriteString("all " + strconv.Itoa(c.Probes) + " probes")
	} else if c.All {
		b.WriteString("the only probe")
	} else {
		b.WriteString(strconv.Itoa(c.Probes) + " of " + strconv.Itoa(c.OfPath) + " probes")
	}
	b.WriteString(" on " + c.Path + " fail at " + c.Stage + " with " + c.Reason)
	if c.Stage == string(probe.StageDNS) && c.Details > 0 {
		if server, ok := commonResolver(ps); ok {
			b.WriteString(": resolver " + server + " " + resolverVerb(probe.Reason(c.Reason), ps))
		}
	}
	return b.String()
}

// commonResolver is the DNS server every failure's detail names, if one.
func commonResolver(ps []probeView) (string, bool) {
	server := ""
	for _, p := range ps {
		if p.Last.Err.Err == nil {
			return "", false
		}
		d := localAddr.ReplaceAllString(p.Last.Err.Err.Error(), "")
		s := resolverAddr.FindString(d)
		if s == "" || server != "" && s != server {
			return "", false
		}
		server = s
	}
	return server, server != ""
}

func resolverVerb(r probe.Reason, ps []probeView) string {
	switch r {
	case probe.DNSTimeout:
		return "does not answer"
	case probe.DNSServFail:
		return "answers SERVFAIL"
	case probe.DNSRefused:
		return "refuses the queries"
	case probe.DNSNXDomain:
		return "answers NXDOMAIN"
	case probe.DNSError:
		for _, p := range ps {
			if d := p.Last.Err.Err.Error(); !strings.Contains(d, "refused") && !strings.Contains(d, "unreachable") {
				return "fails"
			}
		}
		return "unreachable"
	}
	return "fails"
}

// verdicts says per vendor region on which paths every probe passes.
func verdicts(probes []probeView) (notReady, ready []pageVerdict) {
	type gk struct{ vendor, region string }
	byGroup := map[gk]*pageVerdict{}
	var order []gk
	for _, p := range probes {
		k := gk{p.Target.Vendor, p.Target.Region}
		v := byGroup[k]
		if v == nil {
			v = &pageVerdict{Vendor: k.vendor, Region: k.region, ID: k.vendor + "/" + k.region}
			byGroup[k] = v
			order = append(order, k)
		}
		i := slices.IndexFunc(v.Paths, func(pv pathVerdict) bool { return pv.Path == p.Path })
		if i < 0 {
			v.Paths = append(v.Paths, pathVerdict{Path: p.Path})
			i = len(v.Paths) - 1
		}
		pv := &v.Paths[i]
		pv.All++
		switch p.State {
		case stateUp:
			pv.Up++
		case stateDown:
			pv.Down++
		default:
			pv.Pending++
		}
	}
	for _, k := range order {
		v := byGroup[k]
		var okPaths, runPaths []string
		anyUp := false
		for _, pv := range v.Paths {
			if pv.Up == pv.All {
				okPaths = append(okPaths, pv.Path)
			}
			if pv.Pending < pv.All {
				runPaths = append(runPaths, pv.Path)
			}
			anyUp = anyUp || pv.Up > 0
		}
		switch {
		case len(okPaths) == len(v.Paths):
			v.Level = "ok"
			v.Text = "reachable on every path"
			if len(v.Paths) == 1 {
				v.Text = "reachable on " + v.Paths[0].Path
			}
		case len(runPaths) == 0:
			v.Level, v.Text = "pending", "pending: no run has finished yet"
		case len(okPaths) > 0:
			v.Level, v.Text = "partial", "reachable on "+joinAnd(okPaths)+" only"
		case anyUp:
			v.Level, v.Text = "bad", "not fully reachable on any path"
		default:
			v.Level, v.Text = "bad", "unreachable on every path"
			if len(v.Paths) == 1 {
				v.Text = "unreachable on " + v.Paths[0].Path
			}
		}
		if v.Level == "ok" {
			ready = append(ready, *v)
		} else {
			notReady = append(notReady, *v)
		}
	}
	rank := map[string]int{"bad": 0, "partial": 1, "pending": 2, "ok": 3}
	byRank := func(a, b pageVerdict) int {
		return cmp.Or(cmp.Compare(rank[a.Level], rank[b.Level]), cmp.Compare(a.Vendor, b.Vendor), cmp.Compare(a.Region, b.Region))
	}
	slices.SortFunc(notReady, byRank)
	slices.SortFunc(ready, byRank)
	return notReady, ready
}

func joinAnd(s []string) string {
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}

// pageWarnings lists, beside the failures: a failed reload, the config's
// own warnings, certificates that expire soon, failing resolvers and
// intercepted paths.
func pageWarnings(probes []probeView, st StateView, config []string, now time.Time) []pageWarning {
	var out []pageWarning
	if !st.ReloadOK && st.ReloadErr != "" {
		out = append(out, pageWarning{Kind: "reload", Bad: true,
			Text: "the last config reload failed, the previous config keeps running: " + st.ReloadErr})
	}
	for _, w := range config {
		out = append(out, pageWarning{Kind: "config", Text: w})
	}
	out = append(out, flapWarnings(probes)...)
	out = append(out, expiryWarnings(probes, now)...)
	out = append(out, resolverWarnings(probes)...)
	out = append(out, dnsWarnings(probes)...)
	out = append(out, interceptWarnings(probes)...)
	results := make([]*probe.Result, 0, len(probes))
	for _, p := range probes {
		results = append(results, p.Last)
	}
	for _, w := range AuthExemptions(results) {
		out = append(out, pageWarning{Kind: "proxy-auth", Bad: true, Text: w})
	}
	return out
}

func expiryWarnings(probes []probeView, now time.Time) []pageWarning {
	type cert struct {
		host     string
		notAfter time.Time
	}
	paths := map[cert][]string{}
	var certs []cert
	for _, p := range probes {
		if p.Last == nil || p.Last.TLS == nil || p.Last.TLS.Version == 0 || p.Last.TLS.NotAfter.Sub(now) >= expiryWarning {
			continue
		}
		c := cert{p.Target.Host, p.Last.TLS.NotAfter}
		if _, ok := paths[c]; !ok {
			certs = append(certs, c)
		}
		paths[c] = append(paths[c], p.Path)
	}
	slices.SortFunc(certs, func(a, b cert) int { return cmp.Or(a.notAfter.Compare(b.notAfter), cmp.Compare(a.host, b.host)) })
	out := make([]pageWarning, 0, len(certs))
	for _, c := range certs {
		left := c.notAfter.Sub(now)
		verb := "expires "
		if left < 0 {
			verb = "expired "
		}
		out = append(out, pageWarning{Kind: "certificate", Bad: left < 7*24*time.Hour,
			Text: "the certificate of " + c.host + " " + verb + c.notAfter.UTC().Format("2006-01-02 15:04 UTC") + " (" + days(left) + "), seen on " + strings.Join(paths[c], ", ")})
	}
	return out
}

// resolverFailure is a per-resolver DNS reason that blames the resolver,
// not the name.
func resolverFailure(r probe.Reason) bool {
	switch r {
	case probe.DNSTimeout, probe.DNSServFail, probe.DNSRefused, probe.DNSError:
		return true
	}
	return false
}

func resolverWarnings(probes []probeView) []pageWarning {
	type tally struct {
		failed, all int
		reasons     map[string]int
	}
	by := map[string]*tally{}
	seen := map[string]bool{} // a target's DNS checks once, whatever its paths
	for _, p := range probes {
		if p.Last == nil || len(p.Last.DNS) == 0 || seen[p.Target.ID()] {
			continue
		}
		seen[p.Target.ID()] = true
		for _, q := range p.Last.DNS {
			t := by[q.Resolver]
			if t == nil {
				t = &tally{reasons: map[string]int{}}
				by[q.Resolver] = t
			}
			t.all++
			if !q.Success && resolverFailure(q.Reason) {
				t.failed++
				t.reasons[string(q.Reason)]++
			}
		}
	}
	var out []pageWarning
	for _, name := range sortedKeys(boolKeys(by)) {
		t := by[name]
		if t.failed == 0 {
			continue
		}
		var rs []string
		for _, r := range sortedKeys(boolKeys(t.reasons)) {
			rs = append(rs, r+" ×"+strconv.Itoa(t.reasons[r]))
		}
		out = append(out, pageWarning{Kind: "resolver", Bad: t.failed == t.all,
			Text: "resolver " + name + " failed " + strconv.Itoa(t.failed) + " of " + strconv.Itoa(t.all) + " queries: " + strings.Join(rs, ", ")})
	}
	return out
}

// flapWarnings name the probes whose state changed more than twice in
// their kept history: a plain "up" would hide them. Past a few, they are
// one warning counted by path: a whole site flapping is one story.
func flapWarnings(probes []probeView) []pageWarning {
	var flapping []probeView
	for _, p := range probes {
		if p.Changes > flapChanges {
			flapping = append(flapping, p)
		}
	}
	if len(flapping) > maxFlapWarnings {
		byPath := map[string]int{}
		var paths []string
		for _, p := range flapping {
			if byPath[p.Path] == 0 {
				paths = append(paths, p.Path)
			}
			byPath[p.Path]++
		}
		parts := make([]string, len(paths))
		for i, path := range paths {
			parts[i] = path + " " + strconv.Itoa(byPath[path])
		}
		return []pageWarning{{Kind: "flapping", Text: strconv.Itoa(len(flapping)) + " probes changed state more than " + strconv.Itoa(flapChanges) +
			" times in their kept runs (" + strings.Join(parts, ", ") + "): their rows carry a flapping tag"}}
	}
	out := make([]pageWarning, 0, len(flapping))
	for _, p := range flapping {
		out = append(out, pageWarning{Kind: "flapping", Text: p.Target.ID() + " on " + p.Path + " is " + p.State + " now but changed state " +
			strconv.Itoa(p.Changes) + " times in its last " + strconv.Itoa(p.Runs) + " runs (" + strconv.Itoa(p.Up*100/p.Runs) + "% passed)"})
	}
	return out
}

// maxFlapWarnings is how many flapping probes are named one by one.
const maxFlapWarnings = 5

// dnsWarnings are the per-resolver checks' own warnings (a hosts-file pin
// that DNS contradicts), each once.
func dnsWarnings(probes []probeView) []pageWarning {
	seen := map[string]bool{}
	var out []pageWarning
	for _, p := range probes {
		if p.Last == nil {
			continue
		}
		for _, q := range p.Last.DNS {
			if q.Warning != "" && !seen[q.Warning] {
				seen[q.Warning] = true
				out = append(out, pageWarning{Kind: "dns", Text: q.Warning})
			}
		}
	}
	return out
}

func interceptWarnings(probes []probeView) []pageWarning {
	type tally struct {
		n, all  int
		issuers map[string]bool
	}
	by := map[string]*tally{}
	var order []string
	for _, p := range probes {
		t := by[p.Path]
		if t == nil {
			t = &tally{issuers: map[string]bool{}}
			by[p.Path] = t
			order = append(order, p.Path)
		}
		if p.Last == nil || p.Last.TLS == nil || p.Last.TLS.Version == 0 {
			continue
		}
		t.all++
		if p.Last.TLS.Intercepted {
			t.n++
			t.issuers[p.Last.TLS.Issuer] = true
		}
	}
	var out []pageWarning
	for _, path := range order {
		t := by[path]
		if t.n == 0 {
			continue
		}
		out = append(out, pageWarning{Kind: "intercepted",
			Text: "path " + path + ": " + strconv.Itoa(t.n) + " of " + strconv.Itoa(t.all) + " TLS probes are intercepted (issuer " + strings.Join(sortedKeys(t.issuers), ", ") +
				"): agents must trust that CA, and agents that pin certificates fail"})
	}
	return out
}

func boolKeys[V any](m map[string]V) map[string]bool {
	out := make(map[string]bool, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
