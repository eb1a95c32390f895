package exporter

import (
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

// pageFilter is the page's query: ?vendor=&region=&state=&refresh=.
type pageFilter struct {
	Vendor, Region, State string
	Refresh               int // seconds; 0: off
}

// parseFilter reads the filter from a query; unknown states are ignored
// and the refresh period is clamped, so any query renders a page.
func parseFilter(q url.Values) pageFilter {
	f := pageFilter{Vendor: q.Get("vendor"), Region: q.Get("region"), Refresh: defaultRefresh}
	switch s := q.Get("state"); s {
	case stateUp, stateDown, statePending:
		f.State = s
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
	for k, v := range map[string]string{"vendor": f.Vendor, "region": f.Region, "state": f.State} {
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

func (f pageFilter) active() bool { return f.Vendor != "" || f.Region != "" || f.State != "" }

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
	Groups                   []pageGroup
}

type pageGroup struct {
	Vendor, Region    string
	Paths             []string // the columns: every path of the group's targets, in config order
	Up, Down, Pending int
	Rows              []pageRow
}

type pageRow struct {
	ID, Name, Address, Purpose string
	Down                       bool
	Cells                      []pageCell // one per group path
}

type pageCell struct {
	Path, State, Reason, Stage, Latency string
	Probed, Intercepted                 bool
	Detail, Hint, Since                 string
	Stages                              []pageStage
	TLS                                 *pageTLS
	HTTP                                *pageHTTP
	PAC                                 *probe.PACInfo // pac and wpad paths: what the PAC chose
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
}

type pageHTTP struct {
	Status int
	Skew   string // "" without a Date header
	Skewed bool   // more than a minute off
}

type pageDNS struct {
	Resolver, QType, Rcode, Reason, Duration string
	Answers                                  []string
	OK                                       bool
}

// pageHistory is the recent runs as an inline SVG strip: a bar per run,
// green or red, with a title that names its time and outcome.
type pageHistory struct {
	Runs int
	SVG  template.HTML
}

const barStep = 5 // px per run in the history strip: a 4 px bar and a 1 px gap

// pageBuffers keep rendered pages' buffers for the next request: a page
// of a thousand targets is megabytes, and growing a new buffer to that
// size was most of its allocations.
var pageBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledPage is the largest buffer kept for reuse.
const maxPooledPage = 64 << 20

// renderStatus writes the status page: the targets grouped by vendor and
// region, one row per target and one column per path, filtered by f.
func renderStatus(w io.Writer, store *Store, m pageMeta, f pageFilter) error {
	return statusTemplate.Execute(w, buildPage(store, m, f))
}

// buildPage copies what the page shows out of the store, under its read
// lock, so the template runs without holding it.
func buildPage(store *Store, m pageMeta, f pageFilter) *pageData {
	st := m.State
	d := &pageData{Site: st.Site, Version: m.Version, Now: m.Now.UTC().Format("2006-01-02 15:04:05 UTC"),
		ReloadOK: st.ReloadOK, ReloadErr: st.ReloadErr, Filter: f, Filtered: f.active(),
		RefreshURL: f.query(), Refreshes: []int{0, 10, 30, 60, 300},
		States: []string{stateDown, stateUp, statePending}}
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
	store.Range(func(e *Entry) {
		t := e.Target
		vendors[t.Vendor], regions[t.Region] = true, true
		c := newCell(e, m.Now)
		switch c.State {
		case stateUp:
			d.Up++
		case stateDown:
			d.Down++
		default:
			d.Pending++
		}
		d.Total++
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
	for _, rb := range order {
		if f.Vendor != "" && f.Vendor != rb.group[0] || f.Region != "" && f.Region != rb.group[1] || !rb.matches(f.State) {
			continue
		}
		g := groups[rb.group]
		if g == nil {
			g = &pageGroup{Vendor: rb.group[0], Region: rb.group[1]}
			groups[rb.group] = g
		}
		g.Rows = append(g.Rows, rb.row)
		g.Paths = mergePaths(g.Paths, rb.paths())
	}
	for _, g := range groups {
		slices.SortFunc(g.Rows, func(a, b pageRow) int { return cmp.Compare(a.Name, b.Name) })
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
				}
			}
		}
		d.Shown += len(g.Rows)
		d.Groups = append(d.Groups, *g)
	}
	slices.SortFunc(d.Groups, func(a, b pageGroup) int {
		return cmp.Or(cmp.Compare(a.Vendor, b.Vendor), cmp.Compare(a.Region, b.Region))
	})
	d.Vendors, d.Regions = sortedKeys(vendors), sortedKeys(regions)
	return d
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

func (rb *rowBuild) matches(state string) bool {
	if state == "" {
		return true
	}
	for _, c := range rb.cells {
		if c.State == state {
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
func newCell(e *Entry, now time.Time) pageCell {
	c := pageCell{Path: e.Path, Probed: true, State: statePending, History: newHistory(e.History)}
	r := e.Last
	if r == nil {
		return c
	}
	c.State = stateUp
	c.Latency = latency(r.Duration)
	c.Since = e.Since.UTC().Format("2006-01-02 15:04:05 UTC") + " (" + ago(now.Sub(e.Since)) + ")"
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
	for _, q := range r.DNS {
		c.DNS = append(c.DNS, pageDNS{Resolver: q.Resolver, QType: q.QType, Rcode: q.Rcode, Reason: string(q.Reason),
			Duration: latency(q.Duration), Answers: q.Answers, OK: q.Success})
	}
	return c
}

func newTLS(tl *probe.TLSInfo, now time.Time) *pageTLS {
	out := &pageTLS{Issuer: tl.Issuer, Intercepted: tl.Intercepted}
	if tl.Version != 0 {
		out.Version, out.Cipher = probe.TLSVersionName(tl.Version), tl.Cipher
		left := tl.NotAfter.Sub(now)
		out.Expiry = tl.NotAfter.UTC().Format("2006-01-02") + " (" + days(left) + ")"
		out.Expiring = left < 14*24*time.Hour
	}
	vs := make([]uint16, 0, len(tl.Accepted))
	for v := range tl.Accepted {
		vs = append(vs, v)
	}
	slices.Sort(vs)
	for _, v := range vs {
		out.Accepted = append(out.Accepted, pageTLSVersion{Version: probe.TLSVersionName(v), OK: tl.Accepted[v]})
	}
	return out
}

// newHistory draws the strip in Go rather than in the template: at 60 bars
// a probe, template calls per bar made up most of the page's cost. Every
// string in it goes through html.EscapeString; the rest are integers.
func newHistory(h []HistoryPoint) pageHistory {
	if len(h) == 0 {
		return pageHistory{}
	}
	var b strings.Builder
	b.Grow(100 + 80*len(h))
	w := strconv.Itoa(len(h) * barStep)
	b.WriteString(`<svg class="strip" width="` + w + `" height="18" viewBox="0 0 ` + w + ` 18" role="img" aria-label="recent runs, oldest first">`)
	var ts [32]byte
	for i, p := range h {
		b.WriteString(`<rect x="`)
		b.WriteString(strconv.Itoa(i * barStep))
		b.WriteString(`" width="4" height="18"`)
		if !p.Success {
			b.WriteString(` class="f"`)
		}
		b.WriteString(`><title>`)
		b.Write(p.Time.UTC().AppendFormat(ts[:0], "2006-01-02 15:04:05 UTC"))
		if p.Success {
			b.WriteString(" up")
		} else {
			b.WriteString(" down: ")
			b.WriteString(html.EscapeString(string(p.Reason)))
		}
		b.WriteString(`</title></rect>`)
	}
	b.WriteString(`</svg>`)
	return pageHistory{Runs: len(h), SVG: template.HTML(b.String())}
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
