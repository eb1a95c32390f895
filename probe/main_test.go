package probe

import (
	"flag"
	"fmt"
	"os"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

// covered records which reasons a test produced from a real loopback
// situation (assertOutcome notes them).
var covered sync.Map // Reason -> test name

// coveredByE2E are the reasons that need root and a network namespace
// (a dropped SYN, a missing route): make e2e creates them, in the named test.
var coveredByE2E = map[Reason]string{
	TCPTimeout:     "e2e TestNamespaceFaults/dropped_SYN",
	TCPUnreachable: "e2e TestNamespaceFaults/no_route and unreachable_route",
	TCPError:       "e2e TestNamespaceFaults/link-local_without_zone (EINVAL from connect)",
}

// pendingReasons are reasons of DESIGN §6 whose producer is being built:
// each entry goes when a test produces the reason. Never ship one.
var pendingReasons = map[Reason]bool{
	ProxyAuthRejected: true, ProxyPACFailed: true,
	TLSChainIncomplete: true, HTTPBlocked: true,
}

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 && !filtered() {
		for _, r := range Reasons() {
			if _, ok := covered.Load(r); !ok && coveredByE2E[r] == "" && !pendingReasons[r] {
				fmt.Fprintf(os.Stderr, "FAIL: no test produces reason %s from a real situation\n", r)
				code = 1
			}
		}
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "FAIL: leaked goroutines: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// filtered reports a run of selected tests, where coverage cannot be judged.
func filtered() bool {
	for _, name := range []string{"test.run", "test.skip", "test.bench"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" {
			return true
		}
	}
	return false
}

func TestEveryReasonHasStageAndHint(t *testing.T) {
	for _, r := range Reasons() {
		t.Run(string(r), func(t *testing.T) {
			if r.Stage() == "" || len(r.Hint()) < 40 {
				t.Errorf("stage %q hint %q", r.Stage(), r.Hint())
			}
		})
	}
}
