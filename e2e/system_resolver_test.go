//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSystemResolverOSOrder runs `reachd check` with the default system
// resolver in a fresh mount and network namespace whose /etc/hosts and
// /etc/resolv.conf are the test's own (bind-mounted), beside a dnsmasq on
// 127.0.0.1:53: a host pinned in /etc/hosts that DNS does not know
// connects, a pin that DNS contradicts passes with a warning, and a short
// intranet name resolves through the search domain, as on the agents.
func TestSystemResolverOSOrder(t *testing.T) {
	requireRoot(t)
	unshare := requireTool(t, "unshare", "util-linux")
	requireTool(t, "ip", "iproute2")
	dnsmasq := requireTool(t, "dnsmasq", "dnsmasq")
	bin := reachdBin(t)
	dir := t.TempDir()
	hosts := writeFile(t, dir, "hosts", "127.0.0.1 localhost\n127.0.0.1 pinned.reachd.test stale.reachd.test\n")
	resolv := writeFile(t, dir, "resolv.conf", "nameserver 127.0.0.1\nsearch corp.reachd.test\n")
	// The targets connect to dnsmasq's own TCP port: something listens there.
	cfg := writeFile(t, dir, "reachd.toml", `site = "e2e"
[[target]]
name = "pinned"
host = "pinned.reachd.test"
port = 53
checks = ["dns", "tcp"]
[[target]]
name = "stale"
host = "stale.reachd.test"
port = 53
checks = ["dns", "tcp"]
[[target]]
name = "intranet"
host = "intranet"
port = 53
checks = ["dns", "tcp"]
`)
	pid := filepath.Join(dir, "dnsmasq.pid")
	script := `mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/resolv.conf && ip link set lo up && ` +
		`"$0" --no-resolv --no-hosts --bind-interfaces --listen-address=127.0.0.1 --port=53 --user=root --pid-file="$3" ` +
		`--address=/stale.reachd.test/127.0.0.2 --host-record=intranet.corp.reachd.test,127.0.0.1 && ` +
		`{ "$4" check --config.file "$5" --timeout 3s --format json; code=$?; kill "$(cat "$3")"; exit $code; }`
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code, out, stderr := runCommand(t, ctx, unshare, "-m", "-n", "sh", "-c", script, dnsmasq, hosts, resolv, pid, bin, cfg)
	if code != 0 {
		t.Fatalf("exit %d, want 0 (every target connects)\nstdout: %s\nstderr: %s", code, out, stderr)
	}
	var doc struct {
		Results []struct{ Target, Reason string }
		DNS     []struct{ Target, QType, Source, Name, Warning string }
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || len(doc.Results) != 3 {
		t.Fatalf("%v\n%s", err, out)
	}
	got := map[string]string{}
	for _, d := range doc.DNS {
		if d.QType == "A" {
			got[d.Target] = d.Source + "|" + d.Name + "|" + d.Warning
		}
	}
	if got["pinned"] != "hosts||" {
		t.Errorf("pinned A entry %q, want from hosts without a warning", got["pinned"])
	}
	if s := got["stale"]; !strings.HasPrefix(s, "hosts||") || !strings.Contains(s, "pins stale.reachd.test to 127.0.0.1, but DNS (127.0.0.1:53) answers 127.0.0.2") {
		t.Errorf("stale A entry %q, want from hosts with a stale-pin warning", s)
	}
	if got["intranet"] != "127.0.0.1:53|intranet.corp.reachd.test.|" {
		t.Errorf("intranet A entry %q, want intranet.corp.reachd.test. from 127.0.0.1:53", got["intranet"])
	}
}
