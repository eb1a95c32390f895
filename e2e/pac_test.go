//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reachd/reachd/probe/probetest"
)

// pacScript chooses by host between two real squids and DIRECT; DEAD is
// a closed port, the proxy an agent finds dead and falls over from.
const pacScript = `
function FindProxyForURL(url, host) {
	if (dnsDomainIs(host, ".intranet.reachd.test") || isPlainHostName(host))
		return "DIRECT";
	if (host == "via-a.reachd.test")
		return "PROXY SQUID_A";
	if (host == "crl.reachd.test")
		return "PROXY DEAD; PROXY SQUID_A";
	if (host == "failover.reachd.test")
		return "PROXY DEAD; PROXY SQUID_B; DIRECT";
	if (shExpMatch(host, "all-dead.*"))
		return "PROXY DEAD; DIRECT";
	return "PROXY DEAD";
}
`

// listenOn80 listens on port 80 of a free private loopback address, the
// WPAD host's: WPAD URLs have no port.
func listenOn80(t *testing.T) net.Listener {
	t.Helper()
	for range 20 {
		ip := fmt.Sprintf("127.80.%d.%d", 1+rand.IntN(254), 1+rand.IntN(254))
		ln, err := net.Listen("tcp", net.JoinHostPort(ip, "80"))
		if err == nil {
			return ln
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatalf("WPAD host: %v", err)
		}
	}
	t.Fatal("WPAD host: no free loopback address on port 80")
	return nil
}

func servePAC(t *testing.T, ln net.Listener, path, body string) {
	t.Helper()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != path {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/x-ns-proxy-autoconfig")
		fmt.Fprint(w, body)
	})}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
}

