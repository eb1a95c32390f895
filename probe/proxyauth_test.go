package probe

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/go-ntlmssp"

	"github.com/reachd/reachd/configs"
	"github.com/reachd/reachd/probe/probetest"
	"github.com/reachd/reachd/targets"
)

// TestTolerantChallenge: squid 5.7's ntlm_fake_auth sent this CHALLENGE
// (a TargetName offset of 0xaaaaaaae, no TargetInfo field, "WORKGROUP"
// behind the 40-byte header); go-ntlmssp refuses it as sent and answers
// it once the informational fields are dropped, as curl reads it.
func TestTolerantChallenge(t *testing.T) {
	fake, _ := hex.DecodeString("4e544c4d535350000200000009000900aeaaaaaa018288a0226438455f1c9b2b0000000000003a00574f524b47524f5550")
	if _, err := ntlmssp.NewAuthenticateMessage(fake, `CORP\svc`, "pw", nil); err == nil {
		t.Fatal("go-ntlmssp took the damaged challenge as it is: the workaround is not needed")
	}
	msg, err := ntlmssp.NewAuthenticateMessage(tolerantChallenge(fake), `CORP\svc`, "pw", nil)
	if err != nil || len(msg) < 64 {
		t.Fatalf("%d bytes, %v", len(msg), err)
	}
	// A well-formed challenge (48-byte header, TargetInfo with its EOL) is
	// left as it is.
	good := append([]byte(nil), fake[:40]...)
	good = append(good, 4, 0, 4, 0, 48, 0, 0, 0, 0, 0, 0, 0)
	copy(good[12:20], []byte{0, 0, 0, 0, 0, 0, 0, 0})
	if got := tolerantChallenge(good); &got[0] != &good[0] {
		t.Errorf("a well-formed challenge was rewritten")
	}
}

// ntlmProxy is a raw proxy that runs NTLM's two legs on one connection:
// a 407 with the CHALLENGE (and a body, which the client must read
// first) to the NEGOTIATE message, then second(c, authorization) for the
// AUTHENTICATE message. It records the Proxy-Authorization of each leg.
func ntlmProxy(t *testing.T, challengeClose bool, second func(c net.Conn, authorization string)) (*url.URL, func() []string) {
	t.Helper()
	challenge := "NTLM " + base64.StdEncoding.EncodeToString(fakeChallenge(t))
	var legs []string
	var mu sync.Mutex
	s := probetest.NewRawServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for leg := 0; leg < 2; leg++ {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			h := req.Header.Get("Proxy-Authorization")
			mu.Lock()
			legs = append(legs, h)
			mu.Unlock()
			if leg == 1 {
				second(&bufConn{c, br}, h)
				return
			}
			closing := ""
			if challengeClose {
				closing = "Connection: close\r\n"
			}
			io.WriteString(c, "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: "+challenge+"\r\n"+closing+"Content-Length: 12\r\n\r\nauth needed\n")
			if challengeClose {
				return
			}
		}
	})
	return &url.URL{Scheme: "http", Host: s.Addr}, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), legs...)
	}
}

type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func fakeChallenge(t *testing.T) []byte {
	b, err := hex.DecodeString("4e544c4d535350000200000009000900aeaaaaaa018288a0226438455f1c9b2b0000000000003a00574f524b47524f5550")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestNTLMLegs: both legs go over one connection, the second answers
// the proxy's challenge; a 407 to it is a rejection, and a proxy that
// closes the connection after its challenge breaks the handshake.
func TestNTLMLegs(t *testing.T) {
	l := newLab(t)
	s := l.server("vendor.reachd.test")
	relay := func(c net.Conn, _ string) {
		up, err := net.Dial("tcp", s.Addr)
		if err != nil {
			return
		}
		defer up.Close()
		io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
		go func() { io.Copy(up, c); up.Close() }()
		io.Copy(c, up)
	}
	refuse := func(c net.Conn, _ string) {
		io.WriteString(c, "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: NTLM\r\nContent-Length: 0\r\n\r\n")
	}
	tests := []struct {
		name    string
		close   bool
		second  func(net.Conn, string)
		reason  Reason
		detail  string
		nlegs   int
		checkT3 bool
	}{
		{"a tunnel after two legs", false, relay, "", "", 2, true},
		{"a 407 to the answer is a rejection", false, refuse, ProxyAuthRejected, "rejected the configured credentials (407; offers NTLM)", 2, true},
		{"a proxy that closes after its challenge", true, relay, ProxyError, "closed the connection in the middle of the NTLM handshake", 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, seen := ntlmProxy(t, tt.close, tt.second)
			path := configs.Path{Name: "p", Proxy: u, Auth: configs.AuthNTLM, Username: `CORP\svc`, Password: "Ntlm-pw"}
			tg := target("vendor.reachd.test", 443, func(t *targets.Target) { t.Timeout = 2 * time.Second })
			r := l.probe(tg, path, l.config())
			legs := seen()
			stage := StageProxy
			if tt.reason == "" {
				stage = ""
			}
			assertOutcome(t, r, stage, tt.reason, tt.detail)
			if len(legs) < tt.nlegs {
				t.Fatalf("legs %q, want %d", legs, tt.nlegs)
			}
			t1, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(legs[0], "NTLM "))
			if len(t1) < 12 || string(t1[:8]) != "NTLMSSP\x00" || t1[8] != 1 {
				t.Errorf("first leg %q, want an NTLM NEGOTIATE message", legs[0])
			}
			if tt.checkT3 {
				t3, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(legs[1], "NTLM "))
				if len(t3) < 64 || string(t3[:8]) != "NTLMSSP\x00" || t3[8] != 3 || bytes.Contains(t3, []byte("Ntlm-pw")) {
					t.Errorf("second leg: %d bytes, want an NTLM AUTHENTICATE message without the password", len(t3))
				}
			}
			if r.Err != nil && strings.Contains(r.Err.Error(), "Ntlm-pw") {
				t.Errorf("the detail shows the password: %v", r.Err)
			}
		})
	}
}
