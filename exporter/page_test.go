package exporter

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/reachd/reachd/probe"
	"github.com/reachd/reachd/targets"
)

// pageProbe is a configured probe for the page tests: a target over one
// of its paths.
type pageProbe struct {
	t    *targets.Target
	path string
}

func (p pageProbe) Key() string             { return p.t.ID() + "/" + p.path }
func (p pageProbe) Version() string         { return "v1" }
func (p pageProbe) Target() *targets.Target { return p.t }
func (p pageProbe) Path() string            { return p.path }

func pageTarget(vendor, region, name string, paths ...string) *targets.Target {
	return &targets.Target{Vendor: vendor, Region: region, Name: name, Host: name + ".reachd.test", Port: 443,
		Checks: []string{"dns", "tcp", "tls", "http"}, Paths: paths, Interval: time.Minute, Timeout: 10 * time.Second}
}

func upResult(t *targets.Target, path string, start time.Time) probe.Result {
	return probe.Result{Target: t, Path: path, Start: start, Duration: 42 * time.Millisecond,
		Stages: []probe.StageResult{{Stage: probe.StageDNS, Success: true, Duration: 3 * time.Millisecond}, {Stage: probe.StageTCP, Success: true, Duration: 5 * time.Millisecond},
			{Stage: probe.StageTLS, Success: true, Duration: 20 * time.Millisecond}, {Stage: probe.StageHTTP, Success: true, Duration: 14 * time.Millisecond}},
		TLS: &probe.TLSInfo{Version: 0x0304, Cipher: "TLS_AES_128_GCM_SHA256", Issuer: "Public Root R1", NotAfter: start.Add(80 * 24 * time.Hour),
			Accepted: map[uint16]bool{0x0301: false, 0x0302: false, 0x0303: true, 0x0304: true}},
		HTTP: &probe.HTTPInfo{Status: 401, ClockSkew: 300 * time.Millisecond, HasDate: true},
		DNS: []probe.DNSResult{{Resolver: "corp", QType: "A", Success: true, Rcode: "NOERROR", Answers: []string{"203.0.113.7", "203.0.113.8"}, Duration: 2 * time.Millisecond},
			{Resolver: "corp", QType: "AAAA", Success: true, Rcode: "NOERROR", Duration: 2 * time.Millisecond}}}
}

func downResult(t *targets.Target, path string, start time.Time, reason probe.Reason, detail string) probe.Result {
	return probe.Result{Target: t, Path: path, Start: start, Duration: 3 * time.Millisecond,
		Err:    &probe.Error{Stage: reason.Stage(), Reason: reason, Err: errors.New(detail)},
		Stages: []probe.StageResult{{Stage: reason.Stage(), Duration: 3 * time.Millisecond}}}
}

// pageStore is a site with passing, failing and pending probes over two
// paths, each with a few runs of history.
func pageStore(t testing.TB) *Store {
	t.Helper()
	good := pageTarget("acme", "jp", "api", "direct", "corp-proxy")
	gone := pageTarget("acme", "jp", "telemetry", "direct", "corp-proxy")
	solo := pageTarget("globex", "eu", "ingest", "direct")
	fresh := pageTarget("globex", "eu", "fresh", "direct")
	s := NewStore()
	Sync(s, []pageProbe{{good, "direct"}, {good, "corp-proxy"}, {gone, "direct"}, {gone, "corp-proxy"}, {solo, "direct"}, {fresh, "direct"}})
	for i := range 5 {
		at := t0.Add(time.Duration(i) * time.Minute)
		s.Record(good.ID()+"/direct", upResult(good, "direct", at))
		s.Record(good.ID()+"/corp-proxy", downResult(good, "corp-proxy", at, probe.ProxyAuthRequired, "proxy 127.0.0.1:3128 answered 407, offering Basic"))
		s.Record(gone.ID()+"/direct", downResult(gone, "direct", at, probe.DNSNXDomain, "NXDOMAIN from 127.0.0.1:53"))
		s.Record(gone.ID()+"/corp-proxy", downResult(gone, "corp-proxy", at, probe.ProxyAuthRequired, "proxy answered 407"))
		if i%2 == 0 {
			s.Record(solo.ID()+"/direct", upResult(solo, "direct", at))
		} else {
			s.Record(solo.ID()+"/direct", downResult(solo, "direct", at, probe.TLSUntrustedCA, "the chain ends in Rogue CA"))
		}
	}
	return s
}

