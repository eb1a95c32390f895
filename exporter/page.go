package exporter

import (
	"bufio"
	"bytes"
	"cmp"
	"embed"
	"fmt"
	"html"
	"html/template"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/reachd/reachd/probe"
)

//go:embed templates/*.html
var templatesFS embed.FS

var statusTemplate = template.Must(template.ParseFS(templatesFS, "templates/status.html"))

// The states a probe shows on the page and filters by.
const (
	stateUp      = "up"
	stateDown    = "down"
	statePending = "pending"
)

// Auto-refresh: the default and the bounds of ?refresh= (0 turns it off).
const (
	defaultRefresh = 30
	minRefresh     = 5
	maxRefresh     = 3600
)

// The orders of the rows: failing first (the default), or by name.
const (
	orderFailing = ""
	orderName    = "name"
)

// pageFilter is the page's query:
// ?vendor=&region=&state=&path=&reason=&order=&refresh=.
type pageFilter struct {
	Vendor, Region, State string
	Path, Reason          string // rows with a probe on that path (failing with that reason)
	Order                 string
	Refresh               int // seconds; 0: off
}

// parseFilter reads the filter from a query; unknown states and orders
// are ignored and the refresh period is clamped, so any query renders a
// page.
func parseFilter(q url.Values) pageFilter {
	f := pageFilter{Vendor: q.Get("vendor"), Region: q.Get("region"), Path: q.Get("path"), Reason: q.Get("reason"), Refresh: defaultRefresh}
	switch s := q.Get("state"); s {
	case stateUp, stateDown, statePending:
		f.State = s
	}
	if q.Get("order") == orderName {
		f.Order = orderName
	}
	if r, err := strconv.Atoi(q.Get("refresh")); err == nil {
		f.Refresh = min(max(r, minRefresh), maxRefresh)
		if r <= 0 {
			f.Refresh = 0
		}
	}
	return f
}

// query is the filter as a URL relative to the page ("./?state=down"),
// for the auto-refresh to keep.
func (f pageFilter) query() string {
	q := url.Values{}
	for k, v := range map[string]string{"vendor": f.Vendor, "region": f.Region, "state": f.State, "path": f.Path, "reason": f.Reason, "order": f.Order} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.Refresh != defaultRefresh {
		q.Set("refresh", strconv.Itoa(f.Refresh))
	}
	if len(q) == 0 {
		return "./"
	}
	return "./?" + q.Encode()
}

func (f pageFilter) active() bool {
	return f.Vendor != "" || f.Region != "" || f.State != "" || f.Path != "" || f.Reason != ""
}

// pageMeta is what the page shows besides the results.
type pageMeta struct {
	State   StateView
	Version string
	Now     time.Time
}

type pageData struct {
	Site, Version, Now       string
	Up, Down, Pending, Total int // every probe, unfiltered
	Targets, Shown           int // targets, and those the filter lets through
	ReloadOK                 bool
	ReloadTime, ReloadErr    string
	Filter                   pageFilter
	Filtered                 bool
	RefreshURL               string
	Refreshes                []int
	States                   []string
	Vendors, Regions         []string
	Summary                  pageSummary
	Groups                   []pageGroup
	// RowLink is what a link to a row starts with: "" when every row is
	// on this page, "./" (the unfiltered page) when a filter may hide it.
	RowLink string
	segs    []historySeg // every probe's series of runs, for the strips
}

type pageGroup struct {
	Vendor, Region    string
	Paths             []string // the columns: every path of the group's targets, in config order
	Up, Down, Pending int
	Verdict           *pageVerdict
	Rows              []pageRow
}

type pageRow struct {
	ID, Name, Address, Purpose string
	Down, Pending, Flapping    bool
	Cells                      []pageCell // one per group path
}

type pageCell struct {
	Path, State, Reason, Stage, Latency string
	Probed, Intercepted                 bool
	Detail, Hint, Since, For            string
	Stages                              []pageStage
	TLS                                 *pageTLS
	HTTP                                *pageHTTP
	PAC                                 *probe.PACInfo          // pac and wpad paths: what the PAC chose
	Trace                               *probe.TraceInfo        // the path trace of a failing direct probe
	Revocation                          []probe.RevocationCheck // the chain's OCSP, CRL and caIssuers URLs
	DNS                                 []pageDNS
	History                             pageHistory
}

type pageStage struct {
	Stage, Duration string
	OK              bool
}

type pageTLS struct {
	Version, Cipher, Issuer, Expiry string
	Intercepted, Expiring           bool
	Accepted                        []pageTLSVersion
}

