package probe

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/reachd/reachd/configs"
	"github.com/reachd/reachd/probe/probetest"
	"github.com/reachd/reachd/targets"
)

func writeHosts(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestHostsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hosts")
	writeHosts(t, path, "# static\n127.0.0.1\tlocalhost\n10.1.2.3 Sync.Corp.Example. sync # the file server\n"+
		"fd00::3 sync\nnot-an-ip broken\nfe80::1%eth0 zoned\n::ffff:10.1.2.4 mapped\n")
	h := newHostsFile(path)
	for _, tt := range []struct {
		name string
		want []string
	}{
		{"sync.corp.example", []string{"10.1.2.3"}},
		{"SYNC.corp.example.", []string{"10.1.2.3"}},
		{"sync", []string{"10.1.2.3", "fd00::3"}},
		{"broken", nil},
		{"zoned", nil},
		{"mapped", []string{"10.1.2.4"}},
		{"absent", nil},
	} {
		var got []string
		for _, a := range h.lookup(tt.name) {
			got = append(got, a.String())
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("lookup(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
	// An edit is seen on the next lookup, as the C library sees it.
	writeHosts(t, path, "10.9.9.9 sync\n")
	later := time.Now().Add(time.Second)
	os.Chtimes(path, later, later)
	if got := h.lookup("sync"); len(got) != 1 || got[0] != netip.MustParseAddr("10.9.9.9") {
		t.Errorf("after the edit lookup(sync) = %v", got)
	}
	os.Remove(path)
	if got := h.lookup("sync"); got != nil {
		t.Errorf("without the file lookup(sync) = %v", got)
	}
}

func TestSearchNames(t *testing.T) {
	s := &systemRules{search: []string{"corp.example", "branch.corp.example."}, ndots: 1}
	for _, tt := range []struct {
		host  string
		ndots int
		want  []string
	}{
		{"fileserver", 1, []string{"fileserver.corp.example.", "fileserver.branch.corp.example.", "fileserver."}},
		{"api.vendor.example", 1, []string{"api.vendor.example.", "api.vendor.example.corp.example.", "api.vendor.example.branch.corp.example."}},
		{"app.intra", 2, []string{"app.intra.corp.example.", "app.intra.branch.corp.example.", "app.intra."}},
		{"fileserver.", 1, []string{"fileserver."}},
	} {
		s.ndots = tt.ndots
		if got := s.names(tt.host); !slices.Equal(got, tt.want) {
			t.Errorf("names(%q) with ndots %d = %v, want %v", tt.host, tt.ndots, got, tt.want)
		}
	}
}

// systemLab is a lab whose first resolver is the system one: the lab's
// DNS server stands for resolv.conf's nameserver, with search and a hosts
// file of the test's own.
func systemLab(t *testing.T, hosts string, search ...string) (*lab, *configs.Config) {
	t.Helper()
	l := newLab(t)
	path := filepath.Join(t.TempDir(), "hosts")
	writeHosts(t, path, hosts)
	cfg := l.config()
	cfg.Resolvers = []configs.Resolver{{Name: "system", Servers: []string{l.dns.Addr}, Protocol: "udp",
		System: true, HostsFile: path, Search: search, Ndots: 1}}
	return l, cfg
}

// probeChecked probes tg as the only target, with the per-resolver checks.
func probeChecked(t *testing.T, cfg *configs.Config, tg targets.Target) Result {
	t.Helper()
	tg.Paths = []string{"direct"}
	cfg.Targets = []targets.Target{tg}
	return Build(cfg, "reachd-test")[0].Probe(t.Context())
}

func TestSystemResolverHostsFile(t *testing.T) {
	tcpOnly := func(t *targets.Target) { t.Checks = []string{"dns", "tcp"} }
	port := probetest.NewTarpit(t).Port

	t.Run("a pinned host the DNS does not know connects", func(t *testing.T) {
		l, cfg := systemLab(t, "127.0.0.1 pinned.reachd.test\n")
		r := probeChecked(t, cfg, target("pinned.reachd.test", port, tcpOnly))
		assertOutcome(t, r, "", "", "")
		if len(r.DNS) != 2 || r.DNS[0].Source != "hosts" || !slices.Equal(r.DNS[0].Answers, []string{"127.0.0.1"}) ||
			r.DNS[1].Source != "hosts" || !r.DNS[1].Success || len(r.DNS[1].Answers) != 0 || r.DNS[0].Warning != "" {
			t.Errorf("DNS results %+v, want A 127.0.0.1 and an empty AAAA from hosts, no warning", r.DNS)
		}
		// The stage did not ask DNS; the check asked it once per type to compare.
		if n := l.dns.Queries("pinned.reachd.test", dns.TypeA, "udp"); n != 1 {
			t.Errorf("DNS asked %d times for A, want 1 (the comparison)", n)
		}
	})

	t.Run("a pin that DNS contradicts is a warning", func(t *testing.T) {
		l, cfg := systemLab(t, "127.0.0.1 stale.reachd.test\n")
		l.dns.Set("stale.reachd.test", probetest.Entry{A: []string{"127.0.0.2"}})
		r := probeChecked(t, cfg, target("stale.reachd.test", port, tcpOnly))
		assertOutcome(t, r, "", "", "")
		want := "pins stale.reachd.test to 127.0.0.1, but DNS (" + l.dns.Addr + ") answers 127.0.0.2: a stale pin?"
		if len(r.DNS) != 2 || !r.DNS[0].Success || !strings.Contains(r.DNS[0].Warning, want) || r.DNS[1].Warning != "" {
			t.Fatalf("DNS results %+v, want a stale-pin warning on A only", r.DNS)
		}
	})

	t.Run("a pin that DNS agrees with is no warning", func(t *testing.T) {
		l, cfg := systemLab(t, "127.0.0.1 agreed.reachd.test\n")
		l.dns.Set("agreed.reachd.test", probetest.Entry{A: []string{"127.0.0.1"}})
		r := probeChecked(t, cfg, target("agreed.reachd.test", port, tcpOnly))
		if len(r.DNS) != 2 || r.DNS[0].Warning != "" || r.DNS[0].Source != "hosts" {
			t.Errorf("DNS results %+v", r.DNS)
		}
	})

	t.Run("a resolver with servers ignores the hosts file", func(t *testing.T) {
		l, cfg := systemLab(t, "127.0.0.1 pinned.reachd.test\n")
		cfg.Resolvers[0].System = false
		r := l.probe(target("pinned.reachd.test", port, tcpOnly), configs.Path{Name: "direct"}, cfg)
		assertOutcome(t, r, StageDNS, DNSNXDomain, l.dns.Addr+" answered NXDOMAIN for pinned.reachd.test.")
	})
}

func TestSystemResolverSearchList(t *testing.T) {
	tcpOnly := func(t *targets.Target) { t.Checks = []string{"dns", "tcp"} }
	port := probetest.NewTarpit(t).Port

	t.Run("a short intranet name gets the search domain", func(t *testing.T) {
		l, cfg := systemLab(t, "", "corp.reachd.test")
		l.dns.Set("intranet.corp.reachd.test", probetest.Entry{A: []string{"127.0.0.1"}})
		r := probeChecked(t, cfg, target("intranet", port, tcpOnly))
		assertOutcome(t, r, "", "", "")
		if len(r.DNS) != 2 || r.DNS[0].Name != "intranet.corp.reachd.test." || r.DNS[0].Source != l.dns.Addr || !r.DNS[1].Success {
			t.Errorf("DNS results %+v, want intranet.corp.reachd.test. from %s", r.DNS, l.dns.Addr)
		}
		if n := l.dns.Queries("intranet", dns.TypeA, "udp"); n != 0 {
			t.Errorf("the bare name was asked %d times before the search domain answered", n)
		}
	})

	t.Run("a SERVFAIL in a search domain goes on to the next name", func(t *testing.T) {
		l, cfg := systemLab(t, "", "broken.reachd.test", "corp.reachd.test")
		l.dns.Set("app.broken.reachd.test", probetest.Entry{Rcode: dns.RcodeServerFailure})
		l.dns.Set("app.corp.reachd.test", probetest.Entry{A: []string{"127.0.0.1"}})
		r := probeChecked(t, cfg, target("app", port, tcpOnly))
		assertOutcome(t, r, "", "", "")
	})

	t.Run("no name of the search list exists", func(t *testing.T) {
		l, cfg := systemLab(t, "", "corp.reachd.test")
		r := l.probe(target("nothere", port, tcpOnly), configs.Path{Name: "direct"}, cfg)
		assertOutcome(t, r, StageDNS, DNSNXDomain, "no name of the search list exists: "+
			l.dns.Addr+" answered NXDOMAIN for nothere.corp.reachd.test.; "+l.dns.Addr+" answered NXDOMAIN for nothere.")
	})

	t.Run("a name with a trailing dot is asked as given only", func(t *testing.T) {
		l, cfg := systemLab(t, "", "corp.reachd.test")
		l.dns.Set("intranet.corp.reachd.test", probetest.Entry{A: []string{"127.0.0.1"}})
		r := l.probe(target("intranet.", port, tcpOnly), configs.Path{Name: "direct"}, cfg)
		assertOutcome(t, r, StageDNS, DNSNXDomain, "answered NXDOMAIN for intranet.")
	})

	t.Run("a proxy's short name resolves like the agents'", func(t *testing.T) {
		l, cfg := systemLab(t, "", "corp.reachd.test")
		proxy := probetest.NewProxy(t)
		_, pport, _ := strings.Cut(proxy.URL.Host, ":")
		l.dns.Set("proxy.corp.reachd.test", probetest.Entry{A: []string{"127.0.0.1"}})
		u := *proxy.URL
		u.Host = "proxy:" + pport
		r := l.probe(target("nothere.reachd.test", 443), configs.Path{Name: "p", Proxy: &u}, cfg)
		if r.Err != nil && r.Err.Reason == ProxyDNSFailed || len(proxy.Requests()) != 1 {
			t.Fatalf("the proxy's short name did not resolve: %v", r.Err)
		}
	})
}
