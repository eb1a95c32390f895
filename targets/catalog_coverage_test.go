package targets_test

import (
	"bufio"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reachd/reachd/targets"
)

// factsPath is the collected vendor facts the catalog is built from. It sits
// in shared/ beside the repository, here and in CI.
const factsPath = "../../shared/vendor-endpoints.md"

// catalogDoc lists every catalog file with its target count.
const catalogDoc = "../docs/catalog.md"

// productSections are the "## N." sections of vendor-endpoints.md for the
// products the catalog ships. Section 3 (Apex One on-premises, the Service
// Gateway and Server & Workload Protection) covers no catalog product; 9 and
// 10 are notes, not vendor lists.
var productSections = []string{"1", "2", "4", "5", "6", "7", "8"}

// notShipped lists the hosts that vendor-endpoints.md marks V in a product
// section but the catalog leaves out on purpose, each with the reason. A host
// here must not be in the catalog, and must still be a V host of the facts.
var notShipped = map[string]string{
	// Trend Vision One
	"api.usgov.xdr.trendmicro.com": "US Gov site: only its API FQDN is published, no agent list or portal",
	"clients2.google.com":          "browser-extension store, needed only when the Trend browser extension is enabled",
	"edge.microsoft.com":           "browser-extension store, needed only when the Trend browser extension is enabled",

	// Trend Apex One as a Service
	"toolbox10-p.activeupdate.trendmicro.com": "only in the legacy (pre-Foundation Services) list; the current per-site pages drop it",

	// ManageEngine: Patch Manager Plus Cloud, the sister product
	"dms.zoho.com":           "listed for Patch Manager Plus Cloud only; its use by Endpoint Central is inferred",
	"us3-dms.zoho.com":       "Distribution Server host listed for Patch Manager Plus Cloud only",
	"us4-dms.zoho.com":       "Distribution Server host listed for Patch Manager Plus Cloud only",
	"files-me-accl.zoho.com": "listed for Patch Manager Plus Cloud only; its use by Endpoint Central is inferred",
	"patch.manageengine.com": "Patch Manager Plus Cloud server, another product",
	"patch.manageengine.ca":  "Patch Manager Plus Cloud server, another product",

	// Microsoft Defender for Endpoint
	"login.microsoftonline.com": "optional Live Response push (WNS), which Microsoft says cannot go through a proxy",
	"login.live.com":            "optional Live Response push (WNS), which Microsoft says cannot go through a proxy",
	"login.windows.net":         "optional network scanner tool",
}

func TestCatalogFiles(t *testing.T) {
	cat, err := targets.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	files := cat.Files()
	if len(files) == 0 {
		t.Fatal("the embedded catalog has no files")
	}
	for _, f := range files {
		t.Run(f.Vendor+"/"+f.Region, func(t *testing.T) {
			p := filepath.ToSlash(f.Path)
			if v := path.Base(path.Dir(p)); v != f.Vendor {
				t.Errorf("%s: vendor %q is not the folder name %q", p, f.Vendor, v)
			}
			if r := strings.TrimSuffix(path.Base(p), ".toml"); r != f.Region {
				t.Errorf("%s: region %q is not the file name %q", p, f.Region, r)
			}
			if f.Title == "" {
				t.Errorf("%s: no title", p)
			}
			if u, err := url.Parse(f.Source); f.Source == "" || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				t.Errorf("%s: source %q is not an http(s) URL", p, f.Source)
			}
			if f.Checked.IsZero() || f.Checked.After(time.Now()) {
				t.Errorf("%s: checked %v is missing or in the future", p, f.Checked)
			}
			if len(f.Targets) == 0 {
				t.Errorf("%s: no targets", p)
			}
			names := map[string]bool{}
			for _, tg := range f.Targets {
				if names[tg.Name] {
					t.Errorf("%s: target name %q twice", p, tg.Name)
				}
				names[tg.Name] = true
				if !nameRE.MatchString(tg.Name) {
					t.Errorf("%s: target name %q is not 1-63 of [a-z0-9-]", p, tg.Name)
				}
				if strings.TrimSpace(tg.Purpose) == "" {
					t.Errorf("%s: target %q has no purpose", p, tg.Name)
				}
				if err := checkHost(tg.Host); err != nil {
					t.Errorf("%s: target %q: %v", p, tg.Name, err)
				}
				if tg.Port < 1 || tg.Port > 65535 {
					t.Errorf("%s: target %q: port %d", p, tg.Name, tg.Port)
				}
				if len(tg.Checks) == 0 {
					t.Errorf("%s: target %q has no checks", p, tg.Name)
				}
				if tg.Vendor != f.Vendor || tg.Region != f.Region {
					t.Errorf("%s: target %q is labelled %s/%s", p, tg.Name, tg.Vendor, tg.Region)
				}
			}
		})
	}
}

var (
	nameRE  = regexp.MustCompile(`^[a-z0-9-]{1,63}$`)
	labelRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
)

