package probe

import (
	"context"
	"crypto/x509"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reachd/reachd/configs"
	"github.com/reachd/reachd/probe/probetest"
)

// revocationLab is an OCSP responder, a CRL server (a large CRL: the body
// bound) and a dead port on loopback, each counting its requests.
type revocationLab struct {
	ocsp, crl       *httptest.Server
	ocspN, crlN     atomic.Int32
	crlRead         atomic.Int64
	dead            string
	chain           []*x509.Certificate
	ocspURL, crlURL string
}

func newRevocationLab(t *testing.T, host func(kind string, s *httptest.Server) string) *revocationLab {
	l := &revocationLab{}
	l.ocsp = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.ocspN.Add(1)
		http.Error(w, "send an OCSP request", http.StatusBadRequest) // as responders answer a bare GET
	}))
	t.Cleanup(l.ocsp.Close)
	l.crl = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.crlN.Add(1)
		w.Header().Set("Content-Type", "application/pkix-crl")
		chunk := make([]byte, 32<<10)
		for range 2048 { // 64 MiB, far past the bound and the socket buffers
			n, err := w.Write(chunk)
			l.crlRead.Add(int64(n))
			if err != nil {
				return
			}
		}
	}))
	t.Cleanup(l.crl.Close)
	l.dead = net.JoinHostPort("127.0.0.1", strconv.Itoa(closedPort(t)))
	l.ocspURL, l.crlURL = "http://"+host("ocsp", l.ocsp)+"/ocsp", "http://"+host("crl", l.crl)+"/ca.crl"
	leaf := &x509.Certificate{OCSPServer: []string{l.ocspURL}, CRLDistributionPoints: []string{l.crlURL, "ldap://dir.reachd.test/cn=crl"},
		IssuingCertificateURL: []string{"http://" + l.dead + "/issuer.cer"}}
	inter := &x509.Certificate{CRLDistributionPoints: []string{l.crlURL}, OCSPServer: []string{l.ocspURL}}
	root := &x509.Certificate{OCSPServer: []string{"http://root-never-checked.reachd.test/"}}
	l.chain = []*x509.Certificate{leaf, inter, root}
	return l
}

func (l *revocationLab) run(v *revocation, f *fetcher) *Result {
	r := &Result{TLS: &TLSInfo{Chain: l.chain}}
	v.run(context.Background(), r, route{fetch: f, run: context.Background()})
	return r
}

func verdicts(r *Result) map[string]bool {
	out := map[string]bool{}
	for _, c := range r.Revocation {
		out[c.Kind+" "+c.URL] = c.Reachable
	}
	return out
}

// TestRevocationDirect: the leaf's and intermediates' http:// URLs, each
// once, not the root's nor ldap://; a 400 from an OCSP responder is an
// answer, a dead port is not; a CRL's body is bounded; once per interval.
func TestRevocationDirect(t *testing.T) {
	l := newRevocationLab(t, func(_ string, s *httptest.Server) string { return s.Listener.Addr().String() })
	f := newFetcher(configs.Path{Name: "direct"}, nil, nil, "reachd-test", nil)
	v := newRevocation(2*time.Second, time.Hour)
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	v.now = clock.now
	r := l.run(v, f)
	want := map[string]bool{"ocsp " + l.ocspURL: true, "crl " + l.crlURL: true, "aia http://" + l.dead + "/issuer.cer": false}
	if got := verdicts(r); len(got) != len(want) {
		t.Fatalf("checks %+v, want %v", r.Revocation, want)
	} else {
		for k, w := range want {
			if g, ok := got[k]; !ok || g != w {
				t.Errorf("%s: reachable %v (present %v), want %v", k, g, ok, w)
			}
		}
	}
	for _, c := range r.Revocation {
		switch c.Kind {
		case RevocationOCSP:
			if c.Status != 400 || c.Detail != "" {
				t.Errorf("ocsp %+v", c)
			}
		case RevocationAIA:
			if c.Status != 0 || !strings.Contains(c.Detail, "tcp_refused") {
				t.Errorf("aia %+v", c)
			}
		}
	}
	if n := l.crlRead.Load(); n >= 64<<20 {
		t.Errorf("the CRL server wrote all %d bytes: the body is not bounded", n)
	}
	clock.t = clock.t.Add(59 * time.Minute)
	if r2 := l.run(v, f); len(r2.Revocation) != 3 || l.ocspN.Load() != 1 || l.crlN.Load() != 1 {
		t.Errorf("checked again within the interval: ocsp %d crl %d", l.ocspN.Load(), l.crlN.Load())
	}
	clock.t = clock.t.Add(time.Minute)
	l.run(v, f)
	if l.ocspN.Load() != 2 {
		t.Errorf("not checked again after the interval: ocsp %d", l.ocspN.Load())
	}
	// No verified chain, no checks.
	r3 := &Result{TLS: &TLSInfo{}}
	v.run(context.Background(), r3, route{fetch: f, run: context.Background()})
	if r3.Revocation != nil {
		t.Errorf("checks without a chain: %+v", r3.Revocation)
	}
}