func render(t testing.TB, s *Store, st StateView, query string) string {
	t.Helper()
	q, err := url.ParseQuery(query)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := renderStatus(&buf, s, pageMeta{State: st, Version: "1.2.3", Now: t0.Add(10 * time.Minute)}, parseFilter(q)); err != nil {
		t.Fatal(err)
	}
	if dump := os.Getenv("REACHD_PAGE_DUMP"); dump != "" { // for looking at the page while working on it
		os.WriteFile(dump, buf.Bytes(), 0o644)
	}
	return buf.String()
}

var loaded = StateView{Site: "osaka-branch", ReloadOK: true, ReloadSuccess: t0, Ready: true}

// elements parses a page and returns the elements matching sel, written
// "tag", "tag.class" or "tag[attr=value]".
func elements(t testing.TB, page, sel string) []*html.Node {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	tag, cond, _ := strings.Cut(sel, ".")
	attr, val := "class", cond
	if i := strings.IndexByte(sel, '['); i >= 0 {
		tag, cond = sel[:i], strings.Trim(sel[i:], "[]")
		attr, val, _ = strings.Cut(cond, "=")
	}
	var out []*html.Node
	for n := range doc.Descendants() {
		if n.Type != html.ElementNode || n.Data != tag {
			continue
		}
		if cond == "" || hasAttr(n, attr, val) {
			out = append(out, n)
		}
	}
	return out
}

func hasAttr(n *html.Node, key, val string) bool {
	for _, a := range n.Attr {
		if a.Key == key && (val == "" || a.Val == val || key == "class" && strings.Contains(" "+a.Val+" ", " "+val+" ")) {
			return true
		}
	}
	return false
}

func text(n *html.Node) string {
	var b strings.Builder
	for d := range n.Descendants() {
		if d.Type == html.TextNode {
			b.WriteString(d.Data)
		}
	}
	return b.String()
}

