//go:build e2e

package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestFleet proves the push path of docs/operations.md end to end: two sites, each with
// reachd and a Prometheus in agent mode that remote-writes with a site external label to a
// central Prometheus (--web.enable-remote-write-receiver), where the shipped rules run and
// the shipped Alertmanager routing receives. Cutting one site's egress fires that site's
// ReachdSiteEgressLost, with its site label, and nothing for the other site.
//
// The network: an internet namespace with the targets of TestAlerts on alertsInetAddr (on
// its loopback), a central namespace, and two site namespaces without a default route, each
// joined to the internet by one veth pair and to the central namespace by another:
//
//	site-a 10.201.1.1 <-> 10.201.1.2 internet     site-a 10.202.1.1 <-> 10.202.1.2 central
//	site-b 10.201.2.1 <-> 10.201.2.2 internet     site-b 10.202.2.1 <-> 10.202.2.2 central
func TestFleet(t *testing.T) {
	bins := alertsRequire(t)
	dir := t.TempDir()
	alertsWriteCerts(t, dir)
	f := fleetNewNet(t, dir)
	f.startHelper(t, dir)

	rules := fleetRules(t, dir)
	central := filepath.Join(dir, "central.yml")
	fleetWrite(t, central, fmt.Sprintf(`global: {evaluation_interval: 1s}
rule_files: [%q]
alerting:
  alertmanagers:
    - static_configs: [{targets: ["127.0.0.1:9093"]}]
`, rules))
	am, err := filepath.Abs("../deploy/alertmanager/alertmanager.yml")
	if err != nil {
		t.Fatal(err)
	}
	f.start(t, "alertmanager", f.central, nil, bins.alertmanager, "--config.file="+am,
		"--storage.path="+filepath.Join(dir, "alertmanager"), "--web.listen-address=127.0.0.1:9093",
		"--cluster.listen-address=")
	f.start(t, "central-prometheus", f.central, nil, bins.prometheus, "--config.file="+central,
		"--storage.tsdb.path="+filepath.Join(dir, "central"), "--web.listen-address=0.0.0.0:9090",
		"--web.enable-remote-write-receiver", "--rules.alert.resend-delay=1s")

	for i, site := range fleetSites {
		ns := f.sites[i]
		cfg := filepath.Join(dir, site+".toml")
		var toml strings.Builder
		fmt.Fprintf(&toml, "site = %q\n\n[defaults]\ninterval = \"2s\"\ntimeout = \"1s\"\n\n", site)
		fmt.Fprintf(&toml, "[[resolver]]\nname = \"internet\"\nservers = [\"%s:53\"]\n\n", alertsInetAddr)
		fmt.Fprintf(&toml, "[trust]\nca_files = [%q]\n", filepath.Join(dir, "ca.pem"))
		for _, tg := range alertsTargets {
			fmt.Fprintf(&toml, "\n[[target]]\nvendor = %q\nregion = %q\nname = %q\nhost = %q\nport = %d\n",
				tg.vendor, tg.region, tg.name, tg.host, tg.port)
		}
		fleetWrite(t, cfg, toml.String())
		agent := filepath.Join(dir, site+"-agent.yml")
		fleetWrite(t, agent, fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  external_labels: {site: %s}
scrape_configs:
  - job_name: reachd
    static_configs: [{targets: ["127.0.0.1:9716"]}]
remote_write:
  - url: http://10.202.%d.2:9090/api/v1/write
    queue_config: {batch_send_deadline: 1s, min_backoff: 100ms, max_backoff: 1s}
`, site, i+1))
		f.start(t, site+"-reachd", ns, nil, bins.reachd, "run", "--config.file="+cfg,
			"--web.listen-address=127.0.0.1:9716")
		f.start(t, site+"-agent", ns, nil, bins.prometheus, "--enable-feature=agent", "--config.file="+agent,
			"--storage.agent.path="+filepath.Join(dir, site+"-wal"), "--web.listen-address=127.0.0.1:9090")
	}

	a := &alertsAPI{t: t, c: nsClient(f.central)}
	for _, u := range []string{"http://127.0.0.1:9093/-/ready", "http://127.0.0.1:9090/-/ready"} {
		alertsEventually(t, "central ready: "+u, time.Minute, func() (bool, string) { return a.ready(u) })
	}
	alertsEventually(t, "both sites' probes succeed centrally, with their site label, no alert", 2*time.Minute, func() (bool, string) {
		ok := a.query(`count(reachd_probe_success{site="site-a"} == 1)`) == "4" &&
			a.query(`count(reachd_probe_success{site="site-b"} == 1)`) == "4"
		return ok && len(a.promAlerts()) == 0, fmt.Sprintf("probes: %v; alerts: %v", a.queryAll(`count by (site) (reachd_probe_success == 1)`), a.promAlerts())
	})

	t.Log("cutting site-a's egress")
	f.ip(t, "-n", f.sites[0], "link", "set", f.inetVeths[0], "down")
	onlySiteA := func() (bool, string) {
		p, m := a.promAlerts(), a.amAlerts()
		state := fmt.Sprintf("prometheus: %v; alertmanager: %v", p, m)
		for _, x := range p {
			if x.Labels["site"] != "site-a" {
				return false, state
			}
		}
		for _, x := range m {
			if x.Labels["site"] != "site-a" {
				return false, state
			}
		}
		firing := slices.ContainsFunc(p, func(x alertsPromAlert) bool {
			return x.Labels["alertname"] == "ReachdSiteEgressLost" && x.State == "firing" && x.Labels["path"] == "direct"
		})
		received := slices.ContainsFunc(m, func(x alertsAMAlert) bool {
			return x.Labels["alertname"] == "ReachdSiteEgressLost" && x.Status.State == "active"
		})
		return firing && received, state
	}
	alertsEventually(t, "site-a's egress alert firing and received, nothing for site-b", time.Minute, onlySiteA)
	alertsConsistently(t, "nothing for site-b while site-a is cut off", 5*time.Second, onlySiteA)
	if n := a.query(`count(reachd_probe_success{site="site-b"} == 1)`); n != "4" {
		t.Errorf("site-b's probes while site-a is cut off: %q succeed, want 4", n)
	}
	// The fleet dashboard's queries evaluate on the central Prometheus, and its matrix has
	// a row per site: down for site-a's vendors, up for site-b's.
	if n := checkDashboard(t, a, "../deploy/grafana/reachd-fleet.json"); n < 8 {
		t.Errorf("only %d fleet dashboard queries have data with two sites reporting", n)
	}
	matrix := func(site string) string {
		return `min by (site, vendor, region) (max by (site, vendor, region, target) (reachd_probe_success{site="` + site + `"}))`
	}
	if got := a.query(`count(` + matrix("site-a") + ` == 0)`); got != "2" {
		t.Errorf("fleet matrix: %q of site-a's two vendor regions down, want 2", got)
	}
	if got := a.query(`count(` + matrix("site-b") + ` == 1)`); got != "2" {
		t.Errorf("fleet matrix: %q of site-b's two vendor regions up, want 2", got)
	}
}

var fleetSites = []string{"site-a", "site-b"}

// fleetNet is TestFleet's network; it reuses alertsNet's process handling (start, run,
// startHelper) with the internet namespace in alertsNet.inet.
type fleetNet struct {
	*alertsNet
	central   string
	sites     []string // namespace names, in fleetSites order
	inetVeths []string // each site's end of its link to the internet
}

func (f *fleetNet) ip(t *testing.T, args ...string) { t.Helper(); alertsIP(t, args...) }

func fleetNewNet(t *testing.T, dir string) *fleetNet {
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	sfx := hex.EncodeToString(b)
	f := &fleetNet{alertsNet: &alertsNet{inet: "reachd-finet-" + sfx, dir: dir}, central: "reachd-fcen-" + sfx}
	for i := range fleetSites {
		f.sites = append(f.sites, fmt.Sprintf("reachd-fs%d-%s", i+1, sfx))
	}
	for _, ns := range append([]string{f.inet, f.central}, f.sites...) {
		alertsIP(t, "netns", "add", ns)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v\n%s", ns, err, out)
			}
		})
		alertsIP(t, "-n", ns, "link", "set", "lo", "up")
	}
	alertsIP(t, "-n", f.inet, "addr", "add", alertsInetAddr+"/32", "dev", "lo")
	link := func(site, peer, siteVeth, peerVeth, subnet string) {
		alertsIP(t, "-n", site, "link", "add", siteVeth, "type", "veth", "peer", "name", peerVeth, "netns", peer)
		alertsIP(t, "-n", site, "addr", "add", subnet+".1/24", "dev", siteVeth)
		alertsIP(t, "-n", peer, "addr", "add", subnet+".2/24", "dev", peerVeth)
		alertsIP(t, "-n", site, "link", "set", siteVeth, "up")
		alertsIP(t, "-n", peer, "link", "set", peerVeth, "up")
	}
	for i, ns := range f.sites {
		inetVeth := fmt.Sprintf("fi%d%s", i+1, sfx)
		link(ns, f.inet, inetVeth, fmt.Sprintf("fj%d%s", i+1, sfx), fmt.Sprintf("10.201.%d", i+1))
		alertsIP(t, "-n", ns, "route", "add", alertsInetAddr+"/32", "via", fmt.Sprintf("10.201.%d.2", i+1))
		link(ns, f.central, fmt.Sprintf("fc%d%s", i+1, sfx), fmt.Sprintf("fd%d%s", i+1, sfx), fmt.Sprintf("10.202.%d", i+1))
		f.inetVeths = append(f.inetVeths, inetVeth)
	}
	return f
}

// fleetRules writes the test copy of the shipped rules (short for:, as in TestAlerts).
func fleetRules(t *testing.T, dir string) string {
	t.Helper()
	rules, err := os.ReadFile("../deploy/prometheus/reachd-rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	rules = regexp.MustCompile(`(?m)^(\s+for:) \S+$`).ReplaceAll(rules, []byte("${1} "+alertsFor))
	path := filepath.Join(dir, "reachd-rules.yml")
	fleetWrite(t, path, string(rules))
	return path
}

func fleetWrite(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}