// TestRevocationThroughProxy: the checks go through the path's proxy as
// absolute-form GETs with its credentials; a host the proxy will not
// reach is unreachable (0) with the proxy's reason, the others answer.
func TestRevocationThroughProxy(t *testing.T) {
	l := newRevocationLab(t, func(kind string, _ *httptest.Server) string { return kind + ".reachd.test" })
	proxy := probetest.NewProxy(t, probetest.BasicAuth("svc", "pw"), probetest.SquidErrors(),
		probetest.Upstream(map[string]string{"ocsp.reachd.test:80": l.ocsp.Listener.Addr().String()})) // the CRL host is not let through
	path := configs.Path{Name: "corp", Proxy: proxy.URL, Username: "svc", Password: "pw"}
	f := newFetcher(path, nil, nil, "reachd-test", nil)
	r := l.run(newRevocation(2*time.Second, time.Hour), f)
	got := verdicts(r)
	if !got["ocsp "+l.ocspURL] || got["crl "+l.crlURL] || len(got) != 3 {
		t.Fatalf("checks %+v", r.Revocation)
	}
	for _, c := range r.Revocation {
		if c.Kind == RevocationCRL && !strings.Contains(c.Detail, "proxy_") {
			t.Errorf("crl detail %q does not name the proxy's refusal", c.Detail)
		}
	}
	if l.crlN.Load() != 0 {
		t.Errorf("the CRL server was reached past the proxy")
	}
	reqs := proxy.Requests()
	if len(reqs) == 0 {
		t.Fatal("nothing went through the proxy")
	}
	for _, q := range reqs {
		if q.Method != "GET" || !strings.HasPrefix(q.URI, "http://") || !strings.HasPrefix(q.ProxyAuthorization, "Basic ") {
			t.Errorf("request %+v: want an absolute-form GET with credentials", q)
		}
	}
}

// TestRevocationInProbe: a real probe checks its verified chain's URLs
// (here the leaf's caIssuers URL) after the stages, and passes.
func TestRevocationInProbe(t *testing.T) {
	l := newLab(t)
	aia := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(l.ca.Cert.Raw) }))
	t.Cleanup(aia.Close)
	l.ca.IssuerURLs = []string{aia.URL + "/ca.cer"}
	s := l.server("rev.reachd.test")
	r := l.probe(target("rev.reachd.test", s.Port), configs.Path{Name: "direct"}, l.config())
	assertOutcome(t, r, "", "", "")
	if len(r.Revocation) != 1 || r.Revocation[0].Kind != RevocationAIA || !r.Revocation[0].Reachable || r.Revocation[0].Status != 200 {
		t.Errorf("revocation %+v", r.Revocation)
	}
}