type pageTLSVersion struct {
	Version string
	OK      bool
	Known   bool // false: the sweep could not decide this version ("?")
}

type pageHTTP struct {
	Status int
	Skew   string // "" without a Date header
	Skewed bool   // more than a minute off
}

type pageDNS struct {
	Resolver, QType, Rcode, Reason, Duration string
	Source                                   string // "hosts" or the server that answered
	Answers                                  []string
	OK                                       bool
}

// pageHistory is the kept runs: the share that passed, how often the
// state changed, and the series of runs with one outcome that the strip
// draws (segs[From:To] of the page's segments).
type pageHistory struct {
	Runs, Up, Changes int
	From, To          int
}

// historySeg is a series of consecutive runs with the same outcome: one
// bar of the strip.
type historySeg struct {
	First, Last time.Time
	At, N       int // index of the first run in the kept history; runs
	Success     bool
	Reason      probe.Reason
}

// Availability is the share of kept runs that passed, rounded down so
// that one failure never reads as 100%.
func (h pageHistory) Availability() string {
	if h.Runs == 0 {
		return ""
	}
	return strconv.Itoa(h.Up*100/h.Runs) + "%"
}

// flapChanges is how many state changes in the kept history make a probe
// flapping.
const flapChanges = 2

// Flapping reports a state that changed more than twice in the kept runs.
func (h pageHistory) Flapping() bool { return h.Changes > flapChanges }

// The history strip: barStep units per run in its viewBox, drawn
// stripWidth px wide, so that a full history fits a cell beside its
// availability and age.
const (
	barStep    = 2
	stripWidth = 80
)

// pageBuffers keep rendered pages' buffers for the next request: a page
// of a thousand targets is megabytes, and growing a new buffer to that
// size was most of its allocations.
var pageBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledPage is the largest buffer kept for reuse.
const maxPooledPage = 64 << 20

// renderStatus writes the status page: the summary, then the targets
// grouped by vendor and region, one row per target and one column per
// path, filtered by f. The matrix is written by writeGroups rather than
// by the template: at thousands of cells, template calls were most of
// the page's cost.
func renderStatus(w io.Writer, store *Store, m pageMeta, f pageFilter) error {
	d := buildPage(store, m, f)
	bw := bufio.NewWriterSize(w, 64<<10)
	if err := statusTemplate.ExecuteTemplate(bw, "top", d); err != nil {
		return err
	}
	writeGroups(bw, d)
	if err := statusTemplate.ExecuteTemplate(bw, "bottom", d); err != nil {
		return err
	}
	return bw.Flush()
}

