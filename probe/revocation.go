package probe

import (
	"context"
	"crypto/x509"
	"fmt"
	"strings"
	"sync"
	"time"
)

// RevocationCheck is one revocation or issuer URL of a verified chain and
// whether it answered over the probe's path (DESIGN §5): CryptoAPI on a
// Windows agent fails TLS when it cannot reach them.
type RevocationCheck struct {
	Kind      string // "ocsp", "crl" or "aia"
	URL       string
	Reachable bool
	Status    int    // the HTTP status; 0 when no answer came
	Detail    string // why it is unreachable; empty when reachable
}

// Revocation URL kinds, the kind label of reachd_tls_revocation_reachable.
const (
	RevocationOCSP = "ocsp"
	RevocationCRL  = "crl"
	RevocationAIA  = "aia"
)

// maxRevocationBody bounds what a revocation check reads: enough to see
// an answer, not a whole CRL (some are megabytes).
const maxRevocationBody = 64 << 10

// maxRevocationURLs bounds the URLs checked per chain; a chain with more
// has its first ones checked (leaf first).
const maxRevocationURLs = 12

// revocation is the extra that GETs the verified chain's OCSP responder,
// CRL distribution point and AIA caIssuers URLs over the probe's path, at
// most once per interval (tls_sweep_interval), all in parallel, each
// within the target's timeout. A plain GET of an OCSP responder's URL is
// a reachability check, not an OCSP request: any HTTP answer below 500
// means the responder is reachable (OCSP servers answer a bare GET with
// 400 or 405 or a page); a 5xx, a proxy's refusal or no answer means it
// is not. It never changes the probe's verdict.
type revocation struct {
	timeout  time.Duration
	interval time.Duration
	now      func() time.Time

	mu     sync.Mutex
	last   time.Time
	urls   string // the URL set last checked: a changed chain is checked at once
	checks []RevocationCheck
}

func newRevocation(timeout, interval time.Duration) *revocation {
	return &revocation{timeout: timeout, interval: interval, now: time.Now}
}

func (v *revocation) budget() time.Duration { return v.timeout }

func (v *revocation) due(r *Result, rt route) bool {
	_, _, due := v.todo(r, rt, v.now())
	return due
}

// todo is the URLs of r's chain to check, their key, and whether a check
// is due at now.
func (v *revocation) todo(r *Result, rt route, now time.Time) (todo []RevocationCheck, key string, due bool) {
	if r.TLS == nil || len(r.TLS.Chain) == 0 || rt.fetch == nil {
		return nil, "", false
	}
	if todo = revocationURLs(r.TLS.Chain); len(todo) == 0 {
		return nil, "", false
	}
	key = fmt.Sprint(todo)
	v.mu.Lock()
	defer v.mu.Unlock()
	return todo, key, v.checks == nil || v.urls != key || now.Sub(v.last) >= v.interval
}

func (v *revocation) run(ctx context.Context, r *Result, rt route) {
	now := v.now()
	todo, key, due := v.todo(r, rt, now)
	if todo == nil {
		return
	}
	v.mu.Lock()
	checks := v.checks
	v.mu.Unlock()
	if due {
		got := v.check(ctx, rt.fetch, todo)
		if rt.run.Err() != nil {
			return // cut short: an unanswered URL would read as unreachable
		}
		v.mu.Lock()
		v.checks, v.urls, v.last = got, key, now
		v.mu.Unlock()
		checks = got
	}
	r.Revocation = checks
}

// check fetches every URL in parallel.
func (v *revocation) check(ctx context.Context, f *fetcher, todo []RevocationCheck) []RevocationCheck {
	out := make([]RevocationCheck, len(todo))
	var wg sync.WaitGroup
	for i, c := range todo {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = checkRevocationURL(ctx, f, c)
		}()
	}
	wg.Wait()
	return out
}

func checkRevocationURL(ctx context.Context, f *fetcher, c RevocationCheck) RevocationCheck {
	got, err := f.fetch(ctx, c.URL, maxRevocationBody)
	if err != nil {
		c.Detail = fmt.Sprintf("%s: %v", err.Reason, err.Err)
		return c
	}
	c.Status = got.Status
	if got.Status >= 500 {
		c.Detail = fmt.Sprintf("HTTP %d", got.Status)
		return c
	}
	c.Reachable = true
	return c
}

// revocationURLs lists the http:// OCSP, CRL and caIssuers URLs of chain
// (leaf and intermediates; the root's are never used), without repeats.
func revocationURLs(chain []*x509.Certificate) []RevocationCheck {
	certs := chain
	if len(certs) > 1 {
		certs = certs[:len(certs)-1]
	}
	var out []RevocationCheck
	seen := map[string]bool{}
	add := func(kind string, urls []string) {
		for _, u := range urls {
			if !strings.HasPrefix(strings.ToLower(u), "http://") || seen[kind+" "+u] || len(out) >= maxRevocationURLs {
				continue // ldap:// and https:// are not what CryptoAPI fetches over a proxy
			}
			seen[kind+" "+u] = true
			out = append(out, RevocationCheck{Kind: kind, URL: u})
		}
	}
	for _, c := range certs {
		add(RevocationOCSP, c.OCSPServer)
		add(RevocationCRL, c.CRLDistributionPoints)
		add(RevocationAIA, c.IssuingCertificateURL)
	}
	return out
}
