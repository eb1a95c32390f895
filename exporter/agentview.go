package exporter

import (
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/reachd/reachd/probe"
)

// AuthExemptions reads the results the way an agent would: where a path
// without credentials gets proxy_auth_required from a proxy and a path
// with credentials gets through the same proxy to the same target, the
// targets work only for clients that authenticate. Agents often cannot
// (Defender for Endpoint's sensor runs as LocalSystem through WinHTTP and
// needs unauthenticated access), so those hosts must be exempted from proxy
// authentication. One line per proxy; nil when no such pair exists.
func AuthExemptions(results []*probe.Result) []string {
	type pair struct{ anon, authed map[string]bool }
	byProxy := map[string]*pair{}
	hosts := map[string]string{} // target ID -> host:port
	for _, r := range results {
		if r == nil || r.Proxy == "" {
			continue
		}
		p := byProxy[r.Proxy]
		if p == nil {
			p = &pair{anon: map[string]bool{}, authed: map[string]bool{}}
			byProxy[r.Proxy] = p
		}
		id := r.Target.ID()
		hosts[id] = r.Target.Address()
		switch {
		case !r.ProxyAuth && r.Err != nil && r.Err.Reason == probe.ProxyAuthRequired:
			p.anon[id] = true
		case r.ProxyAuth && r.Success():
			p.authed[id] = true
		}
	}
	var out []string
	for _, proxy := range slices.Sorted(maps.Keys(byProxy)) {
		p := byProxy[proxy]
		var cut []string
		for id := range p.anon {
			if p.authed[id] {
				cut = append(cut, hosts[id])
			}
		}
		if len(cut) == 0 {
			continue
		}
		slices.Sort(cut)
		cut = slices.Compact(cut)
		out = append(out, "proxy "+proxy+" lets "+strconv.Itoa(len(cut))+" target(s) through only with credentials ("+
			strings.Join(cut, ", ")+"): agents that cannot authenticate to the proxy (Defender for Endpoint requires "+
			"unauthenticated access) are cut off; exempt these hosts from proxy authentication")
	}
	return out
}
