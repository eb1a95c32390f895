package pac

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// pacServer serves one body per path, changeable while it runs; a body
// of "503" answers 503.
type pacServer struct {
	*httptest.Server
	mu     sync.Mutex
	bodies map[string]string
	gets   map[string]int
}

func newPACServer(t *testing.T, bodies map[string]string) *pacServer {
	s := &pacServer{bodies: bodies, gets: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		body, ok := s.bodies[r.Host+r.URL.Path]
		if !ok {
			body, ok = s.bodies[r.URL.Path]
		}
		s.gets[r.Host+r.URL.Path]++
		s.mu.Unlock()
		switch {
		case !ok:
			http.NotFound(w, r)
		case body == "503":
			http.Error(w, "down", http.StatusServiceUnavailable)
		default:
			w.Header().Set("Content-Type", "application/x-ns-proxy-autoconfig")
			fmt.Fprint(w, body)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *pacServer) set(path, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bodies[path] = body
}

// loopbackNames resolves the given names to 127.0.0.1 and everything
// else to NXDOMAIN, as the first resolver would.
func loopbackNames(names ...string) func(context.Context, string) ([]netip.Addr, error) {
	return func(_ context.Context, host string) ([]netip.Addr, error) {
		for _, n := range names {
			if n == host {
				return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
			}
		}
		return nil, &net.DNSError{Err: "NXDOMAIN", Name: host, IsNotFound: true}
	}
}

const goodPAC = `function FindProxyForURL(url, host) { return "PROXY a.corp:8080; DIRECT"; }`
const otherPAC = `function FindProxyForURL(url, host) { return "PROXY b.corp:8080"; }`

func answer(t *testing.T, s *Script) string {
	t.Helper()
	ps, err := s.FindProxy(context.Background(), "https://x.example/", "x.example")
	if err != nil {
		t.Fatal(err)
	}
	var parts []string
	for _, p := range ps {
		parts = append(parts, p.String())
	}
	return strings.Join(parts, "; ")
}

// TestLoaderKeepsLastGood: a failed fetch or a broken script keeps the
// last good script in use and names the URL and the error.
func TestLoaderKeepsLastGood(t *testing.T) {
	srv := newPACServer(t, map[string]string{"/proxy.pac": goodPAC})
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	raw := "http://pac.corp.example:" + port + "/proxy.pac"
	fetch, err := URL(raw, loopbackNames("pac.corp.example"))
	if err != nil {
		t.Fatal(err)
	}
	l := NewLoader(raw, fetch, testEnv())
	if s, _, err := l.Current(); s != nil || err == nil {
		t.Fatalf("before the first fetch: %v %v", s, err)
	}
	ctx := context.Background()
	if err := l.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	s, first, err := l.Current()
	if err != nil || answer(t, s) != "PROXY a.corp:8080; DIRECT" {
		t.Fatalf("first: %v", err)
	}

	for _, tt := range []struct{ body, err string }{
		{"503", `PAC ` + raw + `: GET answered "503 Service Unavailable"`},
		{"function FindProxyForURL(", `PAC ` + raw + `: does not compile: SyntaxError`},
		{"var x = 1;", `PAC ` + raw + `: it defines no function FindProxyForURL`},
	} {
		srv.set("/proxy.pac", tt.body)
		err := l.Refresh(ctx)
		if err == nil || !strings.HasPrefix(err.Error(), tt.err) {
			t.Fatalf("refresh with %q: %v, want %q", tt.body, err, tt.err)
		}
		s, fetched, cur := l.Current()
		if cur == nil || cur.Error() != err.Error() || fetched != first || answer(t, s) != "PROXY a.corp:8080; DIRECT" {
			t.Fatalf("after %q: the last good script is not kept: %v", tt.body, cur)
		}
	}
	srv.set("/proxy.pac", otherPAC)
	if err := l.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if s, _, err := l.Current(); err != nil || answer(t, s) != "PROXY b.corp:8080" {
		t.Fatalf("a good fetch does not replace the script: %v", err)
	}
}

func TestLoaderSources(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "proxy.pac")
	if err := os.WriteFile(file, []byte(goodPAC), 0o644); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.pac")
	if err := os.WriteFile(big, make([]byte, MaxScript+1), 0o644); err != nil {
		t.Fatal(err)
	}
	fileURL, err := URL("file://"+file, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, fetch := range map[string]Fetcher{"pac_file": File(file), "file:// URL": fileURL} {
		l := NewLoader(file, fetch, testEnv())
		if err := l.Refresh(context.Background()); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if s, _, _ := l.Current(); answer(t, s) != "PROXY a.corp:8080; DIRECT" {
			t.Errorf("%s: wrong script", name)
		}
	}
	for _, tt := range []struct {
		fetch Fetcher
		err   string
	}{
		{File(filepath.Join(dir, "missing.pac")), "no such file"},
		{File(big), "longer than"},
	} {
		l := NewLoader("x", tt.fetch, testEnv())
		if err := l.Refresh(context.Background()); err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("err %v, want %q", err, tt.err)
		}
	}
	for _, raw := range []string{"ftp://x/proxy.pac", "file://host/x.pac", "http:///x.pac"} {
		if _, err := URL(raw, nil); err == nil {
			t.Errorf("%s accepted", raw)
		}
	}
	// A name the first resolver does not know is not asked elsewhere.
	fetch, _ := URL("http://unknown.corp.example/proxy.pac", loopbackNames())
	if _, err := fetch(context.Background()); err == nil || !strings.Contains(err.Error(), "NXDOMAIN") {
		t.Errorf("err %v", err)
	}
}
