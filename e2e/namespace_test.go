//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestNamespaceFaults creates the network faults that need root: a
// dropped SYN, a missing route, an unreachable route, and a connect the
// kernel rejects. Each runs `reachd check --host` inside a fresh network
// namespace with no default route, so nothing can leave the machine.
func TestNamespaceFaults(t *testing.T) {
	requireRoot(t)
	unshare := requireTool(t, "unshare", "util-linux")
	requireTool(t, "ip", "iproute2")
	requireTool(t, "nft", "nftables")
	bin := reachdBin(t)
	tests := []struct {
		name   string
		setup  string // shell run inside the namespace before reachd
		host   string
		stage  string
		reason string
		detail string
	}{
		{"dropped SYN", "ip link set lo up && nft add table inet f && nft 'add chain inet f out { type filter hook output priority 0; }' && nft add rule inet f out tcp dport 9 drop", "127.0.0.1:9", "tcp", "tcp_timeout", "timeout"},
		{"no route", "ip link set lo up", "10.200.0.2:443", "tcp", "tcp_unreachable", "network is unreachable"},
		{"unreachable route", "ip link set lo up && ip route add unreachable 10.200.9.0/24", "10.200.9.1:443", "tcp", "tcp_unreachable", "no route to host"},
		{"link-local without zone", "ip link set lo up", "[fe80::1]:443", "tcp", "tcp_error", "invalid argument"},
		{"refused by REJECT tcp-reset", "ip link set lo up && nft add table inet f && nft 'add chain inet f out { type filter hook output priority 0; }' && nft add rule inet f out tcp dport 9 reject with tcp reset", "127.0.0.1:9", "tcp", "tcp_refused", "refused"},
	}
	for _, tt := range tests {
		t.Run(strings.ReplaceAll(tt.name, " ", "_"), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			script := tt.setup + ` && exec "$0" check --host "$1" --resolver 127.0.0.1:53 --timeout 1s --format json`
			code, out, stderr := runCommand(t, ctx, unshare, "-n", "sh", "-c", script, bin, tt.host)
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
			if r.Stage != tt.stage || r.Reason != tt.reason || !strings.Contains(r.Detail, tt.detail) || r.Hint == "" {
				t.Errorf("got %s/%s %q, want %s/%s with %q and a hint", r.Stage, r.Reason, r.Detail, tt.stage, tt.reason, tt.detail)
			}
		})
	}
}
