package targets

import (
	"strings"
	"testing"
)

func TestParseFileErrors(t *testing.T) {
	tests := []struct {
		name string
		file string
		data string
		want []string // every one must appear in the error
	}{
		{
			name: "unknown key",
			file: "acme/jp.toml",
			data: "vendor = \"acme\"\nregion = \"jp\"\ntitle = \"t\"\nsource = \"s\"\nchecked = 2025-01-01\n\n[[target]]\nname = \"a\"\nhost = \"a.example\"\npurpose = \"p\"\ncolour = \"red\"\n",
			want: []string{`acme/jp.toml:11: unknown key "target.colour"`},
		},
		{
			name: "every field problem at once",
			file: "acme/jp.toml",
			data: `vendor = "other"
region = "jp"
title = "t"
source = "s"
checked = 2025-01-01

[[target]]
name = "a"
host = "*.example.com"
purpose = "p"
port = 70000
interval = "soon"

[[target]]
name = "a"
host = "b.example"
purpose = "p"
checks = ["dns", "ping"]
http = { expect_body = "(" }
`,
			want: []string{
				`acme/jp.toml:1: vendor: "other" must equal the folder name "acme"`,
				`acme/jp.toml:9: target "a": host: "*.example.com" is a wildcard`,
				`acme/jp.toml:11: target "a": port: 70000 out of range 1-65535`,
				`acme/jp.toml:12: target "a": interval: "soon" is not a duration`,
				`acme/jp.toml:14: target "a": name: duplicate in this file`,
				`acme/jp.toml:18: target "a": checks: unknown check "ping"`,
				`acme/jp.toml:19: target "a": http.expect_body: error parsing regexp`,
			},
		},
		{
			name: "syntax error",
			file: "acme/jp.toml",
			data: "vendor = \"acme\"\nregion = \n",
			want: []string{"acme/jp.toml:2: "},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseFile(tt.file, []byte(tt.data))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestParseFileDefaults(t *testing.T) {
	f, err := ParseFile("acme/eu.toml", []byte(`vendor = "acme"
region = "eu"
title = "t"
source = "s"
checked = 2025-01-01
[defaults]
port = 8443
checks = ["dns", "tcp"]
[[target]]
name = "a"
host = "a.example"
purpose = "p"
[[target]]
name = "b"
host = "b.example"
purpose = "p"
port = 80
checks = ["http", "tcp", "dns"]
`))
	if err != nil {
		t.Fatal(err)
	}
	a, b := f.Targets[0], f.Targets[1]
	if a.Port != 8443 || strings.Join(a.Checks, ",") != "dns,tcp" || a.Pos != "acme/eu.toml:9" {
		t.Errorf("a = %+v", a)
	}
	if b.Port != 80 || strings.Join(b.Checks, ",") != "dns,tcp,http" || b.HTTP.Path != "/" {
		t.Errorf("b = %+v", b)
	}
	if a.ID() != "acme/eu/a" || a.Address() != "a.example:8443" {
		t.Errorf("ID %q Address %q", a.ID(), a.Address())
	}
}

func TestEmbeddedCatalog(t *testing.T) {
	c, err := Embedded()
	if err != nil {
		t.Fatal(err)
	}
	if f := c.File("trendmicro-visionone", "jp"); f == nil || len(f.Targets) == 0 {
		t.Fatalf("trendmicro-visionone/jp missing: %v", f)
	}
}

func TestLoadOverridesFromDir(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "trendmicro-visionone/jp.toml", "vendor = \"trendmicro-visionone\"\nregion = \"jp\"\ntitle = \"override\"\nsource = \"s\"\nchecked = 2025-01-01\n[[target]]\nname = \"x\"\nhost = \"x.example\"\npurpose = \"p\"\n")
	writeFile(t, dir, "acme/lab.toml", "vendor = \"acme\"\nregion = \"lab\"\ntitle = \"lab\"\nsource = \"s\"\nchecked = 2025-01-01\n[[target]]\nname = \"y\"\nhost = \"y.example\"\npurpose = \"p\"\n")
	c, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if f := c.File("trendmicro-visionone", "jp"); f.Title != "override" || len(f.Targets) != 1 {
		t.Errorf("override not applied: %+v", f)
	}
	if c.File("acme", "lab") == nil {
		t.Error("extension file missing")
	}
	writeFile(t, dir, "acme/bad.toml", "vendor = \"acme\"\n")
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "acme/bad.toml: region: missing") {
		t.Errorf("bad file in dir: %v", err)
	}
}