// buildPage copies what the page shows out of the store, under its read
// lock, so the rendering runs without holding it.
func buildPage(store *Store, m pageMeta, f pageFilter) *pageData {
	st := m.State
	d := &pageData{Site: st.Site, Version: m.Version, Now: m.Now.UTC().Format("2006-01-02 15:04:05 UTC"),
		ReloadOK: st.ReloadOK, ReloadErr: st.ReloadErr, Filter: f, Filtered: f.active(),
		RefreshURL: f.query(), Refreshes: []int{0, 10, 30, 60, 300},
		States: []string{stateDown, stateUp, statePending}}
	if d.Filtered {
		d.RowLink = "./"
	}
	if !slices.Contains(d.Refreshes, f.Refresh) {
		d.Refreshes = append(d.Refreshes, f.Refresh)
		slices.Sort(d.Refreshes)
	}
	if !st.ReloadSuccess.IsZero() {
		d.ReloadTime = st.ReloadSuccess.UTC().Format(time.RFC3339)
	}
	groups := map[[2]string]*pageGroup{}
	rows := map[string]*rowBuild{}
	var order []*rowBuild // in the store's key order, so that columns come out the same every time
	vendors, regions := map[string]bool{}, map[string]bool{}
	views := make([]probeView, 0, store.Len())
	d.segs = make([]historySeg, 0, 8*store.Len())
	store.Range(func(e *Entry) {
		t := e.Target
		vendors[t.Vendor], regions[t.Region] = true, true
		c := newCell(e, m.Now, &d.segs)
		switch c.State {
		case stateUp:
			d.Up++
		case stateDown:
			d.Down++
		default:
			d.Pending++
		}
		d.Total++
		views = append(views, probeView{Target: t, Path: e.Path, State: c.State, Last: e.Last, Since: e.Since,
			Runs: c.History.Runs, Up: c.History.Up, Changes: c.History.Changes})
		rb := rows[t.ID()]
		if rb == nil {
			rb = &rowBuild{row: pageRow{ID: t.ID(), Name: t.Name, Address: t.Address(), Purpose: t.Purpose},
				group: [2]string{t.Vendor, t.Region}, order: t.Paths, cells: map[string]pageCell{}}
			rows[t.ID()] = rb
			order = append(order, rb)
			d.Targets++
		}
		rb.cells[e.Path] = c
	})
	d.Summary = summarize(views, st, st.Warnings, m.Now)
	for _, cs := range [][]pageCause{d.Summary.Causes, d.Summary.More} {
		for i := range cs {
			for j := range cs[i].Targets {
				cs[i].Targets[j].Href = d.RowLink + "#" + cs[i].Targets[j].ID
			}
		}
	}
	verdicts := map[string]*pageVerdict{}
	for _, vs := range [][]pageVerdict{d.Summary.Verdicts, d.Summary.Ready} {
		for i := range vs {
			verdicts[vs[i].ID] = &vs[i]
		}
	}
	for _, rb := range order {
		if f.Vendor != "" && f.Vendor != rb.group[0] || f.Region != "" && f.Region != rb.group[1] || !rb.matches(f) {
			continue
		}
		g := groups[rb.group]
		if g == nil {
			g = &pageGroup{Vendor: rb.group[0], Region: rb.group[1], Verdict: verdicts[rb.group[0]+"/"+rb.group[1]]}
			groups[rb.group] = g
		}
		g.Rows = append(g.Rows, rb.row)
		g.Paths = mergePaths(g.Paths, rb.paths())
	}
	for _, g := range groups {
		for i := range g.Rows {
			rb := rows[g.Rows[i].ID]
			g.Rows[i].Cells = rb.columns(g.Paths)
			for _, c := range g.Rows[i].Cells {
				switch c.State {
				case stateUp:
					g.Up++
				case stateDown:
					g.Down++
					g.Rows[i].Down = true
				case statePending:
					g.Pending++
					g.Rows[i].Pending = true
				}
				if c.History.Flapping() {
					g.Rows[i].Flapping = true
				}
			}
		}
		slices.SortFunc(g.Rows, func(a, b pageRow) int {
			if f.Order == orderFailing {
				if c := cmp.Compare(rowRank(a), rowRank(b)); c != 0 {
					return c
				}
			}
			return cmp.Compare(a.Name, b.Name)
		})
		d.Shown += len(g.Rows)
		d.Groups = append(d.Groups, *g)
	}
	slices.SortFunc(d.Groups, func(a, b pageGroup) int {
		if f.Order == orderFailing {
			if c := cmp.Compare(groupRank(a), groupRank(b)); c != 0 {
				return c
			}
		}
		return cmp.Or(cmp.Compare(a.Vendor, b.Vendor), cmp.Compare(a.Region, b.Region))
	})
	d.Vendors, d.Regions = sortedKeys(vendors), sortedKeys(regions)
	return d
}

// rowRank orders rows failing first, then flapping, then pending, then
// passing.
func rowRank(r pageRow) int {
	switch {
	case r.Down:
		return 0
	case r.Flapping:
		return 1
	case r.Pending:
		return 2
	}
	return 3
}

func groupRank(g pageGroup) int {
	switch {
	case g.Down > 0:
		return 0
	case g.Pending > 0:
		return 1
	}
	return 2
}

// rowBuild collects one target's cells, by path, before the group's
// columns are known.
type rowBuild struct {
	row   pageRow
	group [2]string // vendor, region
	order []string  // the target's configured paths
	cells map[string]pageCell
}

