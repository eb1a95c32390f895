package targets

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func FuzzParseFile(f *testing.F) {
	// Every catalog file is a valid seed under its own name; small
	// invalid files are in testdata/fuzz.
	files, err := filepath.Glob("*/*.toml")
	if err != nil || len(files) == 0 {
		f.Fatalf("no catalog files: %v", err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(filepath.ToSlash(file), data)
	}
	f.Fuzz(func(t *testing.T, name string, data []byte) {
		if name == "" || strings.ContainsAny(name, "\n\r") {
			t.Skip("a file name is one line")
		}
		file, err := ParseFile(name, data)
		if err != nil {
			if file != nil {
				t.Fatalf("both a file and an error: %v", err)
			}
			each(err, func(e error) {
				if !strings.HasPrefix(e.Error(), name+":") {
					t.Fatalf("an error does not name the file %q: %q", name, e)
				}
			})
			return
		}
		if file.Path != name || len(file.Targets) == 0 {
			t.Fatalf("file %q with %d targets", file.Path, len(file.Targets))
		}
		seen := map[string]bool{}
		for _, tg := range file.Targets {
			switch {
			case tg.Vendor != file.Vendor || tg.Region != file.Region:
				t.Fatalf("target %s in file %s/%s", tg.ID(), file.Vendor, file.Region)
			case seen[tg.Name]:
				t.Fatalf("duplicate target %s accepted", tg.ID())
			case ValidHost(tg.Host) != nil:
				t.Fatalf("target %s: host %q accepted: %v", tg.ID(), tg.Host, ValidHost(tg.Host))
			case tg.Port < 1 || tg.Port > 65535:
				t.Fatalf("target %s: port %d accepted", tg.ID(), tg.Port)
			case len(tg.Checks) == 0:
				t.Fatalf("target %s: no checks", tg.ID())
			case tg.Interval > 0 && tg.Timeout > tg.Interval:
				t.Fatalf("target %s: timeout %v over interval %v", tg.ID(), tg.Timeout, tg.Interval)
			case !strings.HasPrefix(tg.HTTP.Path, "/"):
				t.Fatalf("target %s: http path %q", tg.ID(), tg.HTTP.Path)
			case !strings.HasPrefix(tg.Pos, name+":"):
				t.Fatalf("target %s: position %q does not name the file", tg.ID(), tg.Pos)
			}
			seen[tg.Name] = true
		}
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
