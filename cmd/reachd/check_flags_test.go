package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
)

// Ad hoc check speaks in the flags it was given, not in the config it
// generates.
func TestAdHocErrorsSpeakInFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--host", "127.0.0.1:99999"}, `--host 127.0.0.1:99999: port "99999" out of range 1-65535`},
		{[]string{"--host", "*.example.com"}, `--host *.example.com: "*.example.com" is a wildcard and cannot be probed`},
		{[]string{"--host", "ftp://127.0.0.1/"}, `--host ftp://127.0.0.1/: scheme "ftp": reachd probes https:// and http:// URLs`},
		{[]string{"--host", "127.0.0.1", "--proxy", "ftp://127.0.0.1:21"}, `reachd check: --proxy: scheme "ftp": use http:// or https://`},
		{[]string{"--host", "127.0.0.1", "--proxy", "http://127.0.0.1:3128", "--proxy-user", "u"}, `reachd check: --proxy-user: environment variable "REACHD_PROXY_PASSWORD" is not set`},
		{[]string{"--host", "127.0.0.1", "--resolver", "dns.corp.example"}, `reachd check: --resolver: "dns.corp.example" is not an IP address or IP:port`},
		{[]string{"--host", "127.0.0.1", "--timeout", "1ms", "--resolver", "127.0.0.1:1"}, `reachd check: --timeout: "1ms" is outside 100ms to 24h`},
		{[]string{"--host", "127.0.0.1", "--vendor", "acme"}, `reachd check: --vendor filter the targets of a config; with --host there is just the host`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Setenv("REACHD_PROXY_PASSWORD", "") // restored after the test
			os.Unsetenv("REACHD_PROXY_PASSWORD")
			code, _, stderr := reachd(t, append([]string{"check"}, tt.args...)...)
			if code != exitConfig || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr lacks %q:\n%s", code, tt.want, stderr)
			}
			for _, leak := range []string{"--host:", "password_env", "path.", "target \"host\""} {
				if strings.Contains(stderr, leak) {
					t.Errorf("stderr speaks of the generated config (%q):\n%s", leak, stderr)
				}
			}
		})
	}
}

// --host takes a URL: its scheme and path are probed.
func TestAdHocURL(t *testing.T) {
	var mu sync.Mutex
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = r.URL.RequestURI()
		mu.Unlock()
		w.WriteHeader(204)
	}))
	defer srv.Close()
	code, stdout, stderr := reachd(t, "check", "--host", srv.URL+"/health?x=1", "--resolver", "127.0.0.1:1", "--format", "json")
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	var rep struct {
		Results []struct {
			Port int `json:"port"`
			HTTP struct {
				Status int `json:"status"`
			} `json:"http"`
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(rep.Results) != 1 || rep.Results[0].HTTP.Status != 204 || got != "/health?x=1" {
		t.Errorf("results %+v, request %q\n%s", rep.Results, got, stdout)
	}
}

// A filter that names nothing says so and lists what the config has.
func TestCheckFilterNamesNothing(t *testing.T) {
	cfg := writeFile(t, t.TempDir(), "reachd.toml", loopbackConfig+"[[path]]\nname = \"corp\"\nproxy = \"http://127.0.0.1:1\"\n[[target]]\nname = \"a\"\nhost = \"127.0.0.1\"\nport = 1\nchecks = [\"tcp\"]\n")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--path", "nosuch"}, "reachd check: --path nosuch: no such path (configured paths: direct, corp)"},
		{[]string{"--vendor", "acme"}, "reachd check: --vendor acme: the config probes no target of this vendor (configured vendors: local)"},
		{[]string{"--target", "b"}, "reachd check: --target b: no configured target has this name"},
	} {
		code, _, stderr := reachd(t, append([]string{"check", "--config.file", cfg}, tt.args...)...)
		if code != exitConfig || !strings.Contains(stderr, tt.want) {
			t.Errorf("%v: exit %d, stderr lacks %q:\n%s", tt.args, code, tt.want, stderr)
		}
	}
}

// --failed through the command: the passing probe is counted, not listed.
func TestCheckFailedFlag(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	port := srv.Listener.Addr().String()[len("127.0.0.1:"):]
	cfg := writeFile(t, t.TempDir(), "reachd.toml", loopbackConfig+"[[target]]\nname = \"up\"\nhost = \"127.0.0.1\"\nport = "+port+"\nchecks = [\"tcp\"]\n[[target]]\nname = \"down\"\nhost = \"127.0.0.1\"\nport = 1\nchecks = [\"tcp\"]\n")
	code, stdout, _ := reachd(t, "check", "--config.file", cfg, "--failed")
	if code != exitFailed || strings.Contains(stdout, "  up ") || !strings.Contains(stdout, "down") || !strings.Contains(stdout, "2 probes: 1 passed, 1 failed") ||
		!strings.Contains(stdout, "probes: local/local/down via direct") || !strings.Contains(stdout, "filters: --failed") {
		t.Errorf("exit %d\n%s", code, stdout)
	}
}