// paths are the target's probed paths in config order.
func (rb *rowBuild) paths() []string {
	out := make([]string, 0, len(rb.cells))
	for _, p := range rb.order {
		if _, ok := rb.cells[p]; ok {
			out = append(out, p)
		}
	}
	for p := range rb.cells { // not in the order: only if Target.Paths is unset
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// matches reports whether the row passes the filter's state, path and
// reason: some probe of the target has them all.
func (rb *rowBuild) matches(f pageFilter) bool {
	if f.State == "" && f.Path == "" && f.Reason == "" {
		return true
	}
	for _, c := range rb.cells {
		if (f.State == "" || c.State == f.State) && (f.Path == "" || c.Path == f.Path) && (f.Reason == "" || c.Reason == f.Reason) {
			return true
		}
	}
	return false
}

func (rb *rowBuild) columns(paths []string) []pageCell {
	out := make([]pageCell, len(paths))
	for i, p := range paths {
		c, ok := rb.cells[p]
		if !ok {
			c = pageCell{Path: p}
		}
		out[i] = c
	}
	return out
}

// mergePaths appends the paths of next that have is missing, keeping the
// order in which targets list them.
func mergePaths(have, next []string) []string {
	for i, p := range next {
		if slices.Contains(have, p) {
			continue
		}
		at := len(have)
		if i > 0 { // right after the path that precedes it in next
			if j := slices.Index(have, next[i-1]); j >= 0 {
				at = j + 1
			}
		}
		have = slices.Insert(have, at, p)
	}
	return have
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// newCell is one probe's cell and its expanded facts.
func newCell(e *Entry, now time.Time, segs *[]historySeg) pageCell {
	c := pageCell{Path: e.Path, Probed: true, State: statePending, History: newHistory(e.History, segs)}
	r := e.Last
	if r == nil {
		return c
	}
	c.State = stateUp
	c.Latency = latency(r.Duration)
	c.Since = string(appendStamp(make([]byte, 0, 48), e.Since)) + " (" + ago(now.Sub(e.Since)) + ")"
	c.For = age(now.Sub(e.Since))
	if r.Err != nil {
		c.State, c.Stage, c.Reason, c.Hint = stateDown, string(r.Err.Stage), string(r.Err.Reason), r.Err.Reason.Hint()
		if r.Err.Err != nil {
			c.Detail = r.Err.Err.Error()
		}
	}
	for _, s := range r.Stages {
		c.Stages = append(c.Stages, pageStage{Stage: string(s.Stage), Duration: latency(s.Duration), OK: s.Success})
	}
	if tl := r.TLS; tl != nil {
		c.TLS = newTLS(tl, now)
		c.Intercepted = tl.Intercepted && tl.Version != 0
	}
	if h := r.HTTP; h != nil {
		c.HTTP = &pageHTTP{Status: h.Status}
		if h.HasDate {
			c.HTTP.Skew = fmt.Sprintf("%+.1f s", h.ClockSkew.Seconds())
			c.HTTP.Skewed = h.ClockSkew.Abs() > time.Minute
		}
	}
	c.PAC = r.PAC
	c.Trace, c.Revocation = r.Trace, r.Revocation
	for _, q := range r.DNS {
		c.DNS = append(c.DNS, pageDNS{Resolver: q.Resolver, QType: q.QType, Rcode: q.Rcode, Reason: string(q.Reason),
			Duration: latency(q.Duration), Source: q.Source, Answers: q.Answers, OK: q.Success})
	}
	return c
}

func newTLS(tl *probe.TLSInfo, now time.Time) *pageTLS {
	out := &pageTLS{Issuer: tl.Issuer, Intercepted: tl.Intercepted}
	if tl.Version != 0 {
		out.Version, out.Cipher = probe.TLSVersionName(tl.Version), tl.Cipher
		left := tl.NotAfter.Sub(now)
		out.Expiry = tl.NotAfter.UTC().Format("2006-01-02") + " (" + days(left) + ")"
		out.Expiring = left < expiryWarning
	}
	if tl.Accepted != nil { // swept: every version, "?" where the sweep could not decide
		for _, v := range probe.TLSVersions {
			ok, known := tl.Accepted[v]
			out.Accepted = append(out.Accepted, pageTLSVersion{Version: probe.TLSVersionName(v), OK: ok, Known: known})
		}
	}
	return out
}

// newHistory sums up the kept runs and appends their series to segs,
// under the store's lock (the history changes in place); writeStrip draws
// them afterwards. Runs in a row with the same outcome share one bar.
func newHistory(h []HistoryPoint, segs *[]historySeg) pageHistory {
	ph := pageHistory{Runs: len(h), From: len(*segs)}
	for i := 0; i < len(h); {
		j := i + 1
		for j < len(h) && h[j].Success == h[i].Success && h[j].Reason == h[i].Reason {
			j++
		}
		if h[i].Success {
			ph.Up += j - i
		}
		if i > 0 && h[i].Success != h[i-1].Success {
			ph.Changes++
		}
		*segs = append(*segs, historySeg{First: h[i].Time, Last: h[j-1].Time, At: i, N: j - i, Success: h[i].Success, Reason: h[i].Reason})
		i = j
	}
	ph.To = len(*segs)
	return ph
}

// writeStrip draws the history as an inline SVG strip, in Go rather than
// in the template: at 60 bars a probe, template calls per bar made up most
// of the page's cost. The newest run is at the right edge, so the strips
// of a column line up; each bar's title names its times and outcome. The
// reason goes through html.EscapeString; the rest are numbers and times.
func writeStrip(w *pageWriter, h *pageHistory, segs []historySeg) {
	const vw = HistoryLen * barStep
	b := w.scratch[:0]
	b = append(b, `<svg class="strip" width="`+strconv.Itoa(stripWidth)+`" height="10" viewBox="0 0 `+strconv.Itoa(vw)+` 10" preserveAspectRatio="none" role="img" aria-label="the last `...)
	b = strconv.AppendInt(b, int64(h.Runs), 10)
	b = append(b, ` runs, oldest left">`...)
	off := HistoryLen - h.Runs
	for _, sg := range segs[h.From:h.To] {
		b = append(b, `<rect x="`...)
		b = strconv.AppendInt(b, int64((off+sg.At)*barStep), 10)
		b = append(b, `" width="`...)
		b = strconv.AppendInt(b, int64(sg.N*barStep), 10)
		b = append(b, `" height="10"`...)
		if !sg.Success {
			b = append(b, ` class="f"`...)
		}
		b = append(b, `><title>`...)
		b = appendStamp(b, sg.First)
		if sg.N > 1 {
			b = append(b, " – "...)
			b = appendStamp(b, sg.Last)
			b = append(b, ", "...)
			b = strconv.AppendInt(b, int64(sg.N), 10)
			b = append(b, " runs"...)
		}
		if sg.Success {
			b = append(b, " up"...)
		} else {
			b = append(b, " down: "...)
			b = append(b, html.EscapeString(string(sg.Reason))...)
		}
		b = append(b, `</title></rect>`...)
	}
	b = append(b, `</svg>`...)
	w.Write(b)
	w.scratch = b[:0]
}

// appendStamp appends t as "2006-01-02 15:04:05 UTC", without the cost
// of parsing a layout for each of the page's thousands of times.
func appendStamp(b []byte, t time.Time) []byte {
	t = t.UTC()
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	b = appendPad(b, y, 4)
	b = append(b, '-')
	b = appendPad(b, int(mo), 2)
	b = append(b, '-')
	b = appendPad(b, d, 2)
	b = append(b, ' ')
	b = appendPad(b, h, 2)
	b = append(b, ':')
	b = appendPad(b, mi, 2)
	b = append(b, ':')
	b = appendPad(b, s, 2)
	return append(b, " UTC"...)
}

func appendPad(b []byte, v, width int) []byte {
	var buf [8]byte
	i := len(buf)
	for {
		i--
		buf[i] = byte('0' + v%10)
		v /= 10
		width--
		if v == 0 && width <= 0 || i == 0 {
			break
		}
	}
	return append(b, buf[i:]...)
}

// latency is a duration as people read it on the page: "0.4 ms", "42 ms", "1.25 s".
func latency(d time.Duration) string {
	switch {
	case d < 10*time.Millisecond:
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + " ms"
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + " ms"
	default:
		return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) + " s"
	}
}

// ago is a rough age: "12 s ago", "5 min ago", "3 h ago", "2 d ago".
func ago(d time.Duration) string {
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return strconv.Itoa(int(d.Seconds())) + " s ago"
	case d < time.Hour:
		return strconv.Itoa(int(d.Minutes())) + " min ago"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d.Hours())) + " h ago"
	default:
		return strconv.Itoa(int(d.Hours()/24)) + " d ago"
	}
}

