package probe

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
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
}

func newHTTPProber(t targets.Target, userAgent string) *httpProber {
	host := t.Host
	if t.Port != 443 && t.Port != 80 {
		host = t.Address()
	}
	req := fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\nAccept: */*\r\nConnection: close\r\n\r\n", t.HTTP.Path, host, userAgent)
	return &httpProber{request: []byte(req), check: t.HTTP}
}

func (hp *httpProber) do(conn net.Conn) (*HTTPInfo, *Error) {
	if _, err := conn.Write(hp.request); err != nil {
		return nil, classifyHTTP(err)
	}
	// A server that sends endless headers or a huge body is cut off: the
	// stage reads at most the header bound and MaxBody.
	resp, err := http.ReadResponse(bufio.NewReader(io.LimitReader(conn, MaxHeader+MaxBody)), nil)
	if err != nil {
		return nil, classifyHTTP(err)
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
	if len(hp.check.ExpectStatus) > 0 && !slices.Contains(hp.check.ExpectStatus, resp.StatusCode) {
		return info, fail(HTTPStatusUnexpected, fmt.Errorf("status %d, expected %s", resp.StatusCode, statusList(hp.check.ExpectStatus)))
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
