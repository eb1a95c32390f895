package probe

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// systemRules are how the host's own resolver, which the agents use,
// turns a name into addresses: the hosts file first, then DNS over
// resolv.conf's search list. A name with at least ndots dots is tried as
// given first and then with each search domain; a shorter one (a short
// intranet name) with the search domains first; a name ending in a dot
// only as given. The next name is tried after NXDOMAIN or SERVFAIL, as
// the C library does; any other outcome ends the search.
type systemRules struct {
	hosts  *hostsFile
	search []string
	ndots  int
}

// names are the fully qualified names to try for host, in order.
func (s *systemRules) names(host string) []string {
	if strings.HasSuffix(host, ".") || len(s.search) == 0 {
		return []string{dns.Fqdn(host)}
	}
	var searched []string
	for _, d := range s.search {
		if d = strings.Trim(d, "."); d != "" {
			searched = append(searched, dns.Fqdn(host+"."+d))
		}
	}
	if strings.Count(host, ".") >= s.ndots {
		return append([]string{dns.Fqdn(host)}, searched...)
	}
	return append(searched, dns.Fqdn(host))
}

// pinned is the hosts file's answer for host's qtype, and whether the
// file names host at all (then it answers every type, as getaddrinfo
// does: an A-only pin has an empty AAAA answer, DNS is not asked).
func (s *systemRules) pinned(host string, qtype uint16) (answer, bool) {
	all := s.hosts.lookup(host)
	if len(all) == 0 {
		return answer{}, false
	}
	a := answer{rcode: dns.RcodeSuccess, source: "hosts"}
	for _, ip := range all {
		if ip.Is4() == (qtype == dns.TypeA) {
			a.addrs = append(a.addrs, ip)
		}
	}
	return a, true
}

// lookup is the dns stage's resolution of host: A and AAAA together for
// each name in turn, until one exists.
func (s *systemRules) lookup(ctx context.Context, r *resolver, host string) [2]answer {
	start := time.Now()
	if a, ok := s.pinned(host, dns.TypeA); ok {
		aaaa, _ := s.pinned(host, dns.TypeAAAA)
		a.duration, aaaa.duration = time.Since(start), time.Since(start)
		return [2]answer{a, aaaa}
	}
	var tried [2][]answer
	for _, name := range s.names(host) {
		both := r.askBoth(ctx, name)
		if !notHere(both[0]) || !notHere(both[1]) || ctx.Err() != nil {
			for i := range both {
				both[i] = s.found(both[i], host, name, start)
			}
			return both
		}
		tried[0], tried[1] = append(tried[0], both[0]), append(tried[1], both[1])
	}
	return [2]answer{searchFailed(tried[0], start), searchFailed(tried[1], start)}
}

// query is the per-resolver check of host's qtype records. A hosts file
// answer is compared with what DNS says: a pin to other addresses is
// reported as a warning (the check passes: the agents use the pin).
func (s *systemRules) query(ctx context.Context, r *resolver, host string, qtype uint16) answer {
	start := time.Now()
	if a, ok := s.pinned(host, qtype); ok {
		a.duration = time.Since(start)
		if d := s.searchDNS(ctx, r, host, qtype); d.err == nil && len(a.addrs) > 0 && len(d.addrs) > 0 && !sameAddrs(a.addrs, d.addrs) {
			a.warning = fmt.Sprintf("the hosts file %s pins %s to %s, but DNS (%s) answers %s: a stale pin?",
				s.hosts.path, host, joinAddrs(a.addrs), d.source, joinAddrs(d.addrs))
		}
		return a
	}
	return s.searchDNS(ctx, r, host, qtype)
}

// searchDNS asks DNS for qtype records of each name in turn, until one
// exists.
func (s *systemRules) searchDNS(ctx context.Context, r *resolver, host string, qtype uint16) answer {
	start := time.Now()
	var tried []answer
	for _, name := range s.names(host) {
		a := r.ask(ctx, name, qtype)
		if !notHere(a) || ctx.Err() != nil {
			return s.found(a, host, name, start)
		}
		tried = append(tried, a)
	}
	return searchFailed(tried, start)
}

// found completes the answer for name, the name where the search stopped.
func (s *systemRules) found(a answer, host, name string, start time.Time) answer {
	if name != dns.Fqdn(host) {
		a.name = name
	}
	a.duration = time.Since(start)
	return a
}

// notHere reports an answer after which the search goes on: the name
// does not exist there, or the server could not say.
func notHere(a answer) bool {
	return a.rcode == dns.RcodeNameError || a.rcode == dns.RcodeServerFailure
}

// searchFailed is the outcome when no name of the search exists: the
// first SERVFAIL (the C library's "try again"), else NXDOMAIN naming every
// name tried.
func searchFailed(tried []answer, start time.Time) answer {
	out := tried[len(tried)-1]
	if i := slices.IndexFunc(tried, func(a answer) bool { return a.rcode == dns.RcodeServerFailure }); i >= 0 {
		out = tried[i]
	} else if len(tried) > 1 {
		parts := make([]string, len(tried))
		for i, a := range tried {
			parts[i] = a.err.Err.Error()
		}
		out.err = fail(DNSNXDomain, fmt.Errorf("no name of the search list exists: %s", strings.Join(parts, "; ")))
	}
	out.duration = time.Since(start)
	return out
}

func sameAddrs(a, b []netip.Addr) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.SortFunc(a, netip.Addr.Compare)
	slices.SortFunc(b, netip.Addr.Compare)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

func joinAddrs(addrs []netip.Addr) string {
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}