func days(d time.Duration) string {
	if d < 0 {
		return "expired " + strconv.Itoa(int(-d.Hours()/24)) + " d ago"
	}
	return "in " + strconv.Itoa(int(d.Hours()/24)) + " d"
}

// age is how long a state has lasted, short: "42 s", "9 min", "3 h", "2 d".
func age(d time.Duration) string {
	switch {
	case d < 0:
		return "0 s"
	case d < time.Minute:
		return strconv.Itoa(int(d.Seconds())) + " s"
	case d < time.Hour:
		return strconv.Itoa(int(d.Minutes())) + " min"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d.Hours())) + " h"
	default:
		return strconv.Itoa(int(d.Hours()/24)) + " d"
	}
}

// pageWriter writes the matrix. Every string that comes from a config,
// a result or a query goes through esc (html.EscapeString: & < > ' ");
// attributes are always double-quoted.
type pageWriter struct {
	*bufio.Writer
	segs    []historySeg // the history strips' series of runs
	scratch []byte
}

func (w *pageWriter) esc(s string) { w.WriteString(html.EscapeString(s)) }

// breakable writes a host:port escaped, with a line-break opportunity
// after each dot and before the port, so that a long name wraps between
// its labels rather than inside one.
func (w *pageWriter) breakable(s string) {
	for {
		i := strings.IndexAny(s, ".:")
		if i < 0 {
			w.esc(s)
			return
		}
		if s[i] == ':' {
			w.esc(s[:i])
			w.WriteString("<wbr>:")
		} else {
			w.esc(s[:i+1])
			w.WriteString("<wbr>")
		}
		s = s[i+1:]
	}
}

