package pac

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"golang.org/x/net/publicsuffix"
)

// Candidates are the WPAD URLs of the search domains, in order: for each
// domain http://wpad.<domain>/wpad.dat, walking up one label at a time as
// WinHTTP's devolution does (wpad.a.b.example.com, wpad.b.example.com,
// wpad.example.com). The walk stops at the registrable domain (one label
// below the public suffix: example.com, example.co.uk), never at the bare
// top-level domain, where anyone could register wpad.<suffix>.
func Candidates(domains []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, d := range domains {
		d = strings.ToLower(strings.Trim(strings.TrimSpace(d), "."))
		if d == "" {
			continue
		}
		floor, err := publicsuffix.EffectiveTLDPlusOne(d)
		if err != nil {
			continue // a bare suffix ("com", "co.uk") or not a domain
		}
		for {
			u := "http://wpad." + d + "/wpad.dat"
			if !seen[u] {
				seen[u] = true
				out = append(out, u)
			}
			if d == floor {
				break
			}
			_, d, _ = strings.Cut(d, ".")
		}
	}
	return out
}

// Attempt is what one WPAD candidate gave.
type Attempt struct {
	URL string
	Err error // nil for the candidate that served a PAC
}

// Discover tries the WPAD candidates of domains in order and returns the
// URL of the first whose host resolves (through resolve, the first
// resolver) and that serves a PAC that compiles, with every attempt up to
// it, for reports, and the PAC file's bytes.
func Discover(ctx context.Context, domains []string, resolve func(ctx context.Context, host string) ([]netip.Addr, error), env Env) (string, []byte, []Attempt, error) {
	cands := Candidates(domains)
	if len(cands) == 0 {
		return "", nil, nil, fmt.Errorf("WPAD: no search domain to look in (%q)", domains)
	}
	var tried []Attempt
	for _, u := range cands {
		src, err := tryCandidate(ctx, u, resolve, env)
		tried = append(tried, Attempt{URL: u, Err: err})
		if err == nil {
			return u, src, tried, nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	var errs []error
	for _, a := range tried {
		errs = append(errs, fmt.Errorf("%s: %w", a.URL, a.Err))
	}
	return "", nil, tried, fmt.Errorf("WPAD: no PAC found: %w", errors.Join(errs...))
}

func tryCandidate(ctx context.Context, u string, resolve func(ctx context.Context, host string) ([]netip.Addr, error), env Env) ([]byte, error) {
	host := hostOf(u)
	addrs, err := resolve(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("%s does not resolve: %w", host, err)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("%s has no address", host)
	}
	fetch, err := URL(u, resolve)
	if err != nil {
		return nil, err
	}
	src, err := fetch(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := Compile(u, src, env); err != nil {
		return nil, err
	}
	return src, nil
}
