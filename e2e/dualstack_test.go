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

// TestDualStackVerdicts: at a site without IPv6 (no IPv6 route), a name
// with A and AAAA addresses fails with the verdict of the family that got
// furthest, and the detail names both attempts. Each case runs `reachd
// check` in a fresh network namespace with no default route, beside a
// dnsmasq that answers the name with 10.200.0.2 and fd00:200::2, so
// nothing leaves the machine.
func TestDualStackVerdicts(t *testing.T) {
	requireRoot(t)
	unshare := requireTool(t, "unshare", "util-linux")
	requireTool(t, "ip", "iproute2")
	requireTool(t, "nft", "nftables")
	dnsmasq := requireTool(t, "dnsmasq", "dnsmasq")
	bin := reachdBin(t)
	const (
		nft  = "nft add table inet f && nft 'add chain inet f out { type filter hook output priority 0; }' && "
		veth = "ip link add v0 type veth peer name v1 && ip link set v1 up && ip link set v0 up && "
		// v4 has a route (a veth whose peer holds no address); v6 has none.
		v4Only = veth + "ip addr add 10.200.0.1/24 dev v0 && "
		// v6 has a route and v4 none.
		v6Only = veth + "ip addr add fd00:200::1/64 dev v0 nodad && "
	)
	tests := []struct {
		name   string
		setup  string // shell run inside the namespace before reachd
		args   []string
		stage  string
		reason string
		detail []string
	}{
		{"v4 dropped, no v6 route", v4Only + nft + "nft add rule inet f out ip daddr 10.200.0.2 drop",
			[]string{"--host", "dual.reachd.test:443"}, "tcp", "tcp_timeout",
			[]string{"dial tcp 10.200.0.2:443: i/o timeout", "also dial tcp [fd00:200::2]:443: connect: network is unreachable"}},
		{"v4 refused, no v6 route", v4Only + nft + "nft add rule inet f out ip daddr 10.200.0.2 reject with tcp reset",
			[]string{"--host", "dual.reachd.test:443"}, "tcp", "tcp_refused",
			[]string{"10.200.0.2:443: connect: connection refused", "also dial tcp [fd00:200::2]:443: connect: network is unreachable"}},
		{"no v4 route, v6 dropped", v6Only + nft + "nft add rule inet f out ip6 daddr fd00:200::2 drop",
			[]string{"--host", "dual.reachd.test:443"}, "tcp", "tcp_timeout",
			[]string{"dial tcp [fd00:200::2]:443: i/o timeout", "also dial tcp 10.200.0.2:443: connect: network is unreachable"}},
		{"proxy: v4 dropped, no v6 route", v4Only + nft + "nft add rule inet f out ip daddr 10.200.0.2 drop",
			[]string{"--host", "target.reachd.test:443", "--proxy", "http://dual.reachd.test:3128"}, "proxy", "proxy_timeout",
			[]string{"dial tcp 10.200.0.2:3128: i/o timeout", "also dial tcp [fd00:200::2]:3128: connect: network is unreachable"}},
	}
	for _, tt := range tests {
		t.Run(strings.ReplaceAll(tt.name, " ", "_"), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			pid := filepath.Join(t.TempDir(), "dnsmasq.pid")
			// dnsmasq forks once it listens; reachd runs after it, and the
			// script kills it so the namespace goes with the script.
			script := `pidf=$1 bin=$2; shift 2; ip link set lo up && ` + tt.setup + ` && "$0" --no-resolv --no-hosts --bind-interfaces --listen-address=127.0.0.1 --port=53 ` +
				`--address=/dual.reachd.test/10.200.0.2 --address=/dual.reachd.test/fd00:200::2 --user=root --pid-file="$pidf" && ` +
				`{ "$bin" check --resolver 127.0.0.1:53 --timeout 3s --format json "$@"; code=$?; kill "$(cat "$pidf")"; exit $code; }`
			args := append([]string{"-n", "sh", "-c", script, dnsmasq, pid, bin}, tt.args...)
			code, out, stderr := runCommand(t, ctx, unshare, args...)
			if code != 1 {
				t.Fatalf("exit %d, want 1\nstdout: %s\nstderr: %s", code, out, stderr)
			}
			var doc struct {
				Results []struct{ Stage, Reason, Detail, Hint string }
			}
			if err := json.Unmarshal([]byte(out), &doc); err != nil || len(doc.Results) != 1 {
				t.Fatalf("%v\n%s", err, out)
			}
			r := doc.Results[0]
			if r.Stage != tt.stage || r.Reason != tt.reason || r.Hint == "" {
				t.Errorf("got %s/%s %q, want %s/%s and a hint", r.Stage, r.Reason, r.Detail, tt.stage, tt.reason)
			}
			for _, d := range tt.detail {
				if !strings.Contains(r.Detail, d) {
					t.Errorf("detail %q lacks %q", r.Detail, d)
				}
			}
		})
	}
}