// s writes the parts one after another, without joining them first.
func (w *pageWriter) s(parts ...string) {
	for _, p := range parts {
		w.WriteString(p)
	}
}

// attr writes ` name="value"`, value escaped.
func (w *pageWriter) attr(name, value string) {
	w.WriteByte(' ')
	w.WriteString(name)
	w.WriteString(`="`)
	w.esc(value)
	w.WriteByte('"')
}

// writeGroups writes one section per vendor and region: its verdict, a
// header row with its paths, one row per target.
func writeGroups(bw *bufio.Writer, d *pageData) {
	w := &pageWriter{Writer: bw, segs: d.segs, scratch: make([]byte, 0, 4096)}
	if len(d.Groups) == 0 {
		w.WriteString(`<div class="empty">`)
		if d.Filtered {
			w.WriteString(`No target matches these filters. <a href="./">Show all</a>`)
		} else {
			w.WriteString(`No probes are configured: add [[use]] or [[target]] entries to the config.`)
		}
		w.WriteString("</div>\n")
		return
	}
	for i := range d.Groups {
		g := &d.Groups[i]
		w.WriteString(`<section class="group"`)
		w.attr("id", g.Vendor+"/"+g.Region)
		w.attr("data-vendor", g.Vendor)
		w.attr("data-region", g.Region)
		w.s(` style="--cols: `, strconv.Itoa(len(g.Paths)), `">`, "\n<h2><span>")
		w.esc(g.Vendor)
		w.WriteString(` <span class="sep">/</span> `)
		w.esc(g.Region)
		w.WriteString(`</span>`)
		if g.Down > 0 {
			w.s(`<span class="chip down small">`, strconv.Itoa(g.Down), ` down</span>`)
		}
		if g.Up > 0 {
			w.s(`<span class="chip up small">`, strconv.Itoa(g.Up), ` up</span>`)
		}
		if g.Pending > 0 {
			w.s(`<span class="chip small">`, strconv.Itoa(g.Pending), ` pending</span>`)
		}
		if v := g.Verdict; v != nil {
			w.s(`<span class="verdict `, v.Level, `">`)
			w.esc(v.Text)
			w.WriteString(`</span>`)
		}
		w.s("</h2>\n", `<div class="scroll"><div class="matrix">`, "\n", `<div class="grid colhead"><div>target</div>`)
		for _, p := range g.Paths {
			w.WriteString(`<div class="pathhead"`)
			w.attr("data-path", p)
			w.WriteByte('>')
			w.esc(p)
			w.WriteString(`</div>`)
		}
		w.WriteString("</div>\n")
		for j := range g.Rows {
			writeRow(w, &g.Rows[j])
		}
		w.WriteString("</div></div>\n</section>\n")
	}
}

func writeRow(w *pageWriter, r *pageRow) {
	w.WriteString(`<details class="row"`)
	w.attr("id", r.ID)
	w.attr("data-target", r.ID)
	if r.Down {
		w.WriteString(" data-down")
	}
	w.s(">\n", `<summary class="grid">`, "\n", `<div class="target"><div><span class="name">`)
	w.esc(r.Name)
	w.WriteString(`</span><span class="addr mono">`)
	w.breakable(r.Address)
	w.WriteString("</span></div></div>\n")
	for i := range r.Cells {
		writeCell(w, &r.Cells[i])
	}
	w.s("</summary>\n", `<div class="more">`, "\n")
	if r.Purpose != "" {
		w.WriteString(`<p class="muted purpose">`)
		w.esc(r.Purpose)
		w.WriteString("</p>\n")
	}
	for i := range r.Cells {
		if r.Cells[i].Probed {
			writePanel(w, &r.Cells[i])
		}
	}
	w.WriteString("</div>\n</details>\n")
}

