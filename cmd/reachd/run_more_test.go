package main

import (
	"log/slog"
	"os"
	"strings"
	"testing"
)

// --log.level=debug logs every run with its stages.
func TestDebugLogsRunStages(t *testing.T) {
	cfg := writeFile(t, t.TempDir(), "reachd.toml", loopbackConfig+"[[target]]\nname = \"a\"\nhost = \"127.0.0.1\"\nport = 1\nchecks = [\"tcp\"]\n")
	log := newSyncLog()
	ran := log.arrived(`msg="probe run" probe=local/local/a/direct success=false`)
	d, err := startDaemon(cfg, slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	defer d.sched.Stop()
	<-ran // the first run comes within FirstRunWithin
	out := log.String()
	if !strings.Contains(out, `stages="tcp failed `) || !strings.Contains(out, `reason tcp_refused"`) {
		t.Errorf("the debug line lacks the stages:\n%s", out)
	}
}

// An environment path with no proxy variable set warns in check, which
// would otherwise probe direct without a word.
func TestCheckWarnsAboutEnvironmentWithoutProxy(t *testing.T) {
	for _, k := range []string{"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"} {
		t.Setenv(k, "") // restored after the test
		os.Unsetenv(k)
	}
	cfg := writeFile(t, t.TempDir(), "reachd.toml", loopbackConfig+"[[path]]\nname = \"env\"\nproxy = \"environment\"\n[[target]]\nname = \"a\"\nhost = \"127.0.0.1\"\nport = 1\nchecks = [\"tcp\"]\n")
	code, stdout, stderr := reachd(t, "check", "--config.file", cfg)
	want := "warning: " + cfg + `:7: path "env": proxy = "environment", but neither HTTPS_PROXY nor HTTP_PROXY`
	if code != exitFailed || !strings.Contains(stdout, want) || !strings.Contains(stdout, "path env: none (proxy = \"environment\", but no proxy variable was set: direct)") {
		t.Errorf("exit %d, report lacks %q:\n%s%s", code, want, stdout, stderr)
	}
	_, _, stderr = reachd(t, "check", "--config.file", cfg, "--format", "json")
	if !strings.Contains(stderr, want) {
		t.Errorf("json: stderr lacks the warning:\n%s", stderr)
	}
}

func TestRouteOptions(t *testing.T) {
	for _, tt := range []struct {
		o                      routeOptions
		prefix, external, fail string
	}{
		{routeOptions{}, "", "", ""},
		{routeOptions{prefix: "/reachd/"}, "/reachd", "/reachd", ""},
		{routeOptions{externalURL: "https://ops.example/reachd/"}, "/reachd", "/reachd", ""},
		{routeOptions{externalURL: "https://ops.example/reachd/", prefix: "/"}, "", "/reachd", ""},
		{routeOptions{prefix: "reachd"}, "", "", "must start with /"},
		{routeOptions{externalURL: "ops.example/reachd"}, "", "", "is not an http:// or https:// URL"},
	} {
		prefix, external, err := tt.o.resolve()
		if tt.fail != "" {
			if err == nil || !strings.Contains(err.Error(), tt.fail) {
				t.Errorf("%+v: error %v, want %q", tt.o, err, tt.fail)
			}
			continue
		}
		if err != nil || prefix != tt.prefix || external != tt.external {
			t.Errorf("%+v: %q %q %v, want %q %q", tt.o, prefix, external, err, tt.prefix, tt.external)
		}
	}
}
