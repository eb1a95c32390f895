package tomlpos

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func FuzzTomlposIndex(f *testing.F) {
	// The shipped configs and catalog files, asked for a few key paths;
	// small odd documents are in testdata/fuzz.
	files, _ := filepath.Glob("../../configs/examples/*.toml")
	catalog, _ := filepath.Glob("../../targets/*/*.toml")
	files = append(files, catalog...)
	if len(files) == 0 {
		f.Fatal("no seed files")
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		for _, path := range []string{"target.0.host", "path.0.password_file", "use.1.region", "defaults.timeout", "target.3.http.path"} {
			f.Add(path, data)
		}
	}
	f.Add("doc", []byte(doc))
	const name = "fuzz.toml"
	f.Fuzz(func(t *testing.T, path string, data []byte) {
		ix := New(data)
		lines := strings.Split(string(data), "\n")
		for _, n := range []int{ix.Line(path), ix.FirstLine(path)} {
			if n < 0 || n > len(lines) {
				t.Fatalf("line %d of a %d-line document", n, len(lines))
			}
			// A line the index names holds a header or a key.
			if l := strings.TrimSpace(lines[max(n-1, 0)]); n > 0 && (l == "" || l[0] == '#') {
				t.Fatalf("line %d is %q: no header or key there", n, l)
			}
		}
		want := name
		if n := ix.Line(path); n > 0 {
			want = fmt.Sprintf("%s:%d", name, n)
		}
		if got := ix.At(name, path); got != want {
			t.Fatalf("At = %q, want %q", got, want)
		}

		var v map[string]any
		ix2, err := Decode(name, data, &v)
		if err == nil && ix2 == nil {
			t.Fatal("no index and no error")
		}
		each(err, func(e error) {
			if !strings.HasPrefix(e.Error(), name+":") {
				t.Fatalf("an error does not name the file: %q", e)
			}
		})
	})
}

// each calls f with every error err joins (errors.Join nests), so a
// message that quotes input with a newline in it is still one error.
func each(err error, f func(error)) {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			each(e, f)
		}
		return
	}
	if err != nil {
		f(err)
	}
}