// writeCell is one probe at a glance: state, latency, reason, tags, the
// history strip, the availability and how long the state has lasted.
func writeCell(w *pageWriter, c *pageCell) {
	if !c.Probed {
		w.WriteString(`<div class="cell none"`)
		w.attr("data-path", c.Path)
		w.s(` title="not probed on this path">—</div>`, "\n")
		return
	}
	h := &c.History
	w.s(`<div class="cell `, c.State, `"`)
	w.attr("data-path", c.Path)
	w.s(` data-state="`, c.State, `"`)
	if c.Reason != "" {
		w.attr("data-reason", c.Reason)
	}
	if h.Flapping() {
		w.WriteString(" data-flapping")
	}
	w.s(">\n", `<span class="pname">`)
	w.esc(c.Path)
	w.s(`</span> <span class="state">`, c.State, `</span>`)
	if c.Intercepted {
		w.WriteString(` <span class="tag" title="the chain anchors in a private CA: TLS inspection">intercepted</span>`)
	}
	if h.Flapping() {
		w.s(` <span class="tag flap" title="the state changed `, strconv.Itoa(h.Changes), ` times in the last `, strconv.Itoa(h.Runs), ` runs">flapping</span>`)
	}
	if c.Latency != "" {
		w.s(` <span class="lat">`, c.Latency, `</span>`)
	}
	w.WriteByte('\n')
	if c.Reason != "" {
		w.WriteString(`<code class="reason">`)
		w.esc(c.Reason)
		w.WriteString("</code>\n")
	}
	w.WriteString(`<div class="hist">`)
	if h.Runs == 0 {
		w.WriteString(`<span class="muted">no run has finished yet</span>`)
	} else {
		writeStrip(w, h, w.segs)
		w.s(`<span class="avail" title="`, strconv.Itoa(h.Up), ` of `, strconv.Itoa(h.Runs), ` kept runs passed">`, h.Availability(), `</span>`)
		w.WriteString(` <span class="for"`)
		w.attr("title", c.State+" since "+c.Since)
		w.s(`>for `, c.For, `</span>`)
	}
	w.WriteString("</div>\n</div>\n")
}