// checkHost is stricter than the loader: a lowercase DNS name of two or more
// labels of [a-z0-9-], no leading or trailing hyphen, no wildcard, no IP.
func checkHost(h string) error {
	if h == "" || len(h) > 253 || strings.Contains(h, "*") {
		return fmt.Errorf("host %q: empty, too long or a wildcard", h)
	}
	labels := strings.Split(h, ".")
	if len(labels) < 2 {
		return fmt.Errorf("host %q: not a fully qualified name", h)
	}
	for _, l := range labels {
		if !labelRE.MatchString(l) {
			return fmt.Errorf("host %q: label %q is not [a-z0-9-] without a leading or trailing hyphen", h, l)
		}
	}
	if _, err := strconv.Atoi(labels[len(labels)-1]); err == nil {
		return fmt.Errorf("host %q: an IP address, not a name", h)
	}
	return nil
}

func TestCatalogCoversVendorFacts(t *testing.T) {
	data, err := os.ReadFile(factsPath)
	if err != nil {
		msg := fmt.Sprintf("%s not readable (%v): the catalog is NOT being compared with the vendor facts", factsPath, err)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		fmt.Fprintln(os.Stderr, "SKIP TestCatalogCoversVendorFacts:", msg)
		t.Skip(msg)
	}
	vHosts := vHostsOf(string(data), productSections)
	if len(vHosts) < 100 {
		t.Fatalf("found only %d V hosts in %s: has its table format changed? found: %v", len(vHosts), factsPath, sortedKeys(vHosts))
	}

	cat, err := targets.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	shipped := map[string]string{} // host -> first file
	for _, f := range cat.Files() {
		for _, tg := range f.Targets {
			if _, ok := shipped[tg.Host]; !ok {
				shipped[tg.Host] = f.Vendor + "/" + f.Region
			}
		}
	}

	var missing []string
	for _, h := range sortedKeys(vHosts) {
		if _, ok := shipped[h]; ok {
			continue
		}
		if _, ok := notShipped[h]; ok {
			continue
		}
		missing = append(missing, fmt.Sprintf("%s (%s)", h, vHosts[h]))
	}
	if len(missing) > 0 {
		t.Errorf("%d hosts marked V in %s are neither in the catalog nor in notShipped (add them to a target file, or to notShipped with the reason):\n  %s",
			len(missing), factsPath, strings.Join(missing, "\n  "))
	}
	for _, h := range sortedKeys(notShipped) {
		if f, ok := shipped[h]; ok {
			t.Errorf("notShipped lists %s, but %s ships it: drop one of them", h, f)
		}
		if _, ok := vHosts[h]; !ok {
			t.Errorf("notShipped lists %s, which is no longer a V host of a product table in %s: drop it", h, factsPath)
		}
	}
}

var (
	sectionRE  = regexp.MustCompile(`^## (\d+)\.`)
	headingRE  = regexp.MustCompile(`^#{2,6} `)
	backtickRE = regexp.MustCompile("`([^`]+)`")
	// standaloneVRE finds a mark V in prose: "(V, ...", "All **V**"; not V3, not V1DOCS.
	standaloneVRE = regexp.MustCompile(`(^|[^A-Za-z0-9])V([^A-Za-z0-9]|$)`)
)

// vHostsOf returns the host names in the Markdown tables of the given
// sections whose row is marked V, each with where it was found. A table's
// mark column is the one whose header starts with "Seen"; a table without one
// takes its mark from the prose since the previous heading or table (e.g.
// "All cells are **V**"). Hosts are the backticked tokens of the row that are
// plain host names once a scheme, path or port is cut off; wildcards,
// placeholders (<...>, …) and brace shorthands are passed over.
func vHostsOf(doc string, sections []string) map[string]string {
	out := map[string]string{}
	section := ""
	var context []string // prose since the last heading or table
	var table [][]string // rows of the current table, split into cells
	lineNo, tableStart := 0, 0

	flush := func() {
		defer func() { table = nil; context = nil }()
		if len(table) < 2 || !slices.Contains(sections, section) {
			return
		}
		markCol := -1
		for i, c := range table[0] {
			if strings.HasPrefix(strings.ToLower(strings.Trim(c, " *")), "seen") {
				markCol = i
				break
			}
		}
		inherited := standaloneVRE.MatchString(strings.Join(context, "\n"))
		for _, row := range table[1:] {
			if isSeparator(row) {
				continue
			}
			if markCol >= 0 {
				if markCol >= len(row) || markOf(row[markCol]) != "V" {
					continue
				}
			} else if !inherited {
				continue
			}
			for _, cell := range row {
				for _, m := range backtickRE.FindAllStringSubmatch(cell, -1) {
					if h, ok := hostOf(m[1]); ok {
						if _, seen := out[h]; !seen {
							out[h] = fmt.Sprintf("§%s, table at line %d", section, tableStart)
						}
					}
				}
			}
		}
	}

	sc := bufio.NewScanner(strings.NewReader(doc))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "|") {
			if table == nil {
				tableStart = lineNo
			}
			table = append(table, strings.Split(strings.Trim(line, "|"), "|"))
			continue
		}
		if table != nil {
			flush()
		}
		if m := sectionRE.FindStringSubmatch(line); m != nil {
			section = m[1]
		} else if strings.HasPrefix(line, "## ") {
			section = ""
		}
		if headingRE.MatchString(line) {
			context = nil
		}
		context = append(context, line)
	}
	if table != nil {
		flush()
	}
	return out
}

