package probe

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"net"
)

// wireConn sits under a TLS client and watches what the server sends:
// how many bytes arrived, and the version its ServerHello chose. It lets
// a verdict tell a server that never answered from one that answered and
// then gave up, which crypto/tls's errors alone do not.
type wireConn struct {
	net.Conn
	received int // bytes read from the server

	// The first handshake message is parsed from hello, the payload of
	// the server's first handshake records.
	hello   []byte
	done    bool   // hello parsed, or the stream is not a handshake
	version uint16 // what the ServerHello (or HelloRetryRequest) chose; 0 before
	pending []byte // a record header split across reads

	certRequested bool // the server sent a CertificateRequest (set by the TLS config's callback)
}

// maxHello bounds what wireConn keeps while looking for the ServerHello;
// real ones are a few hundred bytes.
const maxHello = 16 << 10

const (
	recordHandshake      = 22
	handshakeServerHello = 2
	extSupportedVersions = 43
)

func newWireConn(c net.Conn) *wireConn { return &wireConn{Conn: c} }

func (w *wireConn) Read(b []byte) (int, error) {
	n, err := w.Conn.Read(b)
	w.received += n
	if !w.done && n > 0 {
		w.scan(b[:n])
	}
	return n, err
}

// scan feeds the bytes the server sent into the record parser until the
// ServerHello is complete.
func (w *wireConn) scan(b []byte) {
	w.pending = append(w.pending, b...)
	for !w.done {
		if len(w.pending) < 5 {
			return
		}
		if w.pending[0] != recordHandshake {
			w.stop() // an alert, or not TLS at all: no hello
			return
		}
		n := int(binary.BigEndian.Uint16(w.pending[3:5]))
		if len(w.pending) < 5+n {
			return
		}
		w.hello = append(w.hello, w.pending[5:5+n]...)
		w.pending = w.pending[5+n:]
		w.parseHello()
		if len(w.hello) > maxHello {
			w.stop()
		}
	}
}

// parseHello reads the version from a complete first handshake message.
func (w *wireConn) parseHello() {
	if len(w.hello) < 4 {
		return
	}
	n := int(w.hello[1])<<16 | int(w.hello[2])<<8 | int(w.hello[3])
	if len(w.hello) < 4+n {
		return
	}
	if w.hello[0] == handshakeServerHello {
		w.version = serverHelloVersion(w.hello[4 : 4+n])
	}
	w.stop()
}

// stop ends the parsing: the rest of the stream is only counted.
func (w *wireConn) stop() { w.done, w.pending, w.hello = true, nil, nil }

// serverHelloVersion is the version a ServerHello body chose: its
// supported_versions extension (TLS 1.3) or else its legacy version.
// Zero when the body is malformed.
func serverHelloVersion(b []byte) uint16 {
	if len(b) < 2+32+1 {
		return 0
	}
	legacy := binary.BigEndian.Uint16(b)
	b = b[2+32:]
	if 1+int(b[0]) > len(b) {
		return 0
	}
	b = b[1+int(b[0]):] // session id
	if len(b) < 3 {
		return 0
	}
	b = b[3:] // cipher suite, compression method
	if len(b) < 2 {
		return legacy // no extensions
	}
	exts := b[2:]
	if l := int(binary.BigEndian.Uint16(b)); l <= len(exts) {
		exts = exts[:l]
	}
	for len(exts) >= 4 {
		typ, l := binary.BigEndian.Uint16(exts), int(binary.BigEndian.Uint16(exts[2:]))
		exts = exts[4:]
		if l > len(exts) {
			return 0
		}
		if typ == extSupportedVersions && l == 2 {
			return binary.BigEndian.Uint16(exts)
		}
		exts = exts[l:]
	}
	return legacy
}

// wireKey carries the handshake's wireConn to the TLS config's callback.
type wireKey struct{}

// noClientCert is the GetClientCertificate of every probe config: it
// notes that the server asked for a certificate and presents none, as an
// agent without one does.
func noClientCert(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
	if w, ok := cri.Context().Value(wireKey{}).(*wireConn); ok {
		w.certRequested = true
	}
	return &tls.Certificate{}, nil
}

// clientHandshake runs a TLS client handshake over conn, watched by a
// wireConn, and returns both.
func clientHandshake(ctx context.Context, conn net.Conn, conf *tls.Config) (*tls.Conn, *wireConn, error) {
	w := newWireConn(conn)
	tc := tls.Client(w, conf)
	err := tc.HandshakeContext(context.WithValue(ctx, wireKey{}, w))
	return tc, w, err
}
