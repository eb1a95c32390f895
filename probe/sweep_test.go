package probe

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"maps"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/reachd/reachd/configs"
	"github.com/reachd/reachd/probe/probetest"
	"github.com/reachd/reachd/targets"
)

// readClientHello reads the client's first TLS record and returns it with
// the versions it offers (supported_versions, or else its legacy version).
func readClientHello(c net.Conn) ([]byte, []uint16, error) {
	head := make([]byte, 5)
	if _, err := io.ReadFull(c, head); err != nil {
		return nil, nil, err
	}
	body := make([]byte, binary.BigEndian.Uint16(head[3:]))
	if _, err := io.ReadFull(c, body); err != nil {
		return nil, nil, err
	}
	raw := append(head, body...)
	b := body[4:] // handshake header
	if len(b) < 35 {
		return raw, nil, errors.New("short ClientHello")
	}
	legacy := binary.BigEndian.Uint16(b)
	b = b[34:]
	b = b[1+int(b[0]):]                              // session id
	b = b[2+int(binary.BigEndian.Uint16(b)):]        // cipher suites
	b = b[1+int(b[0]):]                              // compression methods
	exts := b[2 : 2+int(binary.BigEndian.Uint16(b))] // extensions
	for len(exts) >= 4 {
		typ, n := binary.BigEndian.Uint16(exts), int(binary.BigEndian.Uint16(exts[2:]))
		data := exts[4 : 4+n]
		exts = exts[4+n:]
		if typ == extSupportedVersions {
			var vs []uint16
			for v := data[1 : 1+int(data[0])]; len(v) >= 2; v = v[2:] {
				vs = append(vs, binary.BigEndian.Uint16(v))
			}
			return raw, vs, nil
		}
	}
	return raw, []uint16{legacy}, nil
}

// replayConn gives a TLS server the ClientHello a test already read.
type replayConn struct {
	net.Conn
	r io.Reader
}

func (c *replayConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// sendAlert writes a fatal plaintext alert, as a server answering a
// ClientHello does, and closes.
func sendAlert(c net.Conn, desc byte) {
	c.Write([]byte{21, 3, 3, 0, 2, 2, desc})
	c.Close()
}

// closeAfterFirstWrite closes the server's connection once it has sent its
// first flight: a ServerHello (or HelloRetryRequest) and then a close
// without an alert.
type closeAfterFirstWrite struct{ net.Conn }

func (c closeAfterFirstWrite) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.Conn.Close()
	return n, err
}

// tlsServe starts a raw server that answers each connection with a TLS
// server for host (issued by the lab CA) over wrap(conn), configured by
// conf; the handshake's end closes the connection.
func tlsServe(t *testing.T, l *lab, host string, conf func(*tls.Config), wrap func(net.Conn) net.Conn) int {
	t.Helper()
	cert := l.ca.Issue(t, []string{host}, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	c := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}}
	if conf != nil {
		conf(c)
	}
	l.dns.Set(host, probetest.Entry{A: []string{"127.0.0.1"}})
	return rawServer(t, func(nc net.Conn) {
		if wrap != nil {
			nc = wrap(nc)
		}
		tc := tls.Server(nc, c)
		if tc.Handshake() == nil {
			hold(tc)
		}
	})
}

const (
	v10, v11, v12, v13 = tls.VersionTLS10, tls.VersionTLS11, tls.VersionTLS12, tls.VersionTLS13
)

