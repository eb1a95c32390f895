package pac

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"sync"
	"time"
)

// Fetcher returns the bytes of a PAC file.
type Fetcher func(ctx context.Context) ([]byte, error)

// Loader holds the current script of one PAC source. A fetch that fails
// or brings a script that does not compile never replaces a good script:
// the last good one stays in use (agents keep the copy they have) and the
// failure is kept beside it until a later fetch succeeds.
type Loader struct {
	source string // the URL or file, as errors name it
	fetch  Fetcher
	env    Env

	mu      sync.Mutex
	script  *Script
	fetched time.Time // when script was fetched
	err     error     // of the last refresh; nil after a good one
}

// NewLoader returns a loader of source (named in errors) that reads it
// with fetch; call Refresh to load it.
func NewLoader(source string, fetch Fetcher, env Env) *Loader {
	return &Loader{source: source, fetch: fetch, env: env, err: fmt.Errorf("PAC %s: not fetched yet", source)}
}

// Source is the URL or file the loader reads.
func (l *Loader) Source() string { return l.source }

// Refresh fetches and compiles the file; on success the new script
// replaces the old one. The error names the source.
func (l *Loader) Refresh(ctx context.Context) error {
	src, err := l.fetch(ctx)
	var s *Script
	if err == nil {
		s, err = Compile(l.source, src, l.env)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.err = fmt.Errorf("PAC %s: %w", l.source, err)
		return l.err
	}
	l.script, l.fetched, l.err = s, time.Now(), nil
	return nil
}

// Current returns the last good script (nil when none was ever loaded),
// when it was fetched, and the error of the last refresh (nil when it
// brought that script).
func (l *Loader) Current() (*Script, time.Time, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.script, l.fetched, l.err
}

// File reads a PAC file from disk.
func File(path string) Fetcher {
	return func(context.Context) ([]byte, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return readBounded(f)
	}
}

// URL fetches a PAC file from an http://, https:// or file:// URL. HTTP
// goes direct, as agents fetch their PAC, with host names resolved by
// resolve (the first resolver), never the system resolver.
func URL(raw string, resolve func(ctx context.Context, host string) ([]netip.Addr, error)) (Fetcher, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("%s: a file:// URL names a local file (file:///path)", raw)
		}
		return File(u.Path), nil
	case "http", "https":
		if u.Host == "" {
			return nil, fmt.Errorf("%s has no host", raw)
		}
	default:
		return nil, fmt.Errorf("%s: scheme %q: use http://, https:// or file://", raw, u.Scheme)
	}
	client := &http.Client{
		Transport: &http.Transport{
			Proxy:             nil, // direct
			DialContext:       dialResolved(resolve),
			DisableKeepAlives: true,
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errors.New("more than 5 redirects")
			}
			return nil
		},
	}
	return func(ctx context.Context) ([]byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
		if err != nil {
			return nil, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET answered %q", resp.Status)
		}
		return readBounded(resp.Body)
	}, nil
}

func readBounded(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxScript+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxScript {
		return nil, fmt.Errorf("the file is longer than %d bytes", MaxScript)
	}
	return b, nil
}

// testPort, when set, replaces the port of every fetch: tests serve a
// WPAD host's port 80 from a loopback port.
var testPort string

// dialResolved dials host:port after resolving host with resolve, IPv4
// addresses first.
func dialResolved(resolve func(ctx context.Context, host string) ([]netip.Addr, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		if testPort != "" {
			port = testPort
		}
		var addrs []netip.Addr
		if ip, err := netip.ParseAddr(host); err == nil {
			addrs = []netip.Addr{ip}
		} else if resolve == nil {
			return nil, fmt.Errorf("no resolver for %s", host)
		} else if addrs, err = resolve(ctx, host); err != nil {
			return nil, err
		} else if len(addrs) == 0 {
			return nil, fmt.Errorf("%s has no address", host)
		}
		v4First(addrs)
		var last error
		for _, a := range addrs {
			c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(a.Unmap().String(), port))
			if err == nil {
				return c, nil
			}
			last = err
		}
		return nil, last
	}
}

func v4First(addrs []netip.Addr) {
	j := 0
	for i, a := range addrs {
		if a.Unmap().Is4() {
			addrs[i], addrs[j] = addrs[j], addrs[i]
			j++
		}
	}
}

// hostOf is the host of a URL, for naming what a fetch asked about.
func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return u.Hostname()
}
