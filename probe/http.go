package probe

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/reachd/reachd/targets"
)

// MaxBody bounds how much of a response body the http stage reads, and
// MaxHeader how much of the status line and headers.
const (
	MaxBody   = 64 << 10
	MaxHeader = 64 << 10
)

// httpProber runs the http stage: one GET over the probe's connection.
type httpProber struct {
	request []byte // rendered once
	check   targets.HTTPCheck
	// proxy is the path's proxy, nil on a direct path: an answer it
	// produced itself inside the tunnel is its verdict, not the server's.
	proxy *proxyDialer
}

func newHTTPProber(t targets.Target, userAgent string) *httpProber {
	host := t.Host
	if t.Port != 443 && t.Port != 80 {
		host = t.Address()
	} else if strings.Contains(host, ":") {
		host = "[" + host + "]" // an IPv6 literal (RFC 9110 §7.2)
	}
	req := fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\nAccept: */*\r\nConnection: close\r\n\r\n", t.HTTP.Path, host, userAgent)
	return &httpProber{request: []byte(req), check: t.HTTP}
}

func (hp *httpProber) do(conn net.Conn) (*HTTPInfo, *Error) {
	return hp.exchange(conn, func(br *bufio.Reader, _ *errRecorder) (*http.Response, error) {
		if _, err := conn.Write(hp.request); err != nil {
			return nil, err
		}
		return readFinal(br)
	})
}

// exchange runs send over conn, which writes the request and reads the
// final answer (a forwarded GET through an NTLM proxy takes several
// requests), and judges the answer.
func (hp *httpProber) exchange(conn net.Conn, send func(*bufio.Reader, *errRecorder) (*http.Response, error)) (*HTTPInfo, *Error) {
	// A server that sends endless headers or a huge body is cut off: the
	// stage reads at most the header bound and MaxBody.
	rec := &errRecorder{r: io.LimitReader(conn, MaxHeader+MaxBody)}
	br := bufio.NewReader(rec)
	resp, err := send(br, rec)
	if err != nil {
		return nil, classifyHTTP(rec.cause(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode < 100 {
		// Go reads "000" as a status; no HTTP server sends it.
		return nil, fail(HTTPError, fmt.Errorf("malformed status line %q: not an HTTP answer", resp.Proto+" "+resp.Status))
	}
	received := time.Now()
	info := &HTTPInfo{Status: resp.StatusCode}
	if d, err := http.ParseTime(resp.Header.Get("Date")); err == nil {
		// Date has one-second resolution: compare it with the second now is in.
		info.ClockSkew = d.Sub(received.Truncate(time.Second))
		info.HasDate = true
	}
	if producedByProxy(resp) {
		return info, hp.notTheServer(resp)
	}
	switch {
	case len(hp.check.ExpectStatus) > 0 && !slices.Contains(hp.check.ExpectStatus, resp.StatusCode):
		return info, fail(HTTPStatusUnexpected, fmt.Errorf("status %d, expected %s", resp.StatusCode, statusList(hp.check.ExpectStatus)))
	case len(hp.check.ExpectStatus) == 0 && resp.StatusCode >= 500:
		// Below 500 the server answered as itself (vendor APIs answer
		// 401, 403, 404); a 5xx says it cannot serve.
		return info, fail(HTTPStatusUnexpected, fmt.Errorf("status %q: a server error (without expect_status, a status below 500 passes)", resp.Status))
	}
	if re := hp.check.ExpectBody; re != nil {
		body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody))
		if err != nil {
			return info, classifyHTTP(err)
		}
		if !re.Match(body) {
			return info, fail(HTTPBodyMismatch, fmt.Errorf("the first %d bytes of the body do not match %q", len(body), re.String()))
		}
	}
	return info, nil
}

// errRecorder remembers the last error its reader returned: bufio hands
// a line cut short by a timeout to the HTTP parser as if it were whole
// ("malformed HTTP status code \"20\""), and keeps the timeout for the
// next read, which never comes.
type errRecorder struct {
	r   io.Reader
	err error
}

func (e *errRecorder) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil {
		e.err = err
	}
	return n, err
}

// cause is the timeout behind a parse error, or err itself.
func (e *errRecorder) cause(err error) error {
	if e.err != nil && isTimeout(e.err) && !isTimeout(err) {
		return fmt.Errorf("%w (the answer stopped in the middle)", e.err)
	}
	return err
}

// readFinal reads the final response, skipping interim 1xx responses
// (100 Continue, 103 Early Hints); 101 Switching Protocols is final.
func readFinal(br *bufio.Reader) (*http.Response, error) {
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode < 100 || resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			return resp, err
		}
	}
}

// notTheServer is the verdict on an answer that a proxy or filter
// produced itself: through a proxy, the reason the proxy stage gives for
// the same situation, at stage proxy; on a direct path, a block by a
// transparent filter.
func (hp *httpProber) notTheServer(resp *http.Response) *Error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, MaxBody)) // a cut body still quotes
	quote := pageQuote(resp, body)
	if hp.proxy != nil {
		return hp.proxy.answerVerdict(resp, quote, false)
	}
	detail := fmt.Sprintf("%q came from a filter on the way, not from the server", resp.Status)
	if marks := proxyMarks(resp); marks != "" {
		detail += " (" + marks + ")"
	}
	if quote != "" {
		detail += fmt.Sprintf(": %q", quote)
	}
	return fail(HTTPBlocked, errors.New(detail))
}

func classifyHTTP(err error) *Error {
	if isTimeout(err) {
		return fail(HTTPTimeout, err)
	}
	return fail(HTTPError, err)
}

func statusList(codes []int) string {
	s := ""
	for i, c := range codes {
		if i > 0 {
			s += " or "
		}
		s += strconv.Itoa(c)
	}
	return s
}

// deadlineOnCancel makes conn's pending reads and writes fail once ctx
// ends, and stops doing so when the returned function is called.
func deadlineOnCancel(ctx context.Context, conn net.Conn) func() bool {
	if d, ok := ctx.Deadline(); ok {
		conn.SetDeadline(d)
	}
	return context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
}
