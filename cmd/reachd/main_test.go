package main

import (
	"bytes"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func reachd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(args, &out, &errb)
	return code, out.String(), errb.String()
}

// A config that never leaves loopback: its own resolver and IP targets.
const loopbackConfig = `site = "test"
[[resolver]]
name = "lab"
servers = ["127.0.0.1:1"]
`

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		body string
		want string // after "file:"
	}{
		{"unknown key", loopbackConfig + "colour = \"red\"\n", `5: unknown key "resolver.colour"`},
		{"bad duration", loopbackConfig + "[defaults]\ninterval = \"often\"\n", `6: defaults.interval: "often" is not a duration`},
		{"duplicate target", loopbackConfig + "[[target]]\nname = \"a\"\nhost = \"127.0.0.1\"\n[[target]]\nname = \"a\"\nhost = \"127.0.0.2\"\n", `8: target "a": duplicate target local/local/a`},
		{"port out of range", loopbackConfig + "[[target]]\nname = \"a\"\nhost = \"127.0.0.1\"\nport = 0x10000\n", `8: target "a": port: 65536 out of range 1-65535`},
		{"unreadable password file", loopbackConfig + "[[path]]\nname = \"corp\"\nproxy = \"http://127.0.0.1:3128\"\nusername = \"u\"\npassword_file = \"missing.pass\"\n", `9: path.password_file: open `},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := writeFile(t, t.TempDir(), "reachd.toml", tt.body)
			code, _, stderr := reachd(t, "validate", "--config.file", file)
			if code != exitConfig {
				t.Errorf("exit %d, want %d", code, exitConfig)
			}
			if !strings.Contains(stderr, file+":"+tt.want) {
				t.Errorf("stderr lacks %q:\n%s", file+":"+tt.want, stderr)
			}
		})
	}
	file := writeFile(t, t.TempDir(), "reachd.toml", loopbackConfig+"[[target]]\nname = \"a\"\nhost = \"127.0.0.1\"\n")
	if code, stdout, stderr := reachd(t, "validate", "--config.file", file); code != exitOK || !strings.Contains(stdout, "valid") {
		t.Errorf("valid config: exit %d\n%s%s", code, stdout, stderr)
	}
}

func TestUsageErrorExits2(t *testing.T) {
	if code, _, _ := reachd(t, "check", "--format", "yaml"); code != exitConfig {
		t.Errorf("bad flag value: exit %d", code)
	}
	if code, _, stderr := reachd(t, "check", "--config.file", "/nonexistent/reachd.toml"); code != exitConfig || !strings.Contains(stderr, "/nonexistent/reachd.toml") {
		t.Errorf("missing config: exit %d %s", code, stderr)
	}
}

func TestReload(t *testing.T) {
	dir := t.TempDir()
	two := loopbackConfig + "[[target]]\nname = \"keep\"\nhost = \"127.0.0.1\"\nport = 1\n[[target]]\nname = \"drop\"\nhost = \"127.0.0.1\"\nport = 2\n"
	file := writeFile(t, dir, "reachd.toml", two)
	d, err := startDaemon(file, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer d.sched.Stop()
	h := d.server(true).Handler()
	scrape := func() string {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		body, _ := io.ReadAll(rec.Body)
		return string(body)
	}
	has := func(m, name string) bool { return strings.Contains(m, `target="`+name+`"`) }
	if m := scrape(); !has(m, "keep") || !has(m, "drop") || !strings.Contains(m, "reachd_config_last_reload_successful 1") {
		t.Fatalf("initial scrape lacks the targets:\n%s", m)
	}

	writeFile(t, dir, "reachd.toml", two+"colour = \"red\"\n")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/-/reload", nil))
	if rec.Code != 500 || !strings.Contains(rec.Body.String(), `13: unknown key "target.colour"`) {
		t.Errorf("bad reload answered %d %s", rec.Code, rec.Body.String())
	}
	if m := scrape(); !has(m, "keep") || !has(m, "drop") || !strings.Contains(m, "reachd_config_last_reload_successful 0") {
		t.Errorf("after a bad reload the old config must keep serving and the reload metric be 0:\n%s", m)
	}

	writeFile(t, dir, "reachd.toml", loopbackConfig+"[[target]]\nname = \"keep\"\nhost = \"127.0.0.1\"\nport = 1\n")
	if err := d.reload(); err != nil {
		t.Fatal(err)
	}
	if m := scrape(); !has(m, "keep") || has(m, "drop") || !strings.Contains(m, "reachd_config_last_reload_successful 1") {
		t.Errorf("after removing a target its series must vanish:\n%s", m)
	}
}