func TestSweepVerdicts(t *testing.T) {
	l := newLab(t)
	host := "sweep.reachd.test"
	short := func(tg *targets.Target) { tg.Timeout = 300 * time.Millisecond }
	legacyMin := func(tg *targets.Target) { tg.TLSMinVersion = v10 }

	plain := l.server(host)
	// SChannel with TLS 1.0 and 1.1 disabled resets a ClientHello that
	// offers nothing newer.
	cert := l.ca.Issue(t, []string{host}, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	resetsLegacy := rawServer(t, func(c net.Conn) {
		hello, offered, err := readClientHello(c)
		if err != nil || slices.Max(offered) < v12 {
			reset(c)
			return
		}
		tc := tls.Server(&replayConn{c, io.MultiReader(bytes.NewReader(hello), c)}, &tls.Config{Certificates: []tls.Certificate{cert}})
		if tc.Handshake() == nil {
			io.WriteString(tc, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			io.Copy(io.Discard, tc)
		}
	})
	resetsAll := rawServer(t, func(c net.Conn) {
		readClientHello(c)
		reset(c)
	})
	tarpit := rawServer(t, hold)
	// A server that speaks only an ALPN protocol reachd does not offer.
	strictALPN := tlsServe(t, l, host, func(c *tls.Config) { c.NextProtos = []string{"acme-tls/1"} }, nil)
	// OpenSSL with DHE-only suites at TLS 1.0 and 1.1: a protocol_version
	// alert to a ClientHello of 1.2 or newer, handshake_failure (no suite
	// in common) to one that allows 1.0 or 1.1.
	dheOnly := rawServer(t, func(c net.Conn) {
		_, offered, err := readClientHello(c)
		if err != nil {
			return
		}
		if slices.Min(offered) <= v11 {
			sendAlert(c, alertHandshakeFailure)
		} else {
			sendAlert(c, alertProtocolVersion)
		}
	})
	// The ServerHello (at 1.3, a HelloRetryRequest: the server wants
	// P-256) and then a close without an alert.
	helloThenClose := tlsServe(t, l, host, func(c *tls.Config) { c.CurvePreferences = []tls.CurveID{tls.CurveP256} },
		func(c net.Conn) net.Conn { return closeAfterFirstWrite{c} })

	for _, tt := range []struct {
		name     string
		port     int
		mods     []func(*targets.Target)
		reason   Reason // of the probe itself
		detail   string
		accepted map[uint16]bool
	}{
		{"1.2 and 1.3", plain.Port, nil, "", "", map[uint16]bool{v10: false, v11: false, v12: true, v13: true}},
		{"legacy versions reset while others pass", resetsLegacy, nil, "", "", map[uint16]bool{v10: false, v11: false, v12: true, v13: true}},
		{"every ClientHello reset: nothing known", resetsAll, nil, TLSReset, "before any answer", map[uint16]bool{}},
		{"every handshake stalls: nothing known", tarpit, []func(*targets.Target){short}, TLSTimeout, "stalled", map[uint16]bool{}},
		{"strict ALPN: unknown where the version passed", strictALPN, nil, TLSHandshakeFailed, "no application protocol", map[uint16]bool{v10: false, v11: false}},
		{"DHE only at 1.0 and 1.1: no verdict on them", dheOnly, []func(*targets.Target){legacyMin}, TLSHandshakeFailed,
			"no cipher suite in common; the server may offer only suites Go does not implement (DHE", map[uint16]bool{v12: false, v13: false}},
		{"DHE only, minimum 1.2", dheOnly, nil, TLSVersionUnsupported, "protocol version not supported", map[uint16]bool{v12: false, v13: false}},
		{"hello then close: the hello chose the version", helloThenClose, nil, TLSHandshakeFailed, "without an alert", map[uint16]bool{v10: false, v11: false, v12: true, v13: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := l.probe(target(host, tt.port, tt.mods...), configs.Path{Name: "direct"}, l.config())
			if tt.reason == "" {
				assertOutcome(t, r, "", "", "")
			} else {
				assertOutcome(t, r, StageTLS, tt.reason, tt.detail)
			}
			if r.TLS == nil || !maps.Equal(r.TLS.Accepted, tt.accepted) {
				t.Errorf("sweep %v, want %v (absent: unknown)", r.TLS, tt.accepted)
			}
		})
	}
}
