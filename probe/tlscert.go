package probe

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"time"
)

// certConn is the connection after a handshake in which the server asked
// for a client certificate. It keeps the first bytes of the answer, so
// that clientCertVerdict can read a "certificate required" page.
type certConn struct {
	net.Conn
	head []byte
}

// certPageBytes bounds what certConn keeps; an error page is smaller.
const certPageBytes = 4 << 10

func (c *certConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if room := certPageBytes - len(c.head); room > 0 && n > 0 {
		c.head = append(c.head, b[:min(n, room)]...)
	}
	return n, err
}

// certPage finds a web server's "no client certificate" page: nginx
// answers 400 "No required SSL certificate was sent" (its 496), IIS 403.7
// "Client certificate required".
var certPage = regexp.MustCompile(`(?i)[^<>\r\n]*(ssl|client) certificate[^<>\r\n]*`)

// certPageWait bounds how long clientCertVerdict waits for the rest of a
// page whose status line has arrived.
const certPageWait = time.Second

// clientCertVerdict names, after the http stage, a failure that the client
// certificate the server asked for explains, and moves it to the tls
// stage, where the server made its demand: TLS 1.3 sends its
// certificate_required alert (or closes) only after the client's side of
// the handshake, at the first read of the http stage; nginx completes the
// handshake and answers 400. conn is the connection handshake returned.
// The tls stage's duration then includes the http stage's.
func clientCertVerdict(ctx context.Context, r *Result, conn net.Conn) {
	cc, ok := conn.(*certConn)
	n := len(r.Stages)
	if !ok || n < 2 || r.Stages[n-1].Stage != StageHTTP || r.Stages[n-2].Stage != StageTLS {
		return
	}
	var err error
	switch {
	case r.HTTP != nil:
		page := cc.page(ctx, r.HTTP.Status)
		if page == "" {
			return
		}
		err = fmt.Errorf("the server asked for a client certificate and, when none came, answered HTTP %d %q", r.HTTP.Status, page)
	case r.Err != nil && len(cc.head) == 0 && !isTimeout(r.Err.Err) && (endedByPeer(r.Err.Err) || isRemoteAlert(r.Err.Err)):
		err = fmt.Errorf("the server asked for a client certificate and, when none came, ended the connection after the handshake: %w", r.Err.Err)
	default:
		return
	}
	r.Stages[n-2].Success = false
	r.Stages[n-2].Duration += r.Stages[n-1].Duration
	r.Stages = r.Stages[:n-1]
	r.Err = fail(TLSClientCertRequired, err)
}

func isRemoteAlert(err error) bool {
	_, ok := remoteAlert(err)
	return ok
}

// page returns the words of a "no client certificate" answer with status,
// reading the rest of the answer (bounded) when only its start arrived;
// empty when the answer is something else.
func (c *certConn) page(ctx context.Context, status int) string {
	switch status {
	case 495, 496: // nginx's own codes, when an error_page shows them
		return fmt.Sprintf("%d", status)
	case 400, 403:
	default:
		return ""
	}
	if m := certPage.Find(c.head); m != nil || ctx.Err() != nil {
		return string(m)
	}
	deadline := time.Now().Add(certPageWait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c.SetReadDeadline(deadline)
	buf := make([]byte, certPageBytes)
	for len(c.head) < certPageBytes && certPage.Find(c.head) == nil {
		if _, err := c.Read(buf); err != nil {
			break
		}
	}
	return string(certPage.Find(c.head))
}