func TestStatusPageMatrix(t *testing.T) {
	page := render(t, pageStore(t), loaded, "")
	if got := text(elements(t, page, "span[id=site]")[0]); got != "osaka-branch" {
		t.Errorf("site %q", got)
	}
	counts := text(elements(t, page, "div[id=counts]")[0])
	for _, want := range []string{"2 up", "3 down", "1 pending", "6 probes · 4 targets"} {
		if !strings.Contains(strings.Join(strings.Fields(counts), " "), want) {
			t.Errorf("counts %q lack %q", counts, want)
		}
	}
	groups := elements(t, page, "section.group")
	if len(groups) != 2 || !hasAttr(groups[0], "data-vendor", "acme") || !hasAttr(groups[1], "data-vendor", "globex") {
		t.Fatalf("%d groups, want acme/jp then globex/eu", len(groups))
	}
	// One column per path, in the targets' order; a target's paths side by side.
	if head := text(elements(t, page, "div.colhead")[0]); head != "targetdirectcorp-proxy" {
		t.Errorf("acme/jp columns %q", head)
	}
	row := elements(t, page, "details[id=acme/jp/api]")
	if len(row) != 1 {
		t.Fatal("no row for acme/jp/api")
	}
	var cells []string
	for c := range row[0].Descendants() {
		if c.Type == html.ElementNode && hasAttr(c, "class", "cell") {
			cells = append(cells, strings.Join(strings.Fields(textNoSVG(c)), " "))
		}
	}
	// State, latency, reason; the availability over the kept runs and how
	// long the state has lasted.
	if want := []string{"direct up 42 ms 100% for 9 min", "corp-proxy down 3.0 ms proxy_auth_required 0% for 9 min"}; fmt.Sprint(cells) != fmt.Sprint(want) {
		t.Errorf("api cells %q, want %q", cells, want)
	}
	// ingest alternates up and down: four changes in five runs is flapping.
	ingest := elements(t, page, "div[data-flapping]")
	if len(ingest) != 1 || !hasAttr(ingest[0], "data-path", "direct") || !strings.Contains(textNoSVG(ingest[0]), "flapping") || !strings.Contains(textNoSVG(ingest[0]), "60%") {
		t.Errorf("flapping cells: %d", len(ingest))
	}
	if n := len(elements(t, page, "div[data-reason=proxy_auth_required]")); n != 2 {
		t.Errorf("%d proxy_auth_required cells, want 2", n)
	}
	// A target without a path has an empty cell there; a pending one says so.
	if head := text(elements(t, page, "div.colhead")[1]); head != "targetdirect" {
		t.Errorf("globex/eu columns %q", head)
	}
	if c := elements(t, page, "details[id=globex/eu/fresh]"); len(c) != 1 || !strings.Contains(text(c[0]), "No run has finished yet") {
		t.Error("the pending probe's row")
	}
	all := strings.Join(strings.Fields(text(elements(t, page, "main")[0])), " ")
	for _, want := range []string{
		"failed at proxy: proxy_auth_required", probe.ProxyAuthRequired.Hint(), "answered 407, offering Basic", // stage, hint, detail
		"TLS_AES_128_GCM_SHA256", "Public Root R1", "2027-02-10 (in 79 d)", "status 401", "+0.3 s", // TLS and HTTP facts
		"203.0.113.7, 203.0.113.8", "since 2026-11-22 06:00:00 UTC (9 min ago)", // DNS answers, last change
	} {
		if !strings.Contains(all, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	// The summary: the causes, worst first, each linking to its rows; the
	// verdict per vendor region; the one warning: ingest flaps.
	var causes []string
	for _, n := range elements(t, page, "li.cause") {
		causes = append(causes, strings.Join(strings.Fields(text(elements(t, renderNode(t, n), "div.what")[0])), " "))
	}
	want := []string{
		"all 2 probes on corp-proxy fail at proxy with proxy_auth_required since 2026-11-22 06:00 UTC (9 min ago)",
		"1 of 4 probes on direct fail at dns with dns_nxdomain: resolver 127.0.0.1:53 answers NXDOMAIN since 2026-11-22 06:00 UTC (9 min ago)",
	}
	if fmt.Sprint(causes) != fmt.Sprint(want) {
		t.Errorf("causes\n%q\nwant\n%q", causes, want)
	}
	if links := elements(t, page, "a[href=#acme/jp/telemetry]"); len(links) != 2 { // from both its causes
		t.Errorf("%d links to the telemetry row, want 2", len(links))
	}
	verdicts := strings.Join(strings.Fields(text(elements(t, page, "ul[id=verdicts]")[0])), " ")
	if !strings.Contains(verdicts, "acme / jp: not fully reachable on any path corp-proxy 0/2 up · direct 1/2 up") || !strings.Contains(verdicts, "globex / eu: not fully reachable on any path direct 1/2 up") {
		t.Errorf("verdicts %q", verdicts)
	}
	if w := elements(t, page, "li[data-kind]"); len(w) != 1 || !strings.Contains(text(w[0]), "globex/eu/ingest on direct is up now but changed state 4 times in its last 5 runs (60% passed)") {
		t.Errorf("warnings: want only ingest flapping, got %d", len(w))
	}
	// The history strip: a bar per series of runs with the same outcome,
	// red for failures, a title each naming their times and outcome.
	strip := elements(t, page, "svg.strip")
	if len(strip) != 5 {
		t.Fatalf("%d history strips, want 5 (the pending probe has none)", len(strip))
	}
	var bars, red int
	var titles []string
	for _, n := range elements(t, page, "rect") {
		bars++
		if hasAttr(n, "class", "f") {
			red++
		}
		titles = append(titles, text(n))
	}
	all = strings.Join(titles, "\n")
	if bars != 9 || red != 5 || !strings.Contains(all, "2026-11-22 06:01:00 UTC down: tls_untrusted_ca") ||
		!strings.Contains(all, "2026-11-22 06:00:00 UTC – 2026-11-22 06:04:00 UTC, 5 runs down: proxy_auth_required") {
		t.Errorf("%d bars, %d red, titles %q", bars, red, titles)
	}
}

// renderNode renders n back to HTML, to query inside it.
func renderNode(t testing.TB, n *html.Node) string {
	var b bytes.Buffer
	if err := html.Render(&b, n); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// textNoSVG is the text of n without the history strip's titles.
func textNoSVG(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "svg" {
			return
		}
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return b.String()
}

// TestStatusPageOrder: failing rows and groups come first by default,
// alphabetical with ?order=name.
func TestStatusPageOrder(t *testing.T) {
	a1, a2 := pageTarget("alpha", "x", "a1", "direct"), pageTarget("alpha", "x", "a2", "direct")
	z1, z2, z3 := pageTarget("zulu", "y", "z1", "direct"), pageTarget("zulu", "y", "z2", "direct"), pageTarget("zulu", "y", "z3", "direct")
	s := NewStore()
	Sync(s, []pageProbe{{a1, "direct"}, {a2, "direct"}, {z1, "direct"}, {z2, "direct"}, {z3, "direct"}})
	for _, tg := range []*targets.Target{a1, a2, z1} {
		s.Record(tg.ID()+"/direct", upResult(tg, "direct", t0))
	}
	s.Record(z2.ID()+"/direct", downResult(z2, "direct", t0, probe.TCPRefused, "connection refused"))
	rows := func(query string) string {
		var ids []string
		for _, n := range elements(t, render(t, s, loaded, query), "details.row") {
			for _, a := range n.Attr {
				if a.Key == "id" {
					ids = append(ids, a.Val)
				}
			}
		}
		return fmt.Sprint(ids)
	}
	if got, want := rows(""), "[zulu/y/z2 zulu/y/z3 zulu/y/z1 alpha/x/a1 alpha/x/a2]"; got != want {
		t.Errorf("failing first: %s, want %s", got, want)
	}
	if got, want := rows("order=name"), "[alpha/x/a1 alpha/x/a2 zulu/y/z1 zulu/y/z2 zulu/y/z3]"; got != want {
		t.Errorf("by name: %s, want %s", got, want)
	}
	if got, want := rows("path=direct&reason=tcp_refused"), "[zulu/y/z2]"; got != want {
		t.Errorf("a cause's link: %s, want %s", got, want)
	}
}

func TestStatusPageFilters(t *testing.T) {
	s := pageStore(t)
	rows := func(query string) []string {
		var ids []string
		for _, n := range elements(t, render(t, s, loaded, query), "details.row") {
			for _, a := range n.Attr {
				if a.Key == "id" {
					ids = append(ids, a.Val)
				}
			}
		}
		return ids
	}
	tests := []struct{ query, want string }{
		{"", "[acme/jp/api acme/jp/telemetry globex/eu/ingest globex/eu/fresh]"}, // down, then flapping (ingest), then pending
		{"state=down", "[acme/jp/api acme/jp/telemetry]"},                        // ingest is up on its last run
		{"state=up", "[acme/jp/api globex/eu/ingest]"},
		{"state=pending", "[globex/eu/fresh]"},
		{"vendor=globex", "[globex/eu/ingest globex/eu/fresh]"},
		{"vendor=globex&order=name", "[globex/eu/fresh globex/eu/ingest]"},
		{"region=jp&state=down", "[acme/jp/api acme/jp/telemetry]"},
		{"vendor=nobody", "[]"},
		{"state=bogus", "[acme/jp/api acme/jp/telemetry globex/eu/ingest globex/eu/fresh]"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			if got := fmt.Sprint(rows(tt.query)); got != tt.want {
				t.Errorf("rows %s, want %s", got, tt.want)
			}
		})
	}

	page := render(t, s, loaded, "vendor=acme&state=down&refresh=10")
	refresh := elements(t, page, "meta[http-equiv=refresh]")
	if len(refresh) != 1 || !hasAttr(refresh[0], "content", "10; url=./?refresh=10&state=down&vendor=acme") {
		t.Errorf("auto-refresh does not keep the filter: %v", refresh)
	}
	form := elements(t, page, "form[id=filters]")
	if len(form) != 1 || !hasAttr(form[0], "method", "get") {
		t.Fatal("no GET filter form")
	}
	for _, sel := range []string{"select[name=vendor]", "select[name=region]", "select[name=state]", "select[name=refresh]"} {
		if len(elements(t, page, sel)) != 1 {
			t.Errorf("the form lacks %s", sel)
		}
	}
	selected := 0
	for _, o := range elements(t, page, "option[selected]") {
		selected++
		if v := text(o); v != "acme" && v != "down" && v != "10 s" && v != "failing first" {
			t.Errorf("option %q selected", v)
		}
	}
	if selected != 4 || !strings.Contains(page, "showing 2 of 4 targets") {
		t.Errorf("%d options selected; or the shown count is missing", selected)
	}
	if off := render(t, s, loaded, "refresh=0"); len(elements(t, off, "meta[http-equiv=refresh]")) != 0 {
		t.Error("refresh=0 still refreshes")
	}
	if page := render(t, s, loaded, "vendor=nobody"); !strings.Contains(page, "No target matches these filters") {
		t.Error("an empty filter result says nothing")
	}
}

func TestParseFilter(t *testing.T) {
	tests := []struct {
		query string
		want  pageFilter
	}{
		{"", pageFilter{Refresh: 30}},
		{"vendor=a&region=b&state=down", pageFilter{Vendor: "a", Region: "b", State: "down", Refresh: 30}},
		{"state=sideways", pageFilter{Refresh: 30}},
		{"order=name&path=direct&reason=dns_error", pageFilter{Order: "name", Path: "direct", Reason: "dns_error", Refresh: 30}},
		{"order=backwards", pageFilter{Refresh: 30}},
		{"refresh=0", pageFilter{}},
		{"refresh=-5", pageFilter{}},
		{"refresh=1", pageFilter{Refresh: 5}},
		{"refresh=999999", pageFilter{Refresh: 3600}},
		{"refresh=soon", pageFilter{Refresh: 30}},
	}
	for _, tt := range tests {
		q, _ := url.ParseQuery(tt.query)
		if got := parseFilter(q); got != tt.want {
			t.Errorf("%q: %+v, want %+v", tt.query, got, tt.want)
		}
	}
}

// TestStatusPageEscapes feeds hostile strings through every field the page
// shows: none may become markup, an attribute or a script.
func TestStatusPageEscapes(t *testing.T) {
	const (
		tag  = `<script>alert(1)</script>`
		attr = `"onmouseover=alert(1) x="`
		img  = `'><img src=x onerror=alert(1)>`
	)
	tg := &targets.Target{Vendor: "v" + attr, Region: "r" + img, Name: "n" + tag, Host: "h" + attr + ".test", Port: 443,
		Purpose: "p" + tag, Paths: []string{"direct" + img}}
	s := NewStore()
	p := pageProbe{tg, "direct" + img}
	Sync(s, []pageProbe{p})
	r := downResult(tg, p.path, t0, probe.TLSUntrustedCA, "d"+tag+attr+img)
	r.TLS = &probe.TLSInfo{Version: 0x0303, Cipher: "c" + attr, Issuer: "i" + tag, Accepted: map[uint16]bool{0x0303: true}}
	r.DNS = []probe.DNSResult{{Resolver: "res" + img, QType: "A", Rcode: "NOERROR", Answers: []string{"a" + tag}, Success: true, Source: "src" + attr, Warning: "w" + img}}
	s.Record(p.Key(), r)
	r.Err.Reason = probe.Reason("r" + tag + attr) // reaches the history strip's titles
	s.Record(p.Key(), r)
	st := StateView{Site: "s" + tag, ReloadOK: false, ReloadErr: "e" + attr + img, Warnings: []string{"w" + tag + attr + img}}
	page := render(t, s, st, "vendor="+url.QueryEscape("v"+attr)+"&region="+url.QueryEscape(img))

	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	scripts, shown := 0, map[string]bool{}
	for n := range doc.Descendants() {
		if n.Type == html.TextNode {
			for _, s := range []string{tag, attr, img} {
				shown[s] = shown[s] || strings.Contains(n.Data, s)
			}
		}
		if n.Type != html.ElementNode {
			continue
		}
		if n.Data == "script" || n.Data == "img" {
			scripts++
		}
		for _, a := range n.Attr {
			if strings.HasPrefix(a.Key, "on") || a.Key == "x" && n.Data != "rect" || a.Key == "src" {
				t.Errorf("<%s> gained the attribute %s=%q", n.Data, a.Key, a.Val)
			}
		}
	}
	if scripts != 0 {
		t.Errorf("%d <script>/<img> elements injected", scripts)
	}
	for s, ok := range shown { // escaped, yet shown as the text it is
		if !ok {
			t.Errorf("%q is not shown as text", s)
		}
	}
	if w := elements(t, page, "li[data-kind=config]"); len(w) != 1 || !strings.Contains(text(w[0]), "w"+tag+attr+img) {
		t.Error("the config warning is not shown as text")
	}
	if strings.Contains(page, tag) || strings.Contains(page, `"onmouseover`) {
		t.Error("a hostile string appears unescaped in the source")
	}
}

// BenchmarkStatusPage renders the page of 1,000 targets over three paths,
// each probe with a full history, and reports the page's size raw and as
// reachd sends it (gzip, BestSpeed).
func BenchmarkStatusPage(b *testing.B) {
	s := NewStore()
	var probes []pageProbe
	paths := []string{"direct", "corp-proxy", "inspect-proxy"}
	for i := range 1000 {
		tg := pageTarget(fmt.Sprintf("vendor-%d", i%10), fmt.Sprintf("r%d", i%7), fmt.Sprintf("target-%04d", i), paths...)
		for _, p := range paths {
			probes = append(probes, pageProbe{tg, p})
		}
	}
	Sync(s, probes)
	for run := range HistoryLen {
		at := t0.Add(time.Duration(run) * time.Minute)
		for i, p := range probes {
			if (i+run)%7 == 0 {
				s.Record(p.Key(), downResult(p.t, p.path, at, probe.ProxyAuthRequired, "proxy answered 407"))
			} else {
				s.Record(p.Key(), upResult(p.t, p.path, at))
			}
		}
	}
	m := pageMeta{State: loaded, Version: "1.2.3", Now: t0.Add(time.Hour)}
	var size int
	var zipped bytes.Buffer
	b.ReportAllocs()
	for b.Loop() { // as the server does: a pooled buffer
		buf := pageBuffers.Get().(*bytes.Buffer)
		if err := renderStatus(buf, s, m, pageFilter{Refresh: defaultRefresh}); err != nil {
			b.Fatal(err)
		}
		if size = buf.Len(); zipped.Len() == 0 {
			gz, _ := gzip.NewWriterLevel(&zipped, gzip.BestSpeed)
			gz.Write(buf.Bytes())
			gz.Close()
		}
		buf.Reset()
		pageBuffers.Put(buf)
	}
	b.ReportMetric(float64(size)/1e6, "MB/page")
	b.ReportMetric(float64(zipped.Len())/1e6, "MB-gzip/page")
}
