package probe

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"slices"
	"strings"
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

// offeredSuites are the TLS 1.0-1.2 cipher suites every handshake offers,
// the probe's own and each of the sweep's, at every version: what the
// agents' TLS stacks offer. SChannel still offers RSA key exchange
// (TLS_RSA_WITH_AES_128_GCM_SHA256 and the like) and 3DES, which Go leaves
// out of its defaults (GODEBUG tlsrsakex, tls3des) but speaks when they are
// listed; RC4 is left out, as every current agent leaves it out. TLS 1.3
// suites are not configurable in Go and always offered.
var offeredSuites = sync.OnceValue(func() []uint16 {
	var ids []uint16
	for _, s := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		if strings.Contains(s.Name, "_RC4_") || !slices.ContainsFunc(s.SupportedVersions, func(v uint16) bool { return v < tls.VersionTLS13 }) {
			continue
		}
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
	conf    *tls.Config            // shared by every prober with the same settings; no ServerName
	sweeps  map[uint16]*tls.Config // conf pinned to each of TLSVersions; shared too
	host    string
	legit   *x509.CertPool
	trusted *x509.CertPool
	pin     string
	min     uint16
	chain   chainCheck // chain.go: AIA completion, inspection = "breaks"
}

// agentCurves are the key exchange groups offered, in Windows SChannel's
// order (Windows 10/11, Server 2016-2025), which OpenSSL before 3.5 and
// Java offer too: the agents' ClientHello. Go's default would add an
// X25519MLKEM768 key share, which grows the ClientHello past one packet,
// a shape that some middleboxes drop while the agents' small hellos pass
// (and it cost the probe a fifth of its handshake CPU).
var agentCurves = []tls.CurveID{tls.X25519, tls.CurveP256, tls.CurveP384}

// tlsConfigs holds the configs of every TLS setting in use (minimum
// version and ALPN), shared by the probers: at 10,000 targets, five
// configs a prober were 24 MB of the heap. A handshake clones one and
// sets the server name.
var tlsConfigs struct {
	sync.Mutex
	m map[tlsSetting]*tlsConfigSet
}

type tlsSetting struct {
	min  uint16
	alpn string
}

type tlsConfigSet struct {
	conf   *tls.Config
	sweeps map[uint16]*tls.Config
}

func sharedTLSConfigs(min uint16, alpn []string) *tlsConfigSet {
	key := tlsSetting{min, strings.Join(alpn, ",")}
	tlsConfigs.Lock()
	defer tlsConfigs.Unlock()
	if set := tlsConfigs.m[key]; set != nil {
		return set
	}
	conf := &tls.Config{
		MinVersion:       min,
		MaxVersion:       tls.VersionTLS13,
		NextProtos:       alpn,
		CipherSuites:     offeredSuites(),
		CurvePreferences: agentCurves,
		// The chain is judged after the handshake against two anchor
		// sets, which crypto/tls cannot do on its own.
		InsecureSkipVerify:   true,
		GetClientCertificate: noClientCert,
	}
	set := &tlsConfigSet{conf: conf, sweeps: make(map[uint16]*tls.Config, len(TLSVersions))}
	for _, v := range TLSVersions {
		c := conf.Clone()
		c.MinVersion, c.MaxVersion = v, v
		set.sweeps[v] = c
	}
	if tlsConfigs.m == nil {
		tlsConfigs.m = map[tlsSetting]*tlsConfigSet{}
	}
	tlsConfigs.m[key] = set
	return set
}

func newTLSProber(host string, min uint16, alpn []string, legit, trusted *x509.CertPool, pin string) *tlsProber {
	set := sharedTLSConfigs(min, alpn)
	return &tlsProber{conf: set.conf, sweeps: set.sweeps, host: host, legit: legit, trusted: trusted, pin: pin, min: min}
}

// config is base with the target's server name.
func (tp *tlsProber) config(base *tls.Config) *tls.Config {
	c := base.Clone()
	c.ServerName = tp.host
	return c
}

// handshake runs TLS over conn and judges the chain. The connection it
// returns carries the http stage.
func (tp *tlsProber) handshake(ctx context.Context, conn net.Conn) (net.Conn, *TLSInfo, *Error) {
	tc, wire, err := clientHandshake(ctx, conn, tp.config(tp.conf))
	if err != nil {
		var info *TLSInfo
		if wire.certRequested {
			info = &TLSInfo{ClientCertRequested: true}
		}
		return nil, info, classifyTLS(err, wire, tp.min)
	}
	st := tc.ConnectionState()
	info := &TLSInfo{Version: st.Version, Cipher: tls.CipherSuiteName(st.CipherSuite), ClientCertRequested: wire.certRequested}
	leaf := st.PeerCertificates[0]
	info.Issuer = issuerName(leaf)
	chain, intercepted, verr := tp.verify(st.PeerCertificates)
	intercepted, verr = tp.judgeChain(ctx, st.PeerCertificates, intercepted, verr)
	info.Intercepted = intercepted
	info.NotAfter = earliestExpiry(chain, leaf)
	info.Chain = chain
	if verr == nil {
		verr = tp.checkPin(leaf, intercepted)
	}
	if wire.certRequested {
		return &certConn{Conn: tc}, info, verr
	}
	return tc, info, verr
}

// checkPin compares the leaf's issuer with pin_issuer. A mismatch on a
// chain that only the site's inspection CA verifies is interception; on
// one that the public roots verify, the vendor changed its CA.
func (tp *tlsProber) checkPin(leaf *x509.Certificate, intercepted bool) *Error {
	if tp.pin == "" || leaf.Issuer.CommonName == tp.pin {
		return nil
	}
	if intercepted {
		return fail(TLSIntercepted, fmt.Errorf("certificate issued by %q, pinned issuer is %q", issuerName(leaf), tp.pin))
	}
	return fail(TLSIssuerChanged, fmt.Errorf("certificate issued by %q, which the legitimate roots verify; pinned issuer is %q", issuerName(leaf), tp.pin))
}

// verify judges the chain: against the legitimate roots it is fine; only
// against the trusted roots it is intercepted; neither, untrusted. It
// returns the chain that verified, root included; nil when none did.
func (tp *tlsProber) verify(certs []*x509.Certificate) (chain []*x509.Certificate, intercepted bool, _ *Error) {
	opts := x509.VerifyOptions{DNSName: tp.host, Roots: tp.legit, Intermediates: x509.NewCertPool()}
	for _, c := range certs[1:] {
		opts.Intermediates.AddCert(c)
	}
	chains, err := certs[0].Verify(opts)
	if err == nil {
		return longestLived(chains), false, nil
	}
	var unknown x509.UnknownAuthorityError
	if errors.As(err, &unknown) {
		opts.Roots = tp.trusted
		if chains, err2 := certs[0].Verify(opts); err2 == nil {
			return longestLived(chains), true, nil
		}
	}
	return nil, false, tp.chainError(certs, err)
}

// chainError names why the chain failed, and which certificate.
func (tp *tlsProber) chainError(certs []*x509.Certificate, err error) *Error {
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	var unknown x509.UnknownAuthorityError
	switch {
	case errors.As(err, &host):
		err := fmt.Errorf("certificate for %s is not valid for %s", certNames(host.Certificate), tp.host)
		if len(host.Certificate.DNSNames) == 0 && len(host.Certificate.IPAddresses) == 0 {
			// Go reads no names from the Common Name; SChannel still may.
			err = fmt.Errorf("%w: it has no subject alternative names (%w)", err, host)
		}
		return fail(TLSHostnameMismatch, err)
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return fail(TLSExpired, fmt.Errorf("certificate %s: %s", certRole(certs, invalid.Cert), invalid.Detail))
	case errors.As(err, &invalid):
		return fail(TLSError, fmt.Errorf("certificate %s: %w", certRole(certs, invalid.Cert), err))
	case errors.As(err, &unknown):
		if c := insecureSignature(certs); c != nil {
			return fail(TLSUntrustedCA, fmt.Errorf("certificate %s is signed with %s, which Go no longer verifies: %w",
				certRole(certs, c), c.SignatureAlgorithm, x509.InsecureAlgorithmError(c.SignatureAlgorithm)))
		}
		top := certs[len(certs)-1]
		return fail(TLSUntrustedCA, fmt.Errorf("the chain ends in %q (leaf issued by %q), which this site does not trust", issuerName(top), issuerName(certs[0])))
	}
	return fail(TLSError, err)
}

// insecureSignature is the first certificate of the chain the server sent
// whose issuer signed it with SHA-1 or MD5 (x509.InsecureAlgorithmError);
// a self-signed root's own signature is never checked.
func insecureSignature(certs []*x509.Certificate) *x509.Certificate {
	for _, c := range certs {
		if bytes.Equal(c.RawIssuer, c.RawSubject) {
			continue
		}
		switch c.SignatureAlgorithm {
		case x509.SHA1WithRSA, x509.DSAWithSHA1, x509.ECDSAWithSHA1, x509.MD5WithRSA, x509.MD2WithRSA:
			return c
		}
	}
	return nil
}

// certRole names c by its Common Name and its place in the chain.
func certRole(certs []*x509.Certificate, c *x509.Certificate) string {
	role := "the root"
	for i, sent := range certs {
		if sent.Equal(c) {
			role = "an intermediate"
			if i == 0 {
				role = "the leaf"
			}
		}
	}
	name := c.Subject.CommonName
	if name == "" {
		name = c.Subject.String()
	}
	return fmt.Sprintf("%q (%s)", name, role)
}

// longestLived is the chain whose earliest expiry is the latest: the one
// a client keeps using longest. Verify returns only chains valid now.
func longestLived(chains [][]*x509.Certificate) []*x509.Certificate {
	var best []*x509.Certificate
	for _, c := range chains {
		if best == nil || earliestExpiry(c, nil).After(earliestExpiry(best, nil)) {
			best = c
		}
	}
	return best
}

// earliestExpiry is the earliest NotAfter of a verified chain; of the
// leaf alone when none verified. An extra certificate the server sends
// beside the chain (an expired cross-sign) does not count.
func earliestExpiry(chain []*x509.Certificate, leaf *x509.Certificate) time.Time {
	if len(chain) == 0 {
		return leaf.NotAfter
	}
	t := chain[0].NotAfter
	for _, c := range chain[1:] {
		if c.NotAfter.Before(t) {
			t = c.NotAfter
		}
	}
	return t
}

// The TLS alerts the verdicts tell apart (RFC 8446 §6).
const (
	alertHandshakeFailure = 40
	alertProtocolVersion  = 70
)

// classifyTLS names a handshake failure from the error and from what the
// server sent before it (wire); min is the lowest version offered.
func classifyTLS(err error, wire *wireConn, min uint16) *Error {
	alert, isAlert := remoteAlert(err)
	closed := endedByPeer(err)
	switch {
	case isTimeout(err):
		if wire.received > 0 {
			return fail(TLSTimeout, fmt.Errorf("handshake stalled after %d bytes from the server: %w", wire.received, err))
		}
		return fail(TLSTimeout, fmt.Errorf("handshake stalled: %w", err))
	case wire.certRequested && (isAlert || closed):
		return fail(TLSClientCertRequired, fmt.Errorf("the server asked for a client certificate and, when none came, %s: %w", howEnded(isAlert), err))
	case closed && wire.received == 0:
		return fail(TLSReset, fmt.Errorf("connection closed after the ClientHello, before any answer: %w", err))
	case closed:
		return fail(TLSHandshakeFailed, fmt.Errorf("the server closed the connection after %d bytes of its handshake, without an alert: %w", wire.received, err))
	case isAlert && alert == alertProtocolVersion:
		return fail(TLSVersionUnsupported, err)
	case wire.version != 0 && wire.version < min:
		return fail(TLSVersionUnsupported, fmt.Errorf("the server chose TLS %s, below the minimum %s: %w", TLSVersionName(wire.version), TLSVersionName(min), err))
	case isAlert && alert == alertHandshakeFailure && wire.version == 0:
		return fail(TLSHandshakeFailed, fmt.Errorf("no cipher suite in common; the server may offer only suites Go does not implement (DHE, CCM, Camellia, ...), which the agents' SChannel may still speak: %w", err))
	case isAlert:
		return fail(TLSHandshakeFailed, err)
	}
	return fail(TLSError, err)
}

func howEnded(alert bool) string {
	if alert {
		return "sent an alert"
	}
	return "closed the connection"
}

// endedByPeer reports a connection the peer closed or reset.
func endedByPeer(err error) bool {
	return isReset(err) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

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

// sweepVerdict is what one handshake of the sweep learned of its version.
type sweepVerdict uint8

const (
	versionUnknown  sweepVerdict = iota // a timeout, or a failure that says nothing of the version
	versionAccepted                     // the server chose it in its ServerHello
	versionRejected                     // a protocol_version alert, or a ServerHello with another version
	versionSilent                       // closed or reset before any byte: a rejection if others pass
)

// sweep tries each TLS version alone, in parallel, each handshake over its
// own connection and with its own timeout. A version is true when the
// server chose it, false when the server rejected it on the wire, and
// absent when unknown.
func (tp *tlsProber) sweep(ctx context.Context, timeout time.Duration, dial func(context.Context) (net.Conn, *Error)) map[uint16]bool {
	verdicts := make([]sweepVerdict, len(TLSVersions))
	var wg sync.WaitGroup
	for i, v := range TLSVersions {
		spawn(ctx, &wg, func() { verdicts[i] = tp.try(ctx, timeout, v, dial) })
	}
	wg.Wait()
	return sweepResult(verdicts)
}

// sweepResult turns the verdicts into the sweep's map. A connection closed
// without a word is a rejection only when another version got through:
// a server or filter that closes every ClientHello says nothing of
// versions.
func sweepResult(verdicts []sweepVerdict) map[uint16]bool {
	someAccepted := slices.Contains(verdicts, versionAccepted)
	accepted := make(map[uint16]bool, len(verdicts))
	for i, vd := range verdicts {
		switch {
		case vd == versionAccepted:
			accepted[TLSVersions[i]] = true
		case vd == versionRejected, vd == versionSilent && someAccepted:
			accepted[TLSVersions[i]] = false
		}
	}
	return accepted
}

func (tp *tlsProber) try(ctx context.Context, timeout time.Duration, v uint16, dial func(context.Context) (net.Conn, *Error)) sweepVerdict {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, ferr := dial(ctx)
	if ferr != nil {
		return versionUnknown
	}
	defer conn.Close()
	_, wire, err := clientHandshake(ctx, conn, tp.config(tp.sweeps[v]))
	return judgeVersion(v, wire, err)
}

// judgeVersion is the verdict on version v from one handshake offering
// only v: err is its outcome, wire what the server sent.
func judgeVersion(v uint16, wire *wireConn, err error) sweepVerdict {
	alert, isAlert := remoteAlert(err)
	switch {
	case err == nil || wire.version == v:
		// A server that then demands a client certificate, or fails
		// later, still accepted the version.
		return versionAccepted
	case wire.version != 0:
		return versionRejected
	case isTimeout(err):
		return versionUnknown
	case isAlert && alert == alertProtocolVersion:
		return versionRejected
	case isAlert && alert == alertHandshakeFailure && v == tls.VersionTLS13:
		// A TLS 1.3 ClientHello offers every 1.3 suite and group Go has,
		// the mandatory TLS_AES_128_GCM_SHA256 and X25519/P-256 among them
		// (RFC 8446 §9.1): no cipher can be missing, so a handshake_failure
		// before any ServerHello is a server that does not speak 1.3
		// (GnuTLS and mbedTLS answer so where OpenSSL sends protocol_version).
		return versionRejected
	case endedByPeer(err) && wire.received == 0:
		return versionSilent
	}
	return versionUnknown
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
