package configs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reachd/reachd/targets"
)

// testOptions keeps a load away from the host: a resolv.conf of its own
// and an empty environment unless env is given.
func testOptions(t *testing.T, env map[string]string) Options {
	t.Helper()
	rc := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(rc, []byte("nameserver 127.0.0.53\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return Options{ResolvConf: rc, LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "reachd.toml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []string // each must appear, after the file name
	}{
		{"unknown key", "site = \"x\"\ncolour = \"red\"\n", []string{`:2: unknown key "colour"`}},
		{"unknown key in target", "[[target]]\nname = \"a\"\nhost = \"a.reachd.test\"\nprot = 80\n", []string{`:4: unknown key "target.prot"`}},
		{"bad duration", "[defaults]\ninterval = \"1 minute\"\n", []string{`:2: defaults.interval: "1 minute" is not a duration`}},
		{"bad target duration", "[[target]]\nname = \"a\"\nhost = \"a.reachd.test\"\ntimeout = \"-1s\"\n", []string{`:4: target "a": timeout: "-1s" must be positive`}},
		{"duplicate target", "[[target]]\nname = \"a\"\nhost = \"a.reachd.test\"\n\n[[target]]\nname = \"a\"\nhost = \"b.reachd.test\"\n", []string{`:5: target "a": duplicate target local/local/a (first defined at `}},
		{"port out of range", "[[target]]\nname = \"a\"\nhost = \"a.reachd.test\"\nport = 70000\n", []string{`:4: target "a": port: 70000 out of range 1-65535`}},
		{"unreadable password file", "[[path]]\nname = \"corp\"\nproxy = \"http://proxy.reachd.test:3128\"\nusername = \"u\"\npassword_file = \"/nonexistent/proxy.pass\"\n", []string{`:5: path.password_file: open /nonexistent/proxy.pass: no such file or directory`}},
		{"inline password", "[[path]]\nname = \"corp\"\nproxy = \"http://proxy.reachd.test:3128\"\nusername = \"u\"\npassword = \"hunter2\"\n", []string{`:5: path.password: passwords are never written inline`}},
		{"credentials in proxy URL", "[[path]]\nname = \"corp\"\nproxy = \"http://u:hunter2@proxy.reachd.test:3128\"\n", []string{`:3: path.proxy: http://u:xxxxx@proxy.reachd.test:3128 carries credentials`}},
		{"unknown path", "[[target]]\nname = \"a\"\nhost = \"a.reachd.test\"\npaths = [\"corp\"]\n", []string{`:4: paths: unknown path "corp"`}},
		{"unknown vendor", "[[use]]\nvendor = \"nobody\"\nregion = \"jp\"\n", []string{`:2: use.vendor: unknown vendor "nobody"`}},
		{"unknown region", "[[use]]\nvendor = \"trendmicro-visionone\"\nregion = \"mars\"\n", []string{`:3: use.region: vendor "trendmicro-visionone" has no region "mars"`}},
		{"timeout over interval", "[defaults]\ninterval = \"5s\"\ntimeout = \"10s\"\n", []string{`:3: defaults.timeout: 10s is longer than the interval 5s`}},
		{"bad resolver", "[[resolver]]\nname = \"corp\"\nservers = [\"\"]\nprotocol = \"quic\"\n", []string{`:3: resolver.servers: "" is not an IP address or IP:port`, `:4: resolver.protocol: "quic" must be udp or tcp`}},
		{"syntax", "site = \n", []string{`:1: `}},
		{"key in another case", "SITE = \"x\"\n[[target]]\nname = \"a\"\nhost = \"a.reachd.test\"\nPort = 1\n", []string{`:1: unknown key "SITE" (keys are lowercase)`, `:5: unknown key "target.Port" (keys are lowercase)`}},
		{"unparsable environment proxy", "[[path]]\nname = \"env\"\nproxy = \"environment\"\n", []string{`:3: path.proxy: environment: HTTPS_PROXY is not a proxy URL`}},
		{"all at once", "[defaults]\ninterval = \"x\"\n[[target]]\nname = \"A\"\nhost = \"a.reachd.test\"\n", []string{`:2: defaults.interval`, `:4: target "A": name: "A" must be`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := writeConfig(t, tt.body)
			_, err := Load(file, testOptions(t, map[string]string{"HTTPS_PROXY": "http://\x7fproxy.reachd.test"}))
			if err == nil {
				t.Fatal("loaded without error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), file+w) {
					t.Errorf("error lacks %q:\n%v", file+w, err)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error reveals the password: %v", err)
			}
		})
	}
}

func TestLoadFull(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "proxy.pass"), []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "reachd.toml")
	body := `site = "osaka-branch"
[defaults]
interval = "30s"
timeout = "5s"
concurrency = 4

[[resolver]]
name = "corp"
servers = ["127.0.0.1:5353", "127.0.0.2"]
protocol = "tcp"

[[path]]
name = "corp-proxy"
proxy = "http://proxy.reachd.test:3128"
username = "svc"
password_file = "proxy.pass"

[[path]]
name = "env"
proxy = "environment"
password_env = "REACHD_PW"
username = "svc"

[[use]]
vendor = "trendmicro-visionone"
region = "jp"
paths = ["corp-proxy"]

[[target]]
name = "intranet"
host = "sync.reachd.test"
port = 8443
interval = "10s"
checks = ["dns", "tcp"]
`
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(file, testOptions(t, map[string]string{"REACHD_PW": "envpw", "https_proxy": "http://127.0.0.1:9"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Site != "osaka-branch" || cfg.Defaults.Interval != 30*time.Second || cfg.Defaults.Concurrency != 4 {
		t.Errorf("defaults: %+v", cfg.Defaults)
	}
	if got := cfg.Resolvers[0].Servers; strings.Join(got, ",") != "127.0.0.1:5353,127.0.0.2:53" {
		t.Errorf("servers %v", got)
	}
	if len(cfg.Paths) != 3 || !cfg.Paths[0].Direct() || cfg.Paths[1].Password != "s3cret" || cfg.Paths[1].Proxy.Host != "proxy.reachd.test:3128" {
		t.Errorf("paths %+v", cfg.Paths)
	}
	if env := cfg.Paths[2]; !env.Environment || env.Password != "envpw" || env.ProxyEnv.HTTPSProxy != "http://127.0.0.1:9" {
		t.Errorf("environment path %+v", env)
	}
	var local *targets.Target
	for i, tg := range cfg.Targets {
		if tg.Vendor == "trendmicro-visionone" && strings.Join(tg.Paths, ",") != "corp-proxy" {
			t.Errorf("%s paths %v", tg.ID(), tg.Paths)
		}
		if tg.Vendor == "local" {
			local = &cfg.Targets[i]
		}
	}
	if local == nil || local.Interval != 10*time.Second || local.Timeout != 5*time.Second || len(local.Paths) != 3 || local.Pos != file+":29" {
		t.Errorf("local target %+v", local)
	}
}

func TestDefaultConfigLoads(t *testing.T) {
	cfg, err := Load("", testOptions(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Targets) == 0 {
		t.Fatal("the embedded default probes nothing")
	}
	if cfg.Resolvers[0].Servers[0] != "127.0.0.53:53" {
		t.Errorf("system resolver servers %v", cfg.Resolvers[0].Servers)
	}
}

func TestNoUseMeansNoCatalog(t *testing.T) {
	cfg, err := Load(writeConfig(t, "site = \"x\"\n"), testOptions(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Targets) != 0 {
		t.Errorf("a config without [[use]] probes %d targets", len(cfg.Targets))
	}
}

func TestExamplesLoad(t *testing.T) {
	files, _ := filepath.Glob("examples/*.toml")
	if len(files) == 0 {
		t.Fatal("no examples")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			dir := t.TempDir()
			// Examples name files under /etc/reachd; load them with stand-ins.
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			body := strings.ReplaceAll(string(data), "/etc/reachd/", dir+"/")
			for _, name := range []string{"proxy.pass", "inspection-ca.pem", "lab-root.pem"} {
				writeStandIn(t, filepath.Join(dir, name))
			}
			if _, err := Parse(f, []byte(body), dir, testOptions(t, map[string]string{"REACHD_PROXY_PASSWORD": "x"})); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestWarnsAboutReadablePasswordFile(t *testing.T) {
	dir := t.TempDir()
	pass := filepath.Join(dir, "proxy.pass")
	for _, tt := range []struct {
		mode os.FileMode
		warn bool
	}{{0o600, false}, {0o640, true}, {0o644, true}} {
		if err := os.WriteFile(pass, []byte("pw\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Chmod(pass, tt.mode)
		file := writeConfig(t, "[[path]]\nname = \"corp\"\nproxy = \"http://127.0.0.1:3128\"\nusername = \"u\"\npassword_file = \""+pass+"\"\n")
		cfg, err := Load(file, testOptions(t, nil))
		if err != nil {
			t.Fatal(err)
		}
		got := strings.Join(cfg.Warnings, "\n")
		if tt.warn != (got != "") || tt.warn && !strings.Contains(got, file+":5: path.password_file: ") {
			t.Errorf("mode %04o: warnings %q", tt.mode, got)
		}
		if strings.Contains(got, "pw") && !strings.Contains(got, "password_file") {
			t.Errorf("warning reveals the password: %q", got)
		}
	}
}
