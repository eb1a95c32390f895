package probe

import (
	"bufio"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"strings"
	"sync"

	"github.com/Azure/go-ntlmssp"
	"github.com/jcmturner/gokrb5/v8/client"
	krbconfig "github.com/jcmturner/gokrb5/v8/config"
	"github.com/jcmturner/gokrb5/v8/credentials"
	"github.com/jcmturner/gokrb5/v8/keytab"
	"github.com/jcmturner/gokrb5/v8/spnego"

	"github.com/reachd/reachd/configs"
)

// proxyAuth makes the Proxy-Authorization headers of one handshake with
// the proxy. Basic and Negotiate take one leg; NTLM takes two on one
// connection: a NEGOTIATE message, the proxy's 407 with its CHALLENGE,
// then the AUTHENTICATE message. A proxyAuth is built once per prober
// and used by concurrent handshakes.
type proxyAuth interface {
	// scheme is the scheme's name as the proxy sees it: Basic, NTLM, Negotiate.
	scheme() string
	// header is the Proxy-Authorization value of leg n (0 first) of a
	// handshake; challenges are the Proxy-Authenticate values of the
	// proxy's 407 to the previous leg (nil for leg 0). "" means the
	// scheme has no further leg: the 407 is the proxy's verdict.
	header(leg int, challenges []string) (string, error)
}

