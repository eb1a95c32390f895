package probe

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/reachd/reachd/targets"
)

// scriptedConn is a connection whose peer says data and then hangs up;
// what the probe writes is discarded. It counts what the probe read.
type scriptedConn struct {
	net.Conn // nil: only Read, Write, Close and the deadlines are used
	r        *bytes.Reader
	read     int
}

func (c *scriptedConn) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.read += n
	return n, err
}
func (c *scriptedConn) Write(b []byte) (int, error)      { return len(b), nil }
func (c *scriptedConn) Close() error                     { return nil }
func (c *scriptedConn) SetDeadline(time.Time) error      { return nil }
func (c *scriptedConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptedConn) SetWriteDeadline(time.Time) error { return nil }
func (c *scriptedConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 443}
}
func (c *scriptedConn) LocalAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
}

var httpSeeds = []string{
	"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nDate: Mon, 02 Jan 2006 15:04:05 GMT\r\n\r\nok",
	"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nok",
	"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
	"HTTP/1.0 302 Found\r\nLocation: http://elsewhere/\r\nDate: yesterday\r\n\r\n",
	"HTTP/1.1 999 Weird\r\n\r\n",
	"HTTP/1.1 200\r\nX: " + strings.Repeat("x", 70000) + "\r\n\r\n",
	"SSH-2.0-OpenSSH_9.2\r\n",
	"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\nok",
	"",
}

func FuzzHTTPResponse(f *testing.F) {
	for _, s := range httpSeeds {
		f.Add([]byte(s))
	}
	plain := newHTTPProber(target("vendor.reachd.test", 443), "reachd-test")
	strict := newHTTPProber(target("vendor.reachd.test", 8443, func(t *targets.Target) {
		t.HTTP.ExpectStatus = []int{200, 204}
		t.HTTP.ExpectBody = regexp.MustCompile(`^ok`)
	}), "reachd-test")
	allowed := []Reason{HTTPError, HTTPTimeout, HTTPStatusUnexpected, HTTPBodyMismatch}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, hp := range []*httpProber{plain, strict} {
			c := &scriptedConn{r: bytes.NewReader(data)}
			info, err := hp.do(c)
			if c.read > MaxHeader+MaxBody {
				t.Fatalf("read %d bytes, more than the bounds %d", c.read, MaxHeader+MaxBody)
			}
			if err != nil && !contains(allowed, err.Reason) {
				t.Fatalf("reason %s from the http stage: %v", err.Reason, err)
			}
			if err == nil && (info == nil || info.Status < 100 || info.Status > 999) {
				t.Fatalf("success with %+v", info)
			}
		}
	})
}

var connectSeeds = []string{
	"HTTP/1.1 200 Connection established\r\n\r\n",
	"HTTP/1.1 200 Connection established\r\nVia: 1.1 proxy\r\n\r\n\x16\x03\x01",
	"HTTP/1.0 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"corp\"\r\nProxy-Authenticate: NTLM\r\nProxy-Authenticate: Negotiate\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 407 x\r\nProxy-Authenticate:\r\nProxy-Authenticate:    \r\n\r\n",
	"HTTP/1.1 403 Forbidden\r\nContent-Length: 1000000\r\n\r\ndenied",
	"HTTP/1.1 502 Bad Gateway\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
	"HTTP/1.1 301 Moved\r\nLocation: http://elsewhere/\r\n\r\n",
	"HTTP/1.1 200 OK\r\nX: " + strings.Repeat("x", 70000) + "\r\n\r\n",
	"SSH-2.0-OpenSSH_9.2\r\n",
	"",
}

func FuzzConnectAnswer(f *testing.F) {
	for _, s := range connectSeeds {
		f.Add([]byte(s))
	}
	const password = "s3cret-fuzz-pw"
	proxy := &url.URL{Scheme: "http", Host: "127.0.0.1:3128"}
	allowed := []Reason{ProxyDNSFailed, ProxyUnreachable, ProxyAuthRequired, ProxyAuthRejected, ProxyDenied, ProxyUpstreamFailed, ProxyTimeout, ProxyError}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, user := range []string{"", "svc"} {
			pd := newProxyDialer(proxy, user, password, "vendor.reachd.test:443", nil, nil)
			c := &scriptedConn{r: bytes.NewReader(data)}
			tunnel, err := pd.handshake(context.Background(), c)
			if c.read > MaxHeader {
				t.Fatalf("read %d bytes of the answer to CONNECT, more than MaxHeader", c.read)
			}
			if err != nil {
				if tunnel != nil || !contains(allowed, err.Reason) {
					t.Fatalf("reason %s (tunnel %v): %v", err.Reason, tunnel != nil, err)
				}
				if !bytes.Contains(data, []byte(password)) && strings.Contains(err.Error(), password) {
					t.Fatalf("the error shows the password: %v", err)
				}
				continue
			}
			// What the proxy sent after its answer is the tunnel's.
			rest, _ := io.ReadAll(tunnel)
			if !bytes.HasSuffix(data, rest) {
				t.Fatalf("the tunnel gave %q, not the end of the answer", rest)
			}
		}
	})
}

func contains(reasons []Reason, r Reason) bool {
	for _, x := range reasons {
		if x == r {
			return true
		}
	}
	return false
}
