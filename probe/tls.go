package probe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"sync"
	"time"

	"golang.org/x/crypto/x509roots/fallback/bundle"
)

// TLSVersions are the versions the sweep tries, each alone.
var TLSVersions = []uint16{tls.VersionTLS10, tls.VersionTLS11, tls.VersionTLS12, tls.VersionTLS13}

// TLSVersionName is "1.0" .. "1.3".
func TLSVersionName(v uint16) string {
	switch v {
	case tls.VersionTLS10:
		return "1.0"
	case tls.VersionTLS11:
		return "1.1"
	case tls.VersionTLS12:
		return "1.2"
	case tls.VersionTLS13:
		return "1.3"
	}
	return fmt.Sprintf("0x%04x", v)
}

// allSuites offers every suite Go implements, so that a sweep at TLS 1.0
// or 1.1 really finds a server that speaks only those.
var allSuites = sync.OnceValue(func() []uint16 {
	var ids []uint16
	for _, s := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		ids = append(ids, s.ID)
	}
	return ids
})

// mozillaRoots is the public web PKI as Mozilla ships it, independent of
// the probe host's own store, so a corporate CA installed there cannot hide
// interception.
var mozillaRoots = sync.OnceValue(func() *x509.CertPool {
	pool := x509.NewCertPool()
	for r := range bundle.Roots() {
		c, err := x509.ParseCertificate(r.Certificate)
		if err != nil {
			continue
		}
		if r.Constraint != nil {
			pool.AddCertWithConstraint(c, r.Constraint)
		} else {
			pool.AddCert(c)
		}
	}
	return pool
})

// tlsProber runs the tls stage for one target over one path.
type tlsProber struct {
	conf    *tls.Config // built once; cloned only for the sweep
	host    string
	legit   *x509.CertPool
	trusted *x509.CertPool
	pin     string
	min     uint16
	chain   chainCheck // chain.go: AIA completion, inspection = "breaks"
}

func newTLSProber(host string, min uint16, alpn []string, legit, trusted *x509.CertPool, pin string) *tlsProber {
	return &tlsProber{
		conf: &tls.Config{
			ServerName: host,
			MinVersion: min,
			MaxVersion: tls.VersionTLS13,
			NextProtos: alpn,
			// The chain is judged after the handshake against two anchor
			// sets, which crypto/tls cannot do on its own.
			InsecureSkipVerify: true,
		},
		host: host, legit: legit, trusted: trusted, pin: pin, min: min,
	}
}

// handshake runs TLS over conn and judges the chain.
func (tp *tlsProber) handshake(ctx context.Context, conn net.Conn) (*tls.Conn, *TLSInfo, *Error) {
	tc := tls.Client(conn, tp.conf)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, nil, classifyTLS(err)
	}
	st := tc.ConnectionState()
	info := &TLSInfo{Version: st.Version, Cipher: tls.CipherSuiteName(st.CipherSuite)}
	leaf := st.PeerCertificates[0]
	info.Issuer = issuerName(leaf)
	for _, c := range st.PeerCertificates {
		if info.NotAfter.IsZero() || c.NotAfter.Before(info.NotAfter) {
			info.NotAfter = c.NotAfter
		}
	}
	intercepted, err := tp.verify(st.PeerCertificates)
	intercepted, err = tp.judgeChain(ctx, st.PeerCertificates, intercepted, err)
	info.Intercepted = intercepted
	if err == nil && tp.pin != "" && leaf.Issuer.CommonName != tp.pin {
		err = fail(TLSIntercepted, fmt.Errorf("certificate issued by %q, pinned issuer is %q", info.Issuer, tp.pin))
	}
	return tc, info, err
}

// verify judges the chain: against the legitimate roots it is fine; only
// against the trusted roots it is intercepted; neither, untrusted.
func (tp *tlsProber) verify(certs []*x509.Certificate) (intercepted bool, _ *Error) {
	opts := x509.VerifyOptions{DNSName: tp.host, Roots: tp.legit, Intermediates: x509.NewCertPool()}
	for _, c := range certs[1:] {
		opts.Intermediates.AddCert(c)
	}
	_, err := certs[0].Verify(opts)
	var unknown x509.UnknownAuthorityError
	if errors.As(err, &unknown) {
		opts.Roots = tp.trusted
		if _, err2 := certs[0].Verify(opts); err2 == nil {
			return true, nil
		}
	}
	if err == nil {
		return false, nil
	}
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &host):
		return false, fail(TLSHostnameMismatch, fmt.Errorf("certificate for %s is not valid for %s", certNames(certs[0]), tp.host))
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return false, fail(TLSExpired, fmt.Errorf("certificate %q: %s", certs[0].Subject.CommonName, invalid.Detail))
	case errors.As(err, &unknown):
		top := certs[len(certs)-1]
		return false, fail(TLSUntrustedCA, fmt.Errorf("the chain ends in %q (leaf issued by %q), which this site does not trust", issuerName(top), issuerName(certs[0])))
	}
	return false, fail(TLSError, err)
}

// classifyTLS names a handshake failure.
func classifyTLS(err error) *Error {
	alert, isAlert := remoteAlert(err)
	switch {
	case isTimeout(err):
		return fail(TLSTimeout, fmt.Errorf("handshake stalled: %w", err))
	case isReset(err), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fail(TLSReset, fmt.Errorf("connection closed after the ClientHello: %w", err))
	case isAlert && alert == alertProtocolVersion:
		return fail(TLSVersionUnsupported, err)
	case isAlert:
		return fail(TLSHandshakeFailed, err)
	}
	return fail(TLSError, err)
}

const alertProtocolVersion = 70

// remoteAlert returns the TLS alert the peer sent. crypto/tls reports a
// received alert as a *net.OpError "remote error" around its unexported
// alert type (a uint8); tls.AlertError is what QUIC connections return.
func remoteAlert(err error) (uint8, bool) {
	var ae tls.AlertError
	if errors.As(err, &ae) {
		return uint8(ae), true
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "remote error" && oe.Err != nil {
		if v := reflect.ValueOf(oe.Err); v.Kind() == reflect.Uint8 {
			return uint8(v.Uint()), true
		}
	}
	return 0, false
}

// sweep tries each TLS version alone, in parallel, each handshake over its
// own connection and with its own timeout.
func (tp *tlsProber) sweep(ctx context.Context, timeout time.Duration, dial func(context.Context) (net.Conn, *Error)) map[uint16]bool {
	accepted := make(map[uint16]bool, len(TLSVersions))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, v := range TLSVersions {
		spawn(ctx, &wg, func() {
			ok := tp.try(ctx, timeout, v, dial)
			mu.Lock()
			accepted[v] = ok
			mu.Unlock()
		})
	}
	wg.Wait()
	return accepted
}

func (tp *tlsProber) try(ctx context.Context, timeout time.Duration, v uint16, dial func(context.Context) (net.Conn, *Error)) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, ferr := dial(ctx)
	if ferr != nil {
		return false
	}
	defer conn.Close()
	conf := tp.conf.Clone()
	conf.MinVersion, conf.MaxVersion = v, v
	if v < tls.VersionTLS12 {
		conf.CipherSuites = allSuites()
	}
	return tls.Client(conn, conf).HandshakeContext(ctx) == nil
}

func issuerName(c *x509.Certificate) string {
	if c.Issuer.CommonName != "" {
		return c.Issuer.CommonName
	}
	return c.Issuer.String()
}

func certNames(c *x509.Certificate) string {
	names := append([]string{}, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		return fmt.Sprintf("%q", c.Subject.CommonName)
	}
	return fmt.Sprintf("%q", names)
}