// writePanel is one probe's facts in the expanded row.
func writePanel(w *pageWriter, c *pageCell) {
	w.WriteString(`<div class="panel"`)
	w.attr("data-path", c.Path)
	w.WriteString(">\n<h3><span>")
	w.esc(c.Path)
	cls := "muted"
	switch c.State {
	case stateUp:
		cls = "yes"
	case stateDown:
		cls = "no"
	}
	w.s(`</span> <span class="`, cls, `">`, c.State, `</span>`)
	if c.Since != "" {
		w.WriteString(`<span class="since">since `)
		w.esc(c.Since)
		w.WriteString(`</span>`)
	}
	w.WriteString("</h3>\n")
	if c.State == statePending {
		w.s(`<p class="muted">No run has finished yet.</p>`, "\n")
	}
	if len(c.Stages) > 0 {
		w.WriteString(`<ul class="stages">`)
		for _, s := range c.Stages {
			if s.OK {
				w.WriteString(`<li>`)
			} else {
				w.WriteString(`<li class="fail">`)
			}
			w.esc(s.Stage)
			w.s(`<span>`, s.Duration, `</span></li>`)
		}
		w.WriteString("</ul>\n")
	}
	if c.Reason != "" {
		w.WriteString(`<div>failed at <strong>`)
		w.esc(c.Stage)
		w.WriteString(`</strong>: <code>`)
		w.esc(c.Reason)
		w.WriteString("</code></div>\n")
		if c.Detail != "" {
			w.WriteString(`<pre class="detail">`)
			w.esc(c.Detail)
			w.WriteString("</pre>\n")
		}
		w.WriteString(`<div class="hint">`)
		w.esc(c.Hint)
		w.WriteString("</div>\n")
	}
	if c.TLS != nil || c.HTTP != nil {
		w.s(`<dl class="facts">`, "\n")
		if t := c.TLS; t != nil {
			if t.Version != "" {
				w.s(`<dt>TLS</dt><dd>`, t.Version, ` <span class="mono">`)
				w.esc(t.Cipher)
				w.WriteString("</span></dd>\n")
			}
			if len(t.Accepted) > 0 {
				w.WriteString(`<dt>versions</dt><dd>`)
				for _, v := range t.Accepted {
					if !v.Known {
						w.s(`<span class="muted" title="TLS `, v.Version, ` alone: undecided (a timeout or a failure that is not a version rejection)">`, v.Version, ` ?</span> `)
					} else if v.OK {
						w.s(`<span class="yes" title="TLS `, v.Version, ` alone: accepted">`, v.Version, ` ✓</span> `)
					} else {
						w.s(`<span class="muted" title="TLS `, v.Version, ` alone: refused">`, v.Version, ` ✗</span> `)
					}
				}
				w.WriteString("</dd>\n")
			}
			if t.Version != "" {
				w.WriteString(`<dt>issuer</dt><dd>`)
				w.esc(t.Issuer)
				w.WriteString("</dd>\n<dt>intercepted</dt><dd>")
				if t.Intercepted {
					w.WriteString(`<span class="warn">yes — the chain anchors in a private CA (TLS inspection)</span>`)
				} else {
					w.WriteString("no")
				}
				w.WriteString("</dd>\n<dt>expires</dt><dd")
				if t.Expiring {
					w.WriteString(` class="warn"`)
				}
				w.s(">", t.Expiry, "</dd>\n")
			}
		}
		if h := c.HTTP; h != nil {
			w.s(`<dt>HTTP</dt><dd>status `, strconv.Itoa(h.Status), "</dd>\n")
			if h.Skew != "" {
				w.WriteString(`<dt>clock skew</dt><dd`)
				if h.Skewed {
					w.WriteString(` class="warn"`)
				}
				w.s(">", h.Skew, "</dd>\n")
			}
		}
		w.WriteString("</dl>\n")
	}
	if p := c.PAC; p != nil {
		w.WriteString(`<dl class="facts"><dt>PAC</dt><dd class="mono">`)
		w.esc(p.Source)
		w.WriteString("</dd>")
		if p.Answer != "" {
			w.WriteString(`<dt>answer</dt><dd class="mono">`)
			w.esc(p.Answer)
			w.WriteString("</dd>")
		}
		w.WriteString(`<dt>carried by</dt><dd class="mono">`)
		w.esc(cmp.Or(p.Used, "none"))
		if p.Fallback {
			w.WriteString(` <span class="warn">(a fallback: the first choice could not be reached)</span>`)
		}
		w.WriteString("</dd>")
		if p.FetchError != "" {
			w.WriteString(`<dt>refetch</dt><dd class="warn">`)
			w.esc(p.FetchError)
			w.WriteString(" (the last good copy is in use)</dd>")
		}
		w.WriteString("</dl>\n")
	}
	writeTraceFacts(w, c.Trace)
	writeRevocationFacts(w, c.Revocation)
	if len(c.DNS) > 0 {
		w.s(`<table class="dns"><thead><tr><th>resolver</th><th>type</th><th>rcode</th><th>answers</th><th>time</th></tr></thead><tbody>`, "\n")
		for _, q := range c.DNS {
			w.WriteString(`<tr><td>`)
			w.esc(q.Resolver)
			w.WriteString(`</td><td>`)
			w.esc(q.QType)
			if q.OK {
				w.WriteString(`</td><td class="yes">`)
			} else {
				w.WriteString(`</td><td class="no">`)
			}
			if q.Rcode != "" {
				w.esc(q.Rcode)
			} else {
				w.WriteString("no answer")
			}
			if q.Reason != "" {
				w.WriteString(` <code>`)
				w.esc(q.Reason)
				w.WriteString(`</code>`)
			}
			if q.Source != "" {
				w.WriteString(` <span class="muted">from `)
				w.esc(q.Source)
				w.WriteString(`</span>`)
			}
			w.WriteString(`</td><td class="mono">`)
			for i, a := range q.Answers {
				if i > 0 {
					w.WriteString(", ")
				}
				w.esc(a)
			}
			if len(q.Answers) == 0 {
				w.WriteString(`<span class="muted">none</span>`)
			}
			w.s(`</td><td>`, q.Duration, "</td></tr>\n")
		}
		w.WriteString("</tbody></table>\n")
	}
	h := &c.History
	w.WriteString(`<div class="histline">`)
	if h.Runs == 0 {
		w.WriteString(`<span>no runs yet</span>`)
	} else {
		w.WriteString(`<span>` + strconv.Itoa(h.Up) + ` of the last ` + strconv.Itoa(h.Runs) + ` runs passed (` + h.Availability() + `); the state changed ` +
			strconv.Itoa(h.Changes) + ` times`)
		if h.Flapping() {
			w.WriteString(` — <span class="warn">flapping</span>`)
		}
		w.WriteString(`</span>`)
	}
	w.WriteString("</div>\n</div>\n")
}
