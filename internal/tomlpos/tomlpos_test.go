package tomlpos

import (
	"strings"
	"testing"
)

// doc is a config with every construct the index must place. Line numbers
// are in the comments.
const doc = `site = "x"                      # 1
"quoted key" = 1                # 2
'literal.key' = 2               # 3
dotted.key = 3                  # 4

[defaults]                      # 6
interval = "1m"                 # 7

[ "quoted table" . sub ]        # 9
k = 1                           # 10

[[target]]                      # 12
name = "a"                      # 13
http = { path = "/", expect_status = [200] }   # 14

[[target]]                      # 16
name = "b"                      # 17
purpose = """
[not.a.header]
port = 1
"""                             # 21
interval = "5m"                 # 22
pin = '''
[[target]]
'''                             # 25
timeout = "3s"                  # 26
[target.http]                   # 27
path = "/x"                     # 28
[[target.alias]]                # 29
host = "one"                    # 30
[[target.alias]]                # 31
host = "two"                    # 32

[[use]]                         # 34
vendor = "acme"                 # 35
`

func TestLine(t *testing.T) {
	ix := New([]byte(doc))
	for _, tt := range []struct {
		path string
		want int
	}{
		{"site", 1},
		{"quoted key", 2},
		{"literal.key", 3},
		{"dotted.key", 4},
		{"defaults", 6},
		{"defaults.interval", 7},
		{"quoted table.sub", 9},
		{"quoted table.sub.k", 10},
		// arrays of tables are numbered in order
		{"target.0", 12},
		{"target.0.name", 13},
		{"target.1", 16},
		{"target.1.name", 17},
		{"use.0", 34},
		{"use.0.vendor", 35},
		// an inline table: its keys are on the line of the key holding it
		{"target.0.http", 14},
		{"target.0.http.path", 14},
		{"target.0.http.expect_status", 14},
		// multi-line strings hide what looks like headers and keys
		{"target.1.purpose", 18},
		{"target.1.interval", 22},
		{"target.1.pin", 23},
		{"target.1.timeout", 26},
		{"target.1.port", 16}, // "port = 1" is string content: the header
		{"target.2", 0},       // "[[target]]" is string content too
		// a sub-table of the current element, and arrays of tables in it
		{"target.1.http", 27},
		{"target.1.http.path", 28},
		{"target.1.alias.0.host", 30},
		{"target.1.alias.1", 31},
		{"target.1.alias.1.host", 32},
		// keys not written fall back to their table; unknown paths are 0
		{"target.0.port", 12},
		{"defaults.timeout", 6},
		{"target.7.port", 0},
		{"nowhere", 0},
		{"", 0},
	} {
		if got := ix.Line(tt.path); got != tt.want {
			t.Errorf("Line(%q) = %d, want %d", tt.path, got, tt.want)
		}
	}
}

func TestFirstLine(t *testing.T) {
	ix := New([]byte(doc))
	for _, tt := range []struct {
		plain string
		want  int
	}{
		{"target", 12},
		{"target.name", 13},
		{"target.timeout", 26},
		{"target.http", 14},      // the inline table comes first
		{"target.http.path", 28}, // written on its own in [target.http]
		{"target.alias.host", 30},
		{"target.colour", 12}, // an unknown key without a line of its own: its table
		{"use.vendor", 35},
		{"colour", 0},
	} {
		if got := ix.FirstLine(tt.plain); got != tt.want {
			t.Errorf("FirstLine(%q) = %d, want %d", tt.plain, got, tt.want)
		}
	}
}

func TestAt(t *testing.T) {
	ix := New([]byte(doc))
	for _, tt := range []struct{ path, want string }{
		{"target.1.name", "reachd.toml:17"},
		{"target.1.port", "reachd.toml:16"}, // not written: the element's header
		{"target.9.port", "reachd.toml"},    // not in the document: the file alone
		{"", "reachd.toml"},
	} {
		if got := ix.At("reachd.toml", tt.path); got != tt.want {
			t.Errorf("At(%q) = %q, want %q", tt.path, got, tt.want)
		}
	}
}

func TestNewNeverFails(t *testing.T) {
	for _, data := range []string{"", "\n\n", "=", "[", "[[", "]]", "[[]]\n=1", "= = =", "'''", `"""`, "b = '''\na = 1"} {
		ix := New([]byte(data))
		if n := ix.Line("a"); n != 0 {
			t.Errorf("New(%.20q).Line(a) = %d", data, n)
		}
	}
}

func TestLongLine(t *testing.T) {
	// A line over the scanner's 1 MiB bound ends the scan without a panic;
	// what came before keeps its lines.
	ix := New([]byte("a = 1\nb = \"" + strings.Repeat("x", 2<<20) + "\"\nc = 3\n"))
	if ix.Line("a") != 1 || ix.Line("c") > 3 {
		t.Errorf("a at %d, c at %d", ix.Line("a"), ix.Line("c"))
	}
}

// TestArraysOfArraysAndQuotedKeys: a multi-line array of arrays holds no
// headers, and a quoted key may hold '='.
func TestArraysOfArraysAndQuotedKeys(t *testing.T) {
	ix := New([]byte("[[target]]\nextra = [\n  [1, 2],\n]\nname = \"a\"\n\"a=b\" = 1\n"))
	if n := ix.Line("target.0.name"); n != 5 {
		t.Errorf("a key after a multi-line array of arrays: line %d, want 5", n)
	}
	if n := ix.Line("target.0.a=b"); n != 6 {
		t.Errorf("a quoted key holding '=': line %d, want 6", n)
	}
}

func TestDecode(t *testing.T) {
	type spec struct {
		Site   string `toml:"site"`
		Target []struct {
			Name string `toml:"name"`
		} `toml:"target"`
	}
	var s spec
	ix, err := Decode("reachd.toml", []byte("site = \"x\"\n[[target]]\nname = \"a\"\n\n[[target]]\nname = \"b\"\ncolour = \"red\"\n"), &s)
	if ix == nil || err == nil || err.Error() != `reachd.toml:7: unknown key "target.colour"` {
		t.Errorf("unknown key: index %v, err %v", ix != nil, err)
	}
	if len(s.Target) != 2 || s.Target[1].Name != "b" {
		t.Errorf("decoded %+v", s)
	}
	if ix.Line("target.1.name") != 6 {
		t.Errorf("target.1.name at %d, want 6", ix.Line("target.1.name"))
	}

	ix, err = Decode("reachd.toml", []byte("site = \"x\"\nsite = \"y\"\n"), &s)
	if ix != nil || err == nil || !strings.HasPrefix(err.Error(), "reachd.toml:2: ") {
		t.Errorf("syntax error: index %v, err %v", ix != nil, err)
	}
	ix, err = Decode("reachd.toml", []byte("site = 1\n"), &s)
	if ix != nil || err == nil || !strings.HasPrefix(err.Error(), "reachd.toml:") {
		t.Errorf("type error: index %v, err %v", ix != nil, err)
	}
}