// newProxyAuth is the authentication a path configures, nil for none.
// proxyHost names the proxy's service principal (HTTP/proxyHost) for
// Negotiate.
func newProxyAuth(p configs.Path, user, password, proxyHost string) proxyAuth {
	switch {
	case p.Auth == configs.AuthNTLM:
		return &ntlmAuth{user: user, password: password}
	case p.Auth == configs.AuthNegotiate:
		return &negotiateAuth{path: p, user: user, password: password, spn: "HTTP/" + proxyHost}
	case user != "":
		return basicAuth("Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password)))
	}
	return nil
}

// basicAuth is the Basic header, rendered once; it holds the secret.
type basicAuth string

func (basicAuth) scheme() string { return "Basic" }

func (b basicAuth) header(leg int, _ []string) (string, error) {
	if leg > 0 {
		return "", nil
	}
	return string(b), nil
}

// ntlmAuth is NTLMv2 (github.com/Azure/go-ntlmssp), user as DOMAIN\user
// or user@domain.
type ntlmAuth struct{ user, password string }

func (ntlmAuth) scheme() string { return "NTLM" }

func (a *ntlmAuth) header(leg int, challenges []string) (string, error) {
	switch leg {
	case 0:
		msg, err := ntlmssp.NewNegotiateMessage("", "")
		if err != nil {
			return "", fmt.Errorf("NTLM: %w", err)
		}
		return "NTLM " + base64.StdEncoding.EncodeToString(msg), nil
	case 1:
		token := challengeToken(challenges, "NTLM")
		if token == "" {
			return "", nil // a 407 without a challenge: the credentials were refused
		}
		challenge, err := base64.StdEncoding.DecodeString(token)
		if err != nil {
			return "", fmt.Errorf("NTLM: the proxy's challenge is not base64: %w", err)
		}
		msg, err := ntlmssp.NewAuthenticateMessage(tolerantChallenge(challenge), a.user, a.password, nil)
		if err != nil {
			return "", fmt.Errorf("NTLM: answering the proxy's challenge: %w", err)
		}
		return "NTLM " + base64.StdEncoding.EncodeToString(msg), nil
	}
	return "", nil
}

// tolerantChallenge reads a CHALLENGE message as curl does: its
// TargetName is informational, and a message in the old 40-byte form has
// no TargetInfo. squid 5.7's ntlm_fake_auth sends both kinds of damage (a
// TargetName offset of 0xaaaaaaae, and "WORKGROUP" where TargetInfo's
// field would be), which go-ntlmssp refuses; the fields are dropped here
// so the message parses. A well-formed challenge is returned unchanged.
func tolerantChallenge(c []byte) []byte {
	if len(c) < 40 {
		return c
	}
	fits := func(field []byte) bool {
		n := uint64(binary.LittleEndian.Uint16(field[0:2]))
		off := uint64(binary.LittleEndian.Uint32(field[4:8]))
		return n == 0 || (off >= 40 && off+n <= uint64(len(c)))
	}
	if len(c) >= 48 && fits(c[12:20]) && fits(c[40:48]) {
		return c
	}
	out := append([]byte(nil), c...)
	if len(out) < 48 || !fits(c[40:48]) {
		out = append(out[:40:40], make([]byte, 8)...) // no TargetInfo
		copy(out[12:20], make([]byte, 8))
	}
	if !fits(out[12:20]) {
		copy(out[12:20], make([]byte, 8))
	}
	return out
}

// challengeToken is the token after scheme in the Proxy-Authenticate
// values, or "".
func challengeToken(challenges []string, scheme string) string {
	for _, c := range challenges {
		s, token, _ := strings.Cut(strings.TrimSpace(c), " ")
		if strings.EqualFold(s, scheme) && strings.TrimSpace(token) != "" {
			return strings.TrimSpace(token)
		}
	}
	return ""
}

// negotiateAuth is Kerberos through SPNEGO (github.com/jcmturner/gokrb5):
// a ticket for HTTP/<proxy host> from a keytab, a credential cache or a
// password. The client logs in on first use and keeps its tickets.
type negotiateAuth struct {
	path           configs.Path
	user, password string
	spn            string

	mu     sync.Mutex
	client *client.Client
}

func (*negotiateAuth) scheme() string { return "Negotiate" }

func (a *negotiateAuth) header(leg int, _ []string) (string, error) {
	if leg > 0 {
		return "", nil // one leg: a second 407 refuses the ticket
	}
	cl, err := a.login()
	if err != nil {
		return "", fmt.Errorf("Negotiate: %w", err)
	}
	ctx, err := spnego.SPNEGOClient(cl, a.spn).InitSecContext()
	if err != nil {
		return "", fmt.Errorf("Negotiate: a ticket for %s: %w", a.spn, err)
	}
	token, err := ctx.Marshal()
	if err != nil {
		return "", fmt.Errorf("Negotiate: %w", err)
	}
	return "Negotiate " + base64.StdEncoding.EncodeToString(token), nil
}

// login returns the logged-in client, logging in on first use and again
// after a failure.
func (a *negotiateAuth) login() (*client.Client, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.client != nil {
		return a.client, nil
	}
	conf := a.path.Krb5Conf
	if conf == "" {
		conf = "/etc/krb5.conf"
	}
	cfg, err := krbconfig.Load(conf)
	if err != nil {
		return nil, fmt.Errorf("krb5_conf %s: %w", conf, err)
	}
	var cl *client.Client
	switch {
	case a.path.Keytab != "":
		kt, err := keytab.Load(a.path.Keytab)
		if err != nil {
			return nil, keyFileError("keytab", a.path.Keytab, err)
		}
		user, realm := splitPrincipal(a.path.Principal, cfg.LibDefaults.DefaultRealm)
		cl = client.NewWithKeytab(user, realm, kt, cfg, client.DisablePAFXFAST(true))
	case a.path.CCache != "":
		cc, err := credentials.LoadCCache(a.path.CCache)
		if err != nil {
			return nil, keyFileError("ccache", a.path.CCache, err)
		}
		if cl, err = client.NewFromCCache(cc, cfg, client.DisablePAFXFAST(true)); err != nil {
			return nil, fmt.Errorf("ccache %s: %w", a.path.CCache, err)
		}
	default:
		user, realm := splitPrincipal(a.user, cfg.LibDefaults.DefaultRealm)
		cl = client.NewWithPassword(user, realm, a.password, cfg, client.DisablePAFXFAST(true))
	}
	if err := cl.Login(); err != nil {
		return nil, fmt.Errorf("kerberos login as %s: %w", a.principal(), redactKRB(err))
	}
	a.client = cl
	return cl, nil
}

func (a *negotiateAuth) principal() string {
	if a.path.Principal != "" {
		return a.path.Principal
	}
	return a.user
}

// redactKRB keeps the head of gokrb5's error text, which never holds key
// material, and drops its chain of wrapped causes (" < ...").
func redactKRB(err error) error {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if i := strings.Index(s, " < "); i >= 0 {
		s = s[:i]
	}
	return errors.New(s)
}

// splitPrincipal splits "user@REALM" (or "DOMAIN\user", realm then from
// the default) into user and realm.
func splitPrincipal(p, defaultRealm string) (string, string) {
	if user, realm, ok := strings.Cut(p, "@"); ok {
		return user, realm
	}
	if _, user, ok := strings.Cut(p, `\`); ok {
		return user, defaultRealm
	}
	return p, defaultRealm
}

// authExchange sends a request built by render (which writes the
// request with the given Proxy-Authorization value, "" for none) and
// reads the proxy's answer, going through every leg of auth on the same
// connection while the proxy answers 407. It returns the last answer;
// legs is how many requests carried credentials. The CONNECT handshake
// uses it, and so can a forwarded GET.
func authExchange(conn net.Conn, br *bufio.Reader, rec *errRecorder, auth proxyAuth, method string,
	render func(authorization string) []byte) (resp *http.Response, legs int, err error) {
	var challenges []string
	for leg := 0; ; leg++ {
		h := ""
		if auth != nil {
			if h, err = auth.header(leg, challenges); err != nil {
				return nil, legs, errAuthSetup{err}
			}
			if h == "" && leg > 0 {
				return resp, legs, nil // no further leg: the last 407 stands
			}
		}
		if leg > 0 {
			// The next leg goes on this connection: the 407's body must go first.
			if _, err := io.Copy(io.Discard, resp.Body); err != nil {
				return nil, legs, rec.cause(err)
			}
			if resp.Close {
				return resp, legs, fmt.Errorf("the proxy closed the connection in the middle of the %s handshake", auth.scheme())
			}
		}
		if _, err := conn.Write(render(h)); err != nil {
			return nil, legs, err
		}
		if h != "" {
			legs++
		}
		resp, err = http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			return nil, legs, rec.cause(err)
		}
		if resp.StatusCode != http.StatusProxyAuthRequired || auth == nil || leg >= 3 {
			return resp, legs, nil
		}
		challenges = resp.Header.Values("Proxy-Authenticate")
	}
}

// keyFileError names a keytab or credential cache that could not be used.
// The parsers' own messages may quote the file's bytes (gokrb5's keytab
// errors do), which are key material: only a file system error is kept.
func keyFileError(kind, path string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s %s: %w", kind, path, pe.Err)
	}
	return fmt.Errorf("%s %s is not a valid %s file (its contents are never shown)", kind, path, kind)
}

// errAuthSetup is a failure to make credentials, before the proxy judged
// them: a missing keytab, a KDC that refuses the login.
type errAuthSetup struct{ err error }

func (e errAuthSetup) Error() string { return e.err.Error() }
func (e errAuthSetup) Unwrap() error { return e.err }
