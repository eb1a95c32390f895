package configs

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Issue 12: everything is validated at load, with file:line, in plain words.
func TestLoadRejects(t *testing.T) {
	const target = "[[target]]\nname = \"a\"\nhost = \"a.reachd.test\"\n" // lines 1-3
	const ipTarget = "[[target]]\nname = \"a\"\nhost = \"127.0.0.1\"\n"
	tests := []struct {
		name string
		body string
		env  map[string]string
		want string // after the file name
	}{
		{"empty servers", "[[resolver]]\nname = \"corp\"\nservers = []\n", nil, `:3: resolver.servers: empty: list IP[:port] servers, or leave servers out for `},
		{"resolver by name", "[[resolver]]\nname = \"corp\"\nservers = [\"dns.corp.example\"]\n", nil, `:3: resolver.servers: "dns.corp.example" is not an IP address or IP:port`},
		{"resolver port", "[[resolver]]\nname = \"corp\"\nservers = [\"127.0.0.1:70000\"]\n", nil, `:3: resolver.servers: "127.0.0.1:70000": port "70000" out of range 1-65535`},
		{"resolver port zero", "[[resolver]]\nname = \"corp\"\nservers = [\"[::1]:0\"]\n", nil, `:3: resolver.servers: "[::1]:0": port "0" out of range`},
		{"proxy port wraps", "[[path]]\nname = \"corp\"\nproxy = \"http://127.0.0.1:78664\"\n", nil, `:3: path.proxy: http://127.0.0.1:78664: port 78664 out of range 1-65535`},
		{"socks in HTTPS_PROXY", "[[path]]\nname = \"env\"\nproxy = \"environment\"\n", map[string]string{"HTTPS_PROXY": "socks5://127.0.0.1:1080"}, `:3: path.proxy: environment: HTTPS_PROXY socks5://127.0.0.1:1080: scheme "socks5": reachd speaks to http:// and https:// proxies only`},
		{"ftp in http_proxy", "[[path]]\nname = \"env\"\nproxy = \"environment\"\n", map[string]string{"http_proxy": "ftp://127.0.0.1"}, `:3: path.proxy: environment: HTTP_PROXY ftp://127.0.0.1: scheme "ftp"`},
		{"env proxy port", "[[path]]\nname = \"env\"\nproxy = \"environment\"\n", map[string]string{"HTTPS_PROXY": "127.0.0.1:99999"}, `:3: path.proxy: environment: HTTPS_PROXY http://127.0.0.1:99999: port 99999 out of range`},
		{"env proxy credentials redacted", "[[path]]\nname = \"env\"\nproxy = \"environment\"\n", map[string]string{"HTTPS_PROXY": "socks5://u:hunter2@127.0.0.1"}, `:3: path.proxy: environment: HTTPS_PROXY socks5://u:xxxxx@127.0.0.1`},
		{"interval typo", "[defaults]\ninterval = \"1ms\"\n", nil, `:2: defaults.interval: "1ms" is outside 1s to 24h`},
		{"interval overflow", "[defaults]\ninterval = \"2200000h\"\n", nil, `:2: defaults.interval: "2200000h" is outside 1s to 24h`},
		{"timeout typo", "[defaults]\ntimeout = \"1ms\"\n", nil, `:2: defaults.timeout: "1ms" is outside 100ms to 24h`},
		{"target interval", target + "interval = \"500ms\"\n", nil, `:4: target "a": interval: "500ms" is outside 1s to 24h`},
		{"sweep interval", "[defaults]\ntls_sweep_interval = \"10ms\"\n", nil, `:2: defaults.tls_sweep_interval: "10ms" is outside 1s to 720h`},
		{"port zero", target + "port = 0\n", nil, `:4: target "a": port: 0 out of range 1-65535`},
		{"checks skip tcp", target + "checks = [\"dns\", \"tls\"]\n", nil, `:4: target "a": checks: dns, tls skips a stage`},
		{"checks without dns", target + "checks = [\"tcp\", \"tls\"]\n", nil, `:4: target "a": checks: tcp, tls skips a stage`},
		{"checks twice", target + "checks = [\"dns\", \"dns\"]\n", nil, `:4: target "a": checks: dns, dns names a check twice`},
		{"http table without http", target + "checks = [\"dns\", \"tcp\", \"tls\"]\nhttp = { path = \"/x\" }\n", nil, `:5: target "a": http: set, but checks dns, tcp, tls has no http`},
		{"pin_issuer without tls", target + "checks = [\"dns\", \"tcp\"]\npin_issuer = \"Corp CA\"\n", nil, `:5: target "a": pin_issuer: set, but checks dns, tcp has no tls`},
		{"expect_cidrs on an IP", ipTarget + "expect_cidrs = [\"127.0.0.0/8\"]\n", nil, `:4: target "a": expect_cidrs: set, but host 127.0.0.1 is an IP address`},
		{"IP host with only dns", ipTarget + "checks = [\"dns\"]\n", nil, `:4: target "a": checks: only dns, but the host is an IP address`},
		{"header injection", target + "http = { path = \"/x\\r\\nX-Injected: 1\" }\n", nil, `:4: target "a": http.path: "/x\r\nX-Injected: 1" holds a space or a control character`},
		{"local vendor syntax", target + "vendor = \"Corp IT\"\n", nil, `:4: target "a": vendor: "Corp IT" must be 1 to 63 characters of a-z, 0-9 and -`},
		{"local region syntax", target + "region = \"JP\"\n", nil, `:4: target "a": region: "JP" must be a lowercase region code`},
		{"use without region", "[[use]]\nvendor = \"trendmicro-visionone\"\n", nil, `:1: use.region: missing (vendor "trendmicro-visionone" has: `},
		{"use without vendor", "[[use]]\nregion = \"jp\"\n", nil, `:1: use.vendor: missing (catalog: `},
		{"colon in user", "[[path]]\nname = \"corp\"\nproxy = \"http://127.0.0.1:3128\"\nusername = \"corp:svc\"\npassword_env = \"PW\"\n", map[string]string{"PW": "x"}, `:4: path.username: "corp:svc" holds a ':', which Basic authentication cannot carry`},
		{"paths in plain words", target + "paths = [\"corp\"]\n", nil, `:4: paths: unknown path "corp" (defined: direct)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := writeConfig(t, tt.body)
			_, err := Load(file, testOptions(t, tt.env))
			if err == nil {
				t.Fatal("loaded without error")
			}
			if !strings.Contains(err.Error(), file+tt.want) {
				t.Errorf("error lacks %q:\n%v", file+tt.want, err)
			}
			if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "[") && strings.Contains(err.Error(), "(defined: [") {
				t.Errorf("error reveals a password or speaks Go: %v", err)
			}
		})
	}
}

func TestEmptyPasswordFile(t *testing.T) {
	dir := t.TempDir()
	pass := filepath.Join(dir, "proxy.pass")
	if err := os.WriteFile(pass, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := writeConfig(t, "[[path]]\nname = \"corp\"\nproxy = \"http://127.0.0.1:3128\"\nusername = \"u\"\npassword_file = \""+pass+"\"\n")
	_, err := Load(file, testOptions(t, nil))
	if want := file + ":5: path.password_file: " + pass + " is empty"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v, want %q", err, want)
	}
}

// Problems come in the order of their lines, whichever check found them.
func TestErrorsInLineOrder(t *testing.T) {
	body := "[[target]]\nname = \"a\"\nhost = \"a.reachd.test\"\nport = 0\n" +
		"[[path]]\nname = \"corp\"\nproxy = \"ftp://x\"\n" +
		"[defaults]\ninterval = \"1ms\"\n" +
		"[[resolver]]\nname = \"r\"\nservers = []\n"
	file := writeConfig(t, body)
	_, err := Load(file, testOptions(t, nil))
	if err == nil {
		t.Fatal("loaded")
	}
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(file) + `:(\d+): `)
	var lines []int
	for _, m := range re.FindAllStringSubmatch(err.Error(), -1) {
		n, _ := strconv.Atoi(m[1])
		lines = append(lines, n)
	}
	if len(lines) != 4 {
		t.Fatalf("want 4 problems, got %v:\n%v", lines, err)
	}
	for i := 1; i < len(lines); i++ {
		if lines[i] < lines[i-1] {
			t.Errorf("lines out of order %v:\n%v", lines, err)
		}
	}
}

func TestEnvironmentPathWarnings(t *testing.T) {
	body := "[[path]]\nname = \"env\"\nproxy = \"environment\"\n"
	file := writeConfig(t, body)
	cfg, err := Load(file, testOptions(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	want := file + `:3: path "env": proxy = "environment", but neither HTTPS_PROXY nor HTTP_PROXY (nor https_proxy, http_proxy) is set: every target on this path goes direct`
	if got := strings.Join(cfg.Warnings, "\n"); got != want {
		t.Errorf("warnings %q, want %q", got, want)
	}
	// HTTPS_PROXY='' beside https_proxy: httpproxy.FromEnvironment takes
	// the first that is not empty.
	cfg, err = Load(file, testOptions(t, map[string]string{"HTTPS_PROXY": "", "https_proxy": "http://127.0.0.1:3128", "NO_PROXY": "", "no_proxy": "corp.example"}))
	if err != nil {
		t.Fatal(err)
	}
	if env := cfg.Paths[1].ProxyEnv; env.HTTPSProxy != "http://127.0.0.1:3128" || env.NoProxy != "corp.example" || len(cfg.Warnings) != 0 {
		t.Errorf("proxy env %+v, warnings %q", env, cfg.Warnings)
	}
}

// A password file on a hung mount (a FIFO nobody writes) fails the load
// with a named error after FileTimeout, instead of blocking it.
func TestPasswordFileTimesOut(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "proxy.pass")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Release the reader left behind in open(2).
		if f, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
			f.Close()
		}
	})
	file := writeConfig(t, "[[path]]\nname = \"corp\"\nproxy = \"http://127.0.0.1:3128\"\nusername = \"u\"\npassword_file = \""+fifo+"\"\n")
	opts := testOptions(t, nil)
	opts.FileTimeout = 50 * time.Millisecond
	_, err := Load(file, opts)
	want := file + ":5: path.password_file: reading " + fifo + " timed out after 50ms"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v, want %q", err, want)
	}
}
