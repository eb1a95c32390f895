package probe

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// chainCheck is what the tls stage does with a chain beyond verifying it:
// fetch a missing intermediate from its AIA URL over the probe's path, and
// fail an intercepted chain of a target whose agent pins certificates.
type chainCheck struct {
	fetch  *fetcher // nil: no AIA fetch
	breaks bool     // the target's inspection = "breaks"
	vendor string
	host   string
}

// maxIssuerBody bounds an AIA caIssuers download: a certificate or a
// small PKCS#7 bundle.
const maxIssuerBody = 64 << 10

// judgeChain refines verify's verdict on certs: a chain that is untrusted
// only because the server left out an intermediate that the AIA caIssuers
// URL supplies is tls_chain_incomplete; an intercepted chain fails on a
// target whose inspection is "breaks".
func (tp *tlsProber) judgeChain(ctx context.Context, certs []*x509.Certificate, intercepted bool, err *Error) (bool, *Error) {
	if err != nil && err.Reason == TLSUntrustedCA && tp.chain.fetch != nil {
		intercepted, err = tp.completeChain(ctx, certs, err)
	}
	if err == nil && intercepted && tp.chain.breaks {
		err = fail(TLSIntercepted, fmt.Errorf("the chain is re-signed by %q, an inspection CA this path trusts; %s requires that %s be exempt from TLS inspection (its agent pins certificates)",
			issuerName(certs[len(certs)-1]), tp.chain.vendor, tp.chain.host))
	}
	return intercepted, err
}

// completeChain fetches the issuer named by the AIA caIssuers URL of the
// last certificate sent (then of the leaf) and verifies again with it.
func (tp *tlsProber) completeChain(ctx context.Context, certs []*x509.Certificate, untrusted *Error) (bool, *Error) {
	var urls []string
	for _, c := range []*x509.Certificate{certs[len(certs)-1], certs[0]} {
		for _, u := range c.IssuingCertificateURL {
			if !slices.Contains(urls, u) {
				urls = append(urls, u)
			}
		}
	}
	if len(urls) == 0 {
		return false, untrusted
	}
	var problems []string
	for _, u := range urls {
		issuers, err := tp.fetchIssuers(ctx, u)
		if err != nil {
			problems = append(problems, fmt.Sprintf("fetching the issuer from the AIA URL %s failed: %v", u, err))
			continue
		}
		opts := x509.VerifyOptions{DNSName: tp.host, Roots: tp.legit, Intermediates: x509.NewCertPool()}
		for _, c := range append(certs[1:], issuers...) {
			opts.Intermediates.AddCert(c)
		}
		intercepted := false
		if _, err := certs[0].Verify(opts); err != nil {
			opts.Roots = tp.trusted
			if _, err := certs[0].Verify(opts); err != nil {
				problems = append(problems, fmt.Sprintf("the chain does not verify even with %q fetched from %s", subjectName(issuers[0]), u))
				continue
			}
			intercepted = true
		}
		return intercepted, fail(TLSChainIncomplete, fmt.Errorf("the server does not send the intermediate %q (issuer of %q); the chain verifies once it is fetched from its AIA URL %s",
			subjectName(issuers[0]), certs[len(certs)-1].Subject.CommonName, u))
	}
	return false, fail(TLSUntrustedCA, fmt.Errorf("%w; %s", untrusted.Err, strings.Join(problems, "; ")))
}

// fetchIssuers downloads an AIA caIssuers URL over the probe's path and
// parses what it serves: DER, PEM, or a PKCS#7 certs-only bundle.
func (tp *tlsProber) fetchIssuers(ctx context.Context, u string) ([]*x509.Certificate, error) {
	got, ferr := tp.chain.fetch.fetch(ctx, u, maxIssuerBody)
	if ferr != nil {
		return nil, fmt.Errorf("%s: %w", ferr.Reason, ferr.Err)
	}
	if got.Status != http.StatusOK {
		return nil, fmt.Errorf("status %d", got.Status)
	}
	if got.Truncated {
		return nil, fmt.Errorf("more than %d bytes", maxIssuerBody)
	}
	certs, err := parseIssuers(got.Body)
	if err != nil {
		return nil, err
	}
	return certs, nil
}

// parseIssuers reads certificates served as DER, PEM (CERTIFICATE or
// PKCS7 blocks) or a DER PKCS#7 SignedData (.p7c).
func parseIssuers(b []byte) ([]*x509.Certificate, error) {
	if bytes.Contains(b, []byte("-----BEGIN")) {
		var out []*x509.Certificate
		for {
			var block *pem.Block
			block, b = pem.Decode(b)
			if block == nil {
				break
			}
			var certs []*x509.Certificate
			var err error
			switch block.Type {
			case "CERTIFICATE":
				certs, err = x509.ParseCertificates(block.Bytes)
			case "PKCS7":
				certs, err = parsePKCS7(block.Bytes)
			default:
				continue
			}
			if err != nil {
				return nil, err
			}
			out = append(out, certs...)
		}
		if len(out) == 0 {
			return nil, errors.New("no certificate in the PEM served")
		}
		return out, nil
	}
	if certs, err := x509.ParseCertificates(b); err == nil && len(certs) > 0 {
		return certs, nil
	}
	certs, err := parsePKCS7(b)
	if err != nil {
		return nil, fmt.Errorf("neither a DER certificate nor PKCS#7: %w", err)
	}
	return certs, nil
}

var oidSignedData = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}

// parsePKCS7 reads the certificates of a PKCS#7 SignedData (RFC 2315), as
// CAs serve their .p7c files.
func parsePKCS7(der []byte) ([]*x509.Certificate, error) {
	var ci struct {
		ContentType asn1.ObjectIdentifier
		Content     asn1.RawValue `asn1:"explicit,tag:0"`
	}
	if _, err := asn1.Unmarshal(der, &ci); err != nil {
		return nil, fmt.Errorf("PKCS#7: %w", err)
	}
	if !ci.ContentType.Equal(oidSignedData) {
		return nil, fmt.Errorf("PKCS#7 content type %v is not SignedData", ci.ContentType)
	}
	var sd struct {
		Version          int
		DigestAlgorithms asn1.RawValue
		ContentInfo      asn1.RawValue
		Certificates     asn1.RawValue `asn1:"optional,tag:0"`
		CRLs             asn1.RawValue `asn1:"optional,tag:1"`
		SignerInfos      asn1.RawValue
	}
	if _, err := asn1.Unmarshal(ci.Content.Bytes, &sd); err != nil {
		return nil, fmt.Errorf("PKCS#7 SignedData: %w", err)
	}
	certs, err := x509.ParseCertificates(sd.Certificates.Bytes)
	if err != nil {
		return nil, fmt.Errorf("PKCS#7 certificates: %w", err)
	}
	if len(certs) == 0 {
		return nil, errors.New("PKCS#7 without certificates")
	}
	return certs, nil
}

func subjectName(c *x509.Certificate) string {
	if c.Subject.CommonName != "" {
		return c.Subject.CommonName
	}
	return c.Subject.String()
}
