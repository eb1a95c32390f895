package configs

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/reachd/reachd/internal/tomlpos"
	"github.com/reachd/reachd/probe/probetest"
	"github.com/reachd/reachd/targets"
)

// fuzzWorld is the directory a fuzzed config may name files in: a
// resolv.conf, a password file, CA PEMs and a catalog directory.
type fuzzWorld struct {
	dir     string
	opts    Options
	catalog func() (*targets.Catalog, error)
}

func newFuzzWorld(f *testing.F) *fuzzWorld {
	f.Helper()
	dir := f.TempDir()
	ca := probetest.NewCA(f, "Fuzz Root CA")
	files := map[string]string{
		"resolv.conf":       "nameserver 127.0.0.53\n",
		"proxy.pass":        "fuzz-password\n",
		"ca.pem":            string(ca.PEM),
		"inspection-ca.pem": string(ca.PEM),
		"lab-root.pem":      string(ca.PEM),
		"catalog/acme/jp.toml": "vendor = \"acme\"\nregion = \"jp\"\ntitle = \"Acme\"\nsource = \"https://acme.example/\"\nchecked = 2025-01-01\n" +
			"[[target]]\nname = \"api\"\nhost = \"api.acme.test\"\npurpose = \"API\"\n",
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			f.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			f.Fatal(err)
		}
	}
	w := &fuzzWorld{dir: dir, catalog: sync.OnceValues(targets.Embedded)}
	w.opts = Options{
		ResolvConf: filepath.Join(dir, "resolv.conf"),
		LookupEnv:  func(string) (string, bool) { return "", false },
		Catalog: func(d string) (*targets.Catalog, error) {
			if d == "" {
				return w.catalog()
			}
			return targets.Load(d)
		},
	}
	return w
}

// inside reports whether a file the config names stays in the world's
// directory: a fuzzed config must not make the test read /dev/zero.
func (w *fuzzWorld) inside(name string) bool {
	if name == "" {
		return true
	}
	if !filepath.IsAbs(name) {
		name = filepath.Join(w.dir, name)
	}
	rel, err := filepath.Rel(w.dir, filepath.Clean(name))
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// safe reports whether every file s names is inside the world.
func (w *fuzzWorld) safe(s *spec) bool {
	names := append([]string{s.CatalogDir}, s.Trust.CAFiles...)
	for _, p := range s.Path {
		names = append(names, p.PasswordFile, p.CAFile, p.PACFile)
	}
	for _, n := range names {
		if !w.inside(n) {
			return false
		}
	}
	return true
}

func FuzzParseConfig(f *testing.F) {
	w := newFuzzWorld(f)
	examples, _ := filepath.Glob("examples/*.toml")
	for _, file := range append(examples, "default.toml") {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		// The examples name files under /etc/reachd; the world has them.
		// Small valid and invalid configs are in testdata/fuzz.
		f.Add([]byte(strings.ReplaceAll(string(data), "/etc/reachd/", "")))
	}
	name := filepath.Join(w.dir, "reachd.toml")
	f.Fuzz(func(t *testing.T, data []byte) {
		var s spec
		if ix, _ := tomlpos.Decode(name, data, &s); ix != nil && !w.safe(&s) {
			t.Skip("names a file outside the fuzz directory")
		}
		cfg, err := Parse(name, data, w.dir, w.opts)
		if err == nil {
			if cfg == nil || len(cfg.Resolvers) == 0 || len(cfg.Paths) == 0 {
				t.Fatalf("a valid config without resolvers or paths: %+v", cfg)
			}
			for _, tg := range cfg.Targets {
				if tg.Interval <= 0 || tg.Timeout <= 0 || tg.Timeout > tg.Interval || len(tg.Paths) == 0 {
					t.Fatalf("target %s: interval %v timeout %v paths %v", tg.ID(), tg.Interval, tg.Timeout, tg.Paths)
				}
			}
			return
		}
		if cfg != nil {
			t.Fatalf("both a config and an error: %v", err)
		}
		// Every problem names the config file, or a file of the catalog
		// directory it loaded.
		catalogDir := filepath.Join(w.dir, "catalog") + "/"
		each(err, func(e error) {
			if !strings.HasPrefix(e.Error(), name+":") && !strings.HasPrefix(e.Error(), catalogDir) {
				t.Fatalf("an error names no file: %q", e)
			}
		})
		if strings.Contains(err.Error(), "fuzz-password") {
			t.Fatalf("an error shows the password:\n%v", err)
		}
	})
}

// TestFuzzFindings pins what fuzzing found: a missing catalog_dir named
// no file; a target's own timeout could outlast the interval it inherits;
// paths = [] gave targets that were never probed; and a catalog file
// naming a path the config lacks was probed direct, under path "".
func TestFuzzFindings(t *testing.T) {
	dir := t.TempDir()
	catalog := "vendor = \"acme\"\nregion = \"jp\"\ntitle = \"t\"\nsource = \"s\"\nchecked = 2025-01-01\n" +
		"[[target]]\nname = \"api\"\nhost = \"127.0.0.1\"\npurpose = \"p\"\npaths = [\"corp\"]\n"
	if err := os.MkdirAll(filepath.Join(dir, "cat", "acme"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cat", "acme", "jp.toml"), []byte(catalog), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ name, body, want string }{
		{"empty paths in use", "[[use]]\nvendor = \"trendmicro-emailsecurity\"\nregion = \"jp\"\npaths = []\n", ":4: paths: empty: the target would never be probed"},
		{"empty paths in a target", "[[target]]\nname = \"a\"\nhost = \"127.0.0.1\"\npaths = []\n", ":4: paths: empty"},
		{"catalog target on an undefined path", "catalog_dir = \"cat\"\n[[use]]\nvendor = \"acme\"\nregion = \"jp\"\n",
			`:2: use: target "api" (` + filepath.Join(dir, "cat", "acme", "jp.toml") + `:6) names path "corp", which this config does not define`},
		{"missing catalog_dir", "catalog_dir = \"nowhere\"\n[[use]]\nvendor = \"acme\"\nregion = \"jp\"\n", ":1: catalog_dir: stat "},
		{"timeout over inherited interval", "[defaults]\ninterval = \"1m\"\n[[target]]\nname = \"slow\"\nhost = \"127.0.0.1\"\ntimeout = \"5m\"\n",
			`:6: target "slow": timeout: 5m0s is longer than the interval 1m0s`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			name := filepath.Join(dir, "reachd.toml")
			_, err := Parse(name, []byte(tt.body), dir, testOptions(t, nil))
			if err == nil || err.Error() != name+tt.want && !strings.HasPrefix(err.Error(), name+tt.want) {
				t.Errorf("got %v, want %s%s", err, name, tt.want)
			}
		})
	}
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