// TestPACPaths: a PAC served by a loopback HTTP server and the same PAC
// found by WPAD (wpad.corp.reachd.test, named by the test's DNS) choose
// per target between two real squids and DIRECT; reachd falls over a dead
// proxy to the next entry and reports which one carried each probe, and
// squid's own logs agree. A plain-HTTP CRL host on port 80 goes to the
// proxy the PAC names as an absolute-form GET, never CONNECT, as on a
// proxy path.
func TestPACPaths(t *testing.T) {
	requireRoot(t)
	labCA, bumpCA := probetest.NewCA(t, "E2E Lab Root CA"), probetest.NewCA(t, "Squid Bump CA")
	hosts := []string{"via-a.reachd.test", "failover.reachd.test", "app.intranet.reachd.test", "all-dead.reachd.test"}
	dnsServer := probetest.NewDNSServer(t, probetest.Records{})
	servers := map[string]*probetest.TLSServer{}
	var ports []int
	for _, h := range hosts {
		s := probetest.NewTLSServer(t, probetest.Issuer(labCA), probetest.Hosts(h))
		servers[h] = s
		ports = append(ports, s.Port)
		dnsServer.Set(h, probetest.Entry{A: []string{"127.0.0.1"}})
	}
	squidA := startSquid(t, dnsServer.Addr, labCA, bumpCA, ports...)
	squidB := startSquid(t, dnsServer.Addr, labCA, bumpCA, ports...)
	dead := "127.0.0.1:" + strconv.Itoa(freePort(t))
	script := strings.NewReplacer("SQUID_A", "127.0.0.1:"+strconv.Itoa(squidA.OpenPort),
		"SQUID_B", "127.0.0.1:"+strconv.Itoa(squidB.OpenPort), "DEAD", dead).Replace(pacScript)

	pacLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	servePAC(t, pacLn, "/proxy.pac", script)
	dnsServer.Set("pac.reachd.test", probetest.Entry{A: []string{"127.0.0.1"}})
	pacURL := fmt.Sprintf("http://pac.reachd.test:%d/proxy.pac", pacLn.Addr().(*net.TCPAddr).Port)

	wpadLn := listenOn80(t)
	servePAC(t, wpadLn, "/wpad.dat", script)
	wpadIP := wpadLn.Addr().(*net.TCPAddr).IP.String()
	dnsServer.Set("wpad.corp.reachd.test", probetest.Entry{A: []string{wpadIP}})

	crlLn := listenOn80(t)
	crl := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/pki/crl/root.crl" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, "crl")
	})}
	go crl.Serve(crlLn)
	t.Cleanup(func() { crl.Close() })
	dnsServer.Set("crl.reachd.test", probetest.Entry{A: []string{crlLn.Addr().(*net.TCPAddr).IP.String()}})
	// wpad.site.corp.reachd.test is not in the DNS (NXDOMAIN): the walk
	// goes up one label to wpad.corp.reachd.test.

	dir := t.TempDir()
	caFile := writeFile(t, dir, "lab-ca.pem", string(labCA.PEM))
	var targets strings.Builder
	for _, h := range hosts {
		fmt.Fprintf(&targets, "\n[[target]]\nvendor = \"acme\"\nregion = \"jp\"\nname = %q\nhost = %q\nport = %d\n",
			strings.SplitN(h, ".", 2)[0], h, servers[h].Port)
	}
	targets.WriteString("\n[[target]]\nvendor = \"acme\"\nregion = \"jp\"\nname = \"crl\"\nhost = \"crl.reachd.test\"\nport = 80\n" +
		"checks = [\"dns\", \"tcp\", \"http\"]\nhttp = { path = \"/pki/crl/root.crl\", expect_status = [200] }\n")
	file := writeFile(t, dir, "reachd.toml", fmt.Sprintf(`site = "pac-e2e"
direct = false
[defaults]
interval = "30s"
timeout = "8s"

[[resolver]]
name = "lab"
servers = [%q]
search = ["site.corp.reachd.test"]

[trust]
ca_files = [%q]

[[path]]
name = "pac"
proxy = "pac"
pac_url = %q

[[path]]
name = "wpad"
proxy = "wpad"
%s`, dnsServer.Addr, caFile, pacURL, targets.String()))

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code, out, stderr := runReachd(t, ctx, nil, "check", "--config.file", file, "--format", "json")
	if code != 0 {
		t.Fatalf("exit %d, want 0 (every target reachable over its PAC choice)\n%s\n%s", code, stderr, out)
	}
	var doc struct {
		Results []struct {
			Target, Path, Reason, Detail string
			Success                      bool
			Stages                       []struct{ Stage string }
			PAC                          *struct {
				Source, Answer string
				ProxyUsed      string `json:"proxy_used"`
				Fallback       bool
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	want := map[string]string{
		"via-a":    "PROXY 127.0.0.1:" + strconv.Itoa(squidA.OpenPort),
		"crl":      "PROXY 127.0.0.1:" + strconv.Itoa(squidA.OpenPort),
		"failover": "PROXY 127.0.0.1:" + strconv.Itoa(squidB.OpenPort),
		"app":      "DIRECT",
		"all-dead": "DIRECT",
	}
	// A fallback: the carrier is not the answer's first entry, a dead proxy.
	fallback := map[string]bool{"failover": true, "all-dead": true, "crl": true}
	sources := map[string]string{"pac": pacURL, "wpad": "http://wpad.corp.reachd.test/wpad.dat"}
	if len(doc.Results) != 2*len(want) {
		t.Errorf("%d results, want %d", len(doc.Results), 2*len(want))
	}
	for _, r := range doc.Results {
		t.Logf("%s/%s: success=%v %s %s pac=%+v", r.Target, r.Path, r.Success, r.Reason, r.Detail, r.PAC)
		if r.PAC == nil || r.PAC.ProxyUsed != want[r.Target] || r.PAC.Source != sources[r.Path] || !r.Success || r.PAC.Fallback != fallback[r.Target] {
			t.Errorf("%s/%s: success %v, pac %+v; want carried by %q from %s, fallback %v", r.Target, r.Path, r.Success, r.PAC, want[r.Target], sources[r.Path], fallback[r.Target])
		}
	}
	// Squid's logs agree: A carried via-a only, B failover only, and no
	// squid saw the DIRECT targets.
	for _, tt := range []struct {
		name      string
		sq        *squid
		has, hasn []string
	}{
		{"squid A", squidA, []string{"CONNECT via-a.reachd.test:", "GET http://crl.reachd.test/pki/crl/root.crl"},
			[]string{"failover.reachd.test", "intranet", "all-dead", "CONNECT crl.reachd.test"}},
		{"squid B", squidB, []string{"CONNECT failover.reachd.test:"}, []string{"via-a.reachd.test", "intranet", "all-dead", "crl.reachd.test"}},
	} {
		log := tt.sq.accessLog()
		for _, s := range tt.has {
			if !strings.Contains(log, s) {
				t.Errorf("%s access.log lacks %q:\n%s", tt.name, s, log)
			}
		}
		for _, s := range tt.hasn {
			if strings.Contains(log, s) {
				t.Errorf("%s access.log has %q:\n%s", tt.name, s, log)
			}
		}
	}

	t.Run("the daemon exports the carrier and the fallback", func(t *testing.T) {
		d := startDaemon(t, "--config.file", file)
		want := []struct {
			name   string
			labels map[string]string
			value  string
		}{
			{"reachd_pac_proxy_info", map[string]string{"target": "failover", "path": "pac", "proxy": want["failover"]}, "1"},
			{"reachd_pac_fallback", map[string]string{"target": "failover", "path": "pac"}, "1"},
			{"reachd_pac_proxy_info", map[string]string{"target": "via-a", "path": "wpad", "proxy": want["via-a"]}, "1"},
			{"reachd_pac_fallback", map[string]string{"target": "via-a", "path": "wpad"}, "0"},
			{"reachd_pac_proxy_info", map[string]string{"target": "all-dead", "path": "pac", "proxy": "DIRECT"}, "1"},
			{"reachd_pac_fallback", map[string]string{"target": "all-dead", "path": "pac"}, "1"},
		}
		d.waitFor(t, "/metrics", func(code int, body string) bool {
			for _, w := range want {
				if !hasSeries(body, w.name, w.labels, w.value) {
					return false
				}
			}
			return code == 200
		})
	})

	t.Run("the text report names the carrier", func(t *testing.T) {
		_, out, _ := runReachd(t, ctx, nil, "check", "--config.file", file, "--target", "failover", "--path", "pac")
		if err := contains(out, "pac: PROXY "+dead+"; "+want["failover"]+"; DIRECT → carried by "+want["failover"]+", past the first choice, which could not be reached ("+pacURL+")"); err != nil {
			t.Errorf("%v\n%s", err, out)
		}
	})

	t.Run("check --wpad", func(t *testing.T) {
		code, out, stderr := runReachd(t, ctx, nil, "check", "--config.file", file, "--wpad")
		if code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, out, stderr)
		}
		if err := contains(out, `search domains of resolver "lab": site.corp.reachd.test`,
			"http://wpad.site.corp.reachd.test/wpad.dat: wpad.site.corp.reachd.test does not resolve",
			"http://wpad.corp.reachd.test/wpad.dat: serves a PAC",
			"WPAD found the PAC at http://wpad.corp.reachd.test/wpad.dat"); err != nil {
			t.Errorf("%v\n%s", err, out)
		}
		if strings.Contains(out, "wpad.reachd.test") {
			t.Errorf("looked further up after finding the PAC:\n%s", out)
		}
	})

	t.Run("validate rejects a pac path without a source", func(t *testing.T) {
		bad := writeFile(t, dir, "bad.toml", fmt.Sprintf("[[resolver]]\nname = \"lab\"\nservers = [%q]\n\n[[path]]\nname = \"pac\"\nproxy = \"pac\"\n", dnsServer.Addr))
		code, out, stderr := runReachd(t, ctx, nil, "validate", "--config.file", bad)
		if code != 2 || !strings.Contains(stderr, bad+`:7: path.pac_url: missing: proxy = "pac" needs pac_url`) {
			t.Errorf("exit %d\n%s\n%s", code, out, stderr)
		}
	})
}
