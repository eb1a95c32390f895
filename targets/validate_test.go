package targets

import (
	"strings"
	"testing"
)

// A quoted date is one problem among the others, not one that hides them,
// and the problems come in line order.
func TestQuotedDateIsOneErrorAmongOthers(t *testing.T) {
	data := `vendor = "acme"
region = "jp"
title = "t"
source = "s"
checked = "2025-12-09"

[[target]]
name = "a"
host = "a.example"
purpose = "p"
port = 0
checks = ["dns", "tls"]
`
	_, err := ParseFile("acme/jp.toml", []byte(data))
	if err == nil {
		t.Fatal("no error")
	}
	want := `acme/jp.toml:5: checked: "2025-12-09" is a string: write the date without quotes (checked = 2025-12-09)
acme/jp.toml:11: target "a": port: 0 out of range 1-65535
acme/jp.toml:12: target "a": checks: dns, tls skips a stage: checks are dns, tcp, tls, http in that order, each needing the ones before it (http without tls for plain HTTP)`
	if err.Error() != want {
		t.Errorf("error:\n%v\nwant:\n%s", err, want)
	}
}

func TestDefaultsPortZero(t *testing.T) {
	_, err := ParseFile("acme/jp.toml", []byte("vendor = \"acme\"\nregion = \"jp\"\ntitle = \"t\"\nsource = \"s\"\nchecked = 2025-01-01\n[defaults]\nport = 0\n[[target]]\nname = \"a\"\nhost = \"a.example\"\npurpose = \"p\"\n"))
	if err == nil || !strings.Contains(err.Error(), `target "a": defaults.port: 0 out of range 1-65535`) {
		t.Errorf("error %v", err)
	}
}

func TestValidRequestPath(t *testing.T) {
	for _, p := range []string{"/", "/api/v1/health?x=1", "/%0d%0a"} {
		if err := ValidRequestPath(p); err != nil {
			t.Errorf("%q: %v", p, err)
		}
	}
	for _, p := range []string{"", "x", "/a b", "/a\r\nHost: evil", "/a\x00", "/a\x7f"} {
		if err := ValidRequestPath(p); err == nil {
			t.Errorf("%q accepted", p)
		}
	}
}
