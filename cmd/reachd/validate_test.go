package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidateCatalogDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "acme"), 0o755); err != nil {
		t.Fatal(err)
	}
	good := "vendor = \"acme\"\nregion = \"lab\"\ntitle = \"t\"\nsource = \"s\"\nchecked = 2025-01-01\n[[target]]\nname = \"y\"\nhost = \"y.example\"\npurpose = \"p\"\n"
	writeFile(t, filepath.Join(dir, "acme"), "lab.toml", good)
	cfg := writeFile(t, t.TempDir(), "reachd.toml", loopbackConfig)
	code, stdout, stderr := reachd(t, "validate", "--config.file", cfg, "--catalog.dir", dir)
	if code != exitOK || !strings.Contains(stdout, dir+": valid: 1 target files, 1 targets") {
		t.Errorf("exit %d\n%s%s", code, stdout, stderr)
	}
	bad := strings.Replace(good, "checked = 2025-01-01", "checked = \"2025-01-01\"", 1) + "port = 0\n"
	writeFile(t, filepath.Join(dir, "acme"), "lab.toml", bad)
	code, _, stderr = reachd(t, "validate", "--config.file", cfg, "--catalog.dir", dir)
	file := filepath.Join(dir, "acme", "lab.toml")
	want := file + ":5: checked: \"2025-01-01\" is a string: write the date without quotes (checked = 2025-12-09)\n" + file + ":10: target \"y\": port: 0 out of range 1-65535\n"
	if code != exitConfig || stderr != want {
		t.Errorf("exit %d\n%s\nwant:\n%s", code, stderr, want)
	}
}