func isSeparator(row []string) bool {
	for _, c := range row {
		if strings.Trim(c, " -:") != "" {
			return false
		}
	}
	return true
}

// markOf reads the mark at the start of a Seen cell: "V", "V3", "I" or "".
func markOf(cell string) string {
	c := strings.TrimLeft(cell, " *")
	switch {
	case strings.HasPrefix(c, "V3"):
		return "V3"
	case strings.HasPrefix(c, "V") && (len(c) == 1 || !isAlnum(c[1])):
		return "V"
	case strings.HasPrefix(c, "I") && (len(c) == 1 || !isAlnum(c[1])):
		return "I"
	}
	return ""
}

func isAlnum(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9'
}

var (
	factHostRE = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}$`)
	// fileExt are last labels that make a token a file name, not a host.
	fileExt = []string{"md", "mdx", "py", "go", "toml", "json", "yaml", "yml", "html", "aspx", "dll", "ini", "exe"}
)

// hostOf turns a backticked token into a host name, if it is one.
func hostOf(tok string) (string, bool) {
	tok = strings.TrimSpace(tok)
	tok = strings.TrimPrefix(strings.TrimPrefix(tok, "https://"), "http://")
	if i := strings.IndexAny(tok, "/:"); i >= 0 {
		tok = tok[:i]
	}
	if !factHostRE.MatchString(tok) {
		return "", false
	}
	if slices.Contains(fileExt, tok[strings.LastIndexByte(tok, '.')+1:]) {
		return "", false
	}
	return tok, true
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestVHostsOf(t *testing.T) {
	doc := "## 1. Product\n\n" +
		"| Host | Purpose | Seen |\n|---|---|---|\n" +
		"| `a.example.com` | x | V |\n" +
		"| `b.example.com` | x | **V3** |\n" +
		"| `c.example.com` | x | V (vendor doc) / **I** for the other product |\n" +
		"| `d.example.com` | x | I |\n" +
		"| `*.example.com`, `<tenant>.example.com`, `e{1,2}.example.com`, `f…example.com` | x | V |\n" +
		"| `https://g.example.com:443/path`, `h.example.com/x/*` | page `notes.md` | V |\n" +
		"\nAll cells are **V** (verbatim):\n\n" +
		"| Role | Site |\n|---|---|\n| r | `i.example.co.jp` |\n" +
		"\nSeen in V1DOCS and V3 scripts only:\n\n" +
		"| Role | Site |\n|---|---|\n| r | `j.example.com` |\n" +
		"\n## 3. Other product (All **V**)\n\n" +
		"| Role | Site |\n|---|---|\n| r | `k.example.com` |\n"
	got := sortedKeys(vHostsOf(doc, []string{"1"}))
	want := []string{"a.example.com", "c.example.com", "g.example.com", "h.example.com", "i.example.co.jp"}
	if !slices.Equal(got, want) {
		t.Errorf("vHostsOf = %q, want %q", got, want)
	}
}

// docRowRE matches a row of the table in docs/catalog.md:
// | vendor | region | [`vendor/region.toml`](../targets/...) | 28 | source |
var docRowRE = regexp.MustCompile("\\[`([a-z0-9-]+/[a-z0-9-]+\\.toml)`\\]\\([^)]*\\)\\s*\\|\\s*(\\d+)\\s*\\|")

func TestCatalogDocListsEveryFile(t *testing.T) {
	data, err := os.ReadFile(catalogDoc)
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]int{}
	for _, m := range docRowRE.FindAllStringSubmatch(string(data), -1) {
		n, _ := strconv.Atoi(m[2])
		listed[m[1]] = n
	}
	cat, err := targets.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]bool{}
	for _, f := range cat.Files() {
		name := f.Vendor + "/" + f.Region + ".toml"
		files[name] = true
		n, ok := listed[name]
		switch {
		case !ok:
			t.Errorf("%s does not list %s: add a row to its table", catalogDoc, name)
		case n != len(f.Targets):
			t.Errorf("%s gives %s %d targets, the file has %d", catalogDoc, name, n, len(f.Targets))
		}
	}
	for _, name := range sortedKeys(listed) {
		if !files[name] {
			t.Errorf("%s lists %s, which is not in the catalog", catalogDoc, name)
		}
	}
}
