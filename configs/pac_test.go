package configs

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestLoadPACErrors(t *testing.T) {
	tests := []struct {
		name, body string
		want       []string
	}{
		{"pac without a source", "[[path]]\nname = \"pac\"\nproxy = \"pac\"\n", []string{`:3: path.pac_url: missing: proxy = "pac" needs pac_url`}},
		{"pac with both", "[[path]]\nname = \"pac\"\nproxy = \"pac\"\npac_url = \"http://pac.reachd.test/p.pac\"\npac_file = \"p.pac\"\n", []string{`:5: path.pac_file: set pac_url or pac_file, not both`}},
		{"pac_url scheme", "[[path]]\nname = \"pac\"\nproxy = \"pac\"\npac_url = \"ftp://pac.reachd.test/p.pac\"\n", []string{`:4: path.pac_url: scheme "ftp"`}},
		{"pac_url without host", "[[path]]\nname = \"pac\"\nproxy = \"pac\"\npac_url = \"http:///p.pac\"\n", []string{`:4: path.pac_url: "http:///p.pac" has no host`}},
		{"pac_url with credentials", "[[path]]\nname = \"pac\"\nproxy = \"pac\"\npac_url = \"http://u:hunter2@pac.reachd.test/p.pac\"\n", []string{`:4: path.pac_url: http://u:xxxxx@pac.reachd.test/p.pac carries credentials`}},
		{"remote file URL", "[[path]]\nname = \"pac\"\nproxy = \"pac\"\npac_url = \"file://host/p.pac\"\n", []string{`:4: path.pac_url: "file://host/p.pac": a file:// URL names a local file`}},
		{"missing pac_file", "[[path]]\nname = \"pac\"\nproxy = \"pac\"\npac_file = \"/nonexistent/p.pac\"\n", []string{`:4: path.pac_file: stat /nonexistent/p.pac: no such file or directory`}},
		{"pac_url on a proxy path", "[[path]]\nname = \"corp\"\nproxy = \"http://proxy.reachd.test:3128\"\npac_url = \"http://pac.reachd.test/p.pac\"\n", []string{`:4: path.pac_url: only a path with proxy = "pac"`}},
		{"pac_file on a wpad path", "[[resolver]]\nname = \"r\"\nservers = [\"127.0.0.1\"]\nsearch = [\"corp.reachd.test\"]\n[[path]]\nname = \"w\"\nproxy = \"wpad\"\npac_file = \"p.pac\"\n", []string{`:8: path.pac_file: only a path with proxy = "pac"`}},
		{"wpad without search domains", "[[resolver]]\nname = \"r\"\nservers = [\"127.0.0.1\"]\nsearch = []\n[[path]]\nname = \"w\"\nproxy = \"wpad\"\n", []string{`:7: path.proxy: wpad: the first resolver has no search domain`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := writeConfig(t, tt.body)
			_, err := Load(file, testOptions(t, nil))
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

func TestLoadPAC(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "proxy.pac"), []byte(`function FindProxyForURL(u, h) { return "DIRECT"; }`), 0o644); err != nil {
		t.Fatal(err)
	}
	body := `
[[resolver]]
name = "corp"
servers = ["127.0.0.1:5353"]
search = ["branch.corp.reachd.test", "corp.reachd.test"]

[[path]]
name = "pac-url"
proxy = "pac"
pac_url = "http://pac.corp.reachd.test/proxy.pac"

[[path]]
name = "pac-file"
proxy = "pac"
pac_file = "proxy.pac"

[[path]]
name = "wpad"
proxy = "wpad"
`
	file := filepath.Join(dir, "reachd.toml")
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(file, testOptions(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Path{}
	for _, p := range cfg.Paths {
		byName[p.Name] = p
	}
	if p := byName["pac-url"]; p.PAC == nil || p.PAC.URL != "http://pac.corp.reachd.test/proxy.pac" || p.Direct() || p.Proxy != nil {
		t.Errorf("pac-url: %+v", p)
	}
	if p := byName["pac-file"]; p.PAC == nil || p.PAC.File != filepath.Join(dir, "proxy.pac") || p.Direct() {
		t.Errorf("pac-file: %+v", p)
	}
	if p := byName["wpad"]; p.PAC == nil || !p.PAC.WPAD || !slices.Equal(p.PAC.Domains, []string{"branch.corp.reachd.test", "corp.reachd.test"}) {
		t.Errorf("wpad: %+v", p.PAC)
	}
	if !byName["direct"].Direct() {
		t.Errorf("direct is not direct")
	}
}

// TestSearchFromResolvConf: a resolver without a search key takes the
// search line of resolv.conf.
func TestSearchFromResolvConf(t *testing.T) {
	opts := testOptions(t, nil)
	if err := os.WriteFile(opts.ResolvConf, []byte("nameserver 127.0.0.53\nsearch site.corp.reachd.test corp.reachd.test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(writeConfig(t, "[[path]]\nname = \"w\"\nproxy = \"wpad\"\n"), opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Resolvers[0].Search; !slices.Equal(got, []string{"site.corp.reachd.test", "corp.reachd.test"}) {
		t.Errorf("search %v", got)
	}
}
