package probe

import (
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reachd/reachd/configs"
	"github.com/reachd/reachd/probe/probetest"
	"github.com/reachd/reachd/targets"
)

// pkcs7 wraps certs in a certs-only PKCS#7 SignedData, as CAs serve .p7c.
func pkcs7(t *testing.T, certs ...*x509.Certificate) []byte {
	t.Helper()
	var raw []byte
	for _, c := range certs {
		raw = append(raw, c.Raw...)
	}
	data, _ := asn1.Marshal(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1})
	sd, err := asn1.Marshal(struct {
		Version          int
		DigestAlgorithms asn1.RawValue
		ContentInfo      asn1.RawValue
		Certificates     asn1.RawValue `asn1:"tag:0"`
		SignerInfos      asn1.RawValue
	}{
		Version:          1,
		DigestAlgorithms: asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSet, IsCompound: true},
		ContentInfo:      asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: data},
		Certificates:     asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: raw},
		SignerInfos:      asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSet, IsCompound: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	ci, err := asn1.Marshal(struct {
		ContentType asn1.ObjectIdentifier
		Content     asn1.RawValue
	}{asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: sd}})
	if err != nil {
		t.Fatal(err)
	}
	return ci
}

// TestMissingIntermediate: a server that sends its leaf without the
// intermediate fails as tls_chain_incomplete when the leaf's AIA URL
// serves the issuer (over the probe's own path), and stays
// tls_untrusted_ca, saying why, when it cannot be fetched.
func TestMissingIntermediate(t *testing.T) {
	l := newLab(t)
	inter := l.ca.NewIntermediate(t, "Lab Issuing CA 7")
	served := map[string][]byte{
		"/inter.crt": inter.Cert.Raw,
		"/inter.pem": inter.PEM,
		"/inter.p7c": pkcs7(t, inter.Cert),
		"/inter.p7b": pem.EncodeToMemory(&pem.Block{Type: "PKCS7", Bytes: pkcs7(t, inter.Cert)}),
		"/other.crt": probetest.NewCA(t, "Unrelated CA").Cert.Raw,
	}
	aia := probetest.NewHTTPServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := served[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}))
	l.dns.Set("aia.reachd.test", probetest.Entry{A: []string{"127.0.0.1"}})
	base := "http://aia.reachd.test:" + strconv.Itoa(aia.Port)

	// leafOnly serves a leaf issued by the intermediate, with AIA URL u,
	// and no intermediate.
	leafOnly := func(host, u string) *probetest.TLSServer {
		inter.IssuerURLs = []string{u}
		c := inter.Issue(t, []string{host}, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
		inter.IssuerURLs = nil
		c.Certificate = c.Certificate[:1]
		return l.server(host, probetest.Certificate(c))
	}
	proxy := probetest.NewProxy(t, probetest.Upstream(map[string]string{"aia.reachd.test:" + strconv.Itoa(aia.Port): aia.Addr}))
	viaProxy := configs.Path{Name: "corp", Proxy: proxy.URL}
	direct := configs.Path{Name: "direct"}

	tests := []struct {
		name   string
		url    string
		path   configs.Path
		reason Reason
		detail string
	}{
		{"DER", base + "/inter.crt", direct, TLSChainIncomplete, `the server does not send the intermediate "Lab Issuing CA 7" (issuer of "der.reachd.test"); the chain verifies once it is fetched from its AIA URL ` + base + "/inter.crt"},
		{"PEM", base + "/inter.pem", direct, TLSChainIncomplete, `"Lab Issuing CA 7"`},
		{"PKCS7 DER", base + "/inter.p7c", direct, TLSChainIncomplete, `"Lab Issuing CA 7"`},
		{"PKCS7 PEM", base + "/inter.p7b", direct, TLSChainIncomplete, `"Lab Issuing CA 7"`},
		{"through the proxy", base + "/inter.crt", viaProxy, TLSChainIncomplete, base + "/inter.crt"},
		{"AIA answers 404", base + "/gone.crt", direct, TLSUntrustedCA, "fetching the issuer from the AIA URL " + base + "/gone.crt failed: status 404"},
		{"AIA host unknown", "http://nowhere.reachd.test/inter.crt", direct, TLSUntrustedCA, "AIA URL http://nowhere.reachd.test/inter.crt failed: dns_nxdomain"},
		{"AIA serves another CA", base + "/other.crt", direct, TLSUntrustedCA, `does not verify even with "Unrelated CA" fetched from`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host := strings.ToLower(strings.Fields(tt.name)[0]) + ".reachd.test"
			s := leafOnly(host, tt.url)
			tg := target(host, s.Port)
			if tt.path.Proxy != nil {
				tg.Port = 443
				proxy.Close() // replaced below with one that also knows the server
				proxy = probetest.NewProxy(t, probetest.Upstream(map[string]string{
					"aia.reachd.test:" + strconv.Itoa(aia.Port): aia.Addr, host + ":443": s.Addr}))
				tt.path.Proxy = proxy.URL
			}
			r := l.probe(tg, tt.path, l.config())
			assertOutcome(t, r, StageTLS, tt.reason, tt.detail)
			if tt.path.Proxy != nil {
				var got []string
				for _, req := range proxy.Requests() {
					got = append(got, req.Method+" "+req.URI+" "+req.Target)
				}
				if want := "GET " + tt.url + " aia.reachd.test:" + strconv.Itoa(aia.Port); !strings.Contains(strings.Join(got, "\n"), want) {
					t.Errorf("the proxy got %q, want %q", got, want)
				}
			}
		})
	}

	// A server that sends its intermediate is fine, and no fetch happens.
	full := inter.Issue(t, []string{"full.reachd.test"}, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
	s := l.server("full.reachd.test", probetest.Certificate(full))
	assertOutcome(t, l.probe(target("full.reachd.test", s.Port), direct, l.config()), "", "", "")
}

