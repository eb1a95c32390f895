package configs

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestSystemResolverFollowsTheOS: a resolver without servers reads
// resolv.conf's search list and ndots and consults the hosts file; one
// with servers does neither.
func TestSystemResolverFollowsTheOS(t *testing.T) {
	opts := testOptions(t, nil)
	if err := os.WriteFile(opts.ResolvConf, []byte("nameserver 127.0.0.53\nsearch corp.example branch.corp.example\noptions ndots:2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	opts.HostsFile = filepath.Join(t.TempDir(), "hosts")
	cfg, err := Load(writeConfig(t, "[[resolver]]\nname = \"system\"\n[[resolver]]\nname = \"corp\"\nservers = [\"127.0.0.1\"]\n"), opts)
	if err != nil {
		t.Fatal(err)
	}
	sys, corp := cfg.Resolvers[0], cfg.Resolvers[1]
	if !sys.System || sys.HostsFile != opts.HostsFile || !slices.Equal(sys.Search, []string{"corp.example", "branch.corp.example"}) || sys.Ndots != 2 {
		t.Errorf("system resolver %+v", sys)
	}
	if corp.System || corp.HostsFile != "" || corp.Search != nil {
		t.Errorf("a resolver with servers %+v takes the OS's lookup rules", corp)
	}
	if d := (Options{}).withDefaults(); d.HostsFile != "/etc/hosts" {
		t.Errorf("default hosts file %q", d.HostsFile)
	}
}