// TestInspectionBreaks: an intercepted chain passes (and says so) on an
// ordinary target, and fails on one whose agent pins certificates.
func TestInspectionBreaks(t *testing.T) {
	l := newLab(t)
	inspection := probetest.NewCA(t, "Corp Inspection CA")
	s := l.server("edr.reachd.test", probetest.Issuer(inspection))
	corp := configs.Path{Name: "corp", CACerts: []*x509.Certificate{inspection.Cert}}

	r := l.probe(target("edr.reachd.test", s.Port), corp, l.config())
	assertOutcome(t, r, "", "", "")
	if !r.TLS.Intercepted {
		t.Errorf("tls %+v, want intercepted", r.TLS)
	}

	pinned := target("edr.reachd.test", s.Port, func(t *targets.Target) {
		t.Vendor = "microsoft-defender-endpoint"
		t.Inspection = targets.InspectionBreaks
	})
	r = l.probe(pinned, corp, l.config())
	assertOutcome(t, r, StageTLS, TLSIntercepted, `the chain is re-signed by "Corp Inspection CA", an inspection CA this path trusts; microsoft-defender-endpoint requires that edr.reachd.test be exempt from TLS inspection`)
	if r.TLS == nil || !r.TLS.Intercepted || r.TLS.Issuer != "Corp Inspection CA" {
		t.Errorf("tls %+v, want the interception shown", r.TLS)
	}
	if !strings.Contains(r.Err.Reason.Hint(), "exempt") {
		t.Errorf("hint %q", r.Err.Reason.Hint())
	}

	// A reload that sets the key changes the probe.
	if New(pinned, corp, NewEnv(l.config(), "ua")).Version() == New(target("edr.reachd.test", s.Port, func(t *targets.Target) { t.Vendor = pinned.Vendor }), corp, NewEnv(l.config(), "ua")).Version() {
		t.Error("inspection is not part of the prober's version")
	}

	// A chain that verifies against the public (legitimate) roots is not
	// interception, whatever the target's inspection says.
	r = l.probe(pinned, configs.Path{Name: "direct"}, l.config(inspection.Cert))
	assertOutcome(t, r, "", "", "")
}
