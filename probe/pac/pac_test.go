package pac

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParseAnswer(t *testing.T) {
	for _, tt := range []struct {
		in, want, err string
	}{
		{in: "DIRECT", want: "DIRECT"},
		{in: "PROXY a.corp:8080; PROXY b.corp:8080; DIRECT", want: "PROXY a.corp:8080|PROXY b.corp:8080|DIRECT"},
		{in: "  proxy a.corp:3128 ;;DIRECT;", want: "PROXY a.corp:3128|DIRECT"},
		{in: "PROXY a.corp", want: "PROXY a.corp:80"},
		{in: "HTTPS secure.corp", want: "HTTPS secure.corp:443"},
		{in: "HTTP [2001:db8::1]:8080", want: "HTTP [2001:db8::1]:8080"},
		{in: "SOCKS5 s.corp", want: "SOCKS5 s.corp:1080"},
		{in: "", err: "has no entry"},
		{in: " ; ", err: "has no entry"},
		{in: "PRXY a:8080", err: `entry 1 "PRXY a:8080": unknown type "PRXY"`},
		{in: "DIRECT; PROXY", err: `entry 2 "PROXY": PROXY takes one host:port`},
		{in: "PROXY a:99999", err: "out of range"},
		{in: "PROXY http://a:8080", err: "not a host:port"},
		{in: "DIRECT a:80", err: "DIRECT takes no address"},
		{in: strings.Repeat("DIRECT;", 1000), err: "bytes long"},
	} {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseAnswer(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var s []string
			for _, p := range got {
				s = append(s, p.String())
			}
			if strings.Join(s, "|") != tt.want {
				t.Errorf("got %q, want %q", strings.Join(s, "|"), tt.want)
			}
		})
	}
}

func TestProxyURL(t *testing.T) {
	ps, err := ParseAnswer("PROXY a:1; HTTPS b:2; SOCKS c:3; DIRECT")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range ps {
		if u := p.URL(); u != nil {
			got = append(got, u.String())
		} else {
			got = append(got, "nil")
		}
	}
	if strings.Join(got, " ") != "http://a:1 https://b:2 nil nil" {
		t.Errorf("URLs %v", got)
	}
}

func TestFindProxy(t *testing.T) {
	src := `
function FindProxyForURL(url, host) {
	if (isPlainHostName(host) || dnsDomainIs(host, ".corp.example"))
		return "DIRECT";
	if (shExpMatch(url, "https://*.vendor.example:443/*"))
		return "PROXY a.corp:8080; PROXY b.corp:8080; DIRECT";
	return "PROXY b.corp:8080";
}`
	s, err := Compile("http://pac.corp.example/proxy.pac", []byte(src), testEnv())
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ url, host, want string }{
		{"https://intranet.corp.example:443/", "intranet.corp.example", "DIRECT"},
		{"https://api.vendor.example:443/", "api.vendor.example", "PROXY a.corp:8080|PROXY b.corp:8080|DIRECT"},
		{"http://crl.other.example:80/", "crl.other.example", "PROXY b.corp:8080"},
	} {
		got, err := s.FindProxy(context.Background(), tt.url, tt.host)
		if err != nil {
			t.Fatal(err)
		}
		var parts []string
		for _, p := range got {
			parts = append(parts, p.String())
		}
		if strings.Join(parts, "|") != tt.want {
			t.Errorf("%s: %v, want %s", tt.url, parts, tt.want)
		}
	}
}

// TestFindProxyConcurrent: runtimes are not goroutine-safe; the pool
// gives each evaluation its own (run with -race).
func TestFindProxyConcurrent(t *testing.T) {
	src := `var n = 0; function FindProxyForURL(url, host) { n++; return isInNet(host, "10.0.0.0", "255.0.0.0") ? "DIRECT" : "PROXY p:1"; }`
	s, err := Compile("c.pac", []byte(src), testEnv())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		wg.Go(func() {
			host := "intranet.corp.example"
			want := "DIRECT"
			if i%2 == 1 {
				host, want = "dual.corp.example", "PROXY p:1"
			}
			got, err := s.FindProxy(context.Background(), "https://"+host+"/", host)
			if err == nil && got[0].String() != want {
				err = context.Canceled
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestBounded: a script that loops, recurses, throws, eats memory or
// returns garbage is stopped and named, with its line where it has one.
func TestBounded(t *testing.T) {
	old := EvalTimeout
	EvalTimeout = 300 * time.Millisecond
	t.Cleanup(func() { EvalTimeout = old })
	// Growth is stopped by the heap watchdog long before this timeout,
	// unless the machine is very slow; the timeout would then be named.
	const growth = 30 * time.Second
	for _, tt := range []struct {
		name, body, err string
		timeout         time.Duration
	}{
		{"endless loop", "while (true) {}", "took longer than 300ms (an endless loop?) at line ", 0},
		{"endless loop calling a helper", `for (;;) { dnsDomainIs(host, ".x"); }`, "took longer than", 0},
		{"recursion", "function f() { return f(); } return f();", "calls nest deeper than 256", 0},
		{"throw", `throw new Error("no proxy for " + host);`, `Error: no proxy for h.example at line 2:`, 0},
		{"reference error", "return nosuchfunction(host);", "ReferenceError: nosuchfunction is not defined at line 2:", 0},
		{"string growth", `var s = "x"; for (;;) { s = s + s + "y"; }`, "grew the heap by", growth},
		{"array growth", `var a = []; for (;;) { a.push({k: "0123456789abcdef" + a.length}); }`, "grew the heap", growth},
		{"one big repeat", `return "x".repeat(1e10);`, "longer than the PAC bound", 0},
		{"one big padEnd", `return "x".padEnd(1e10);`, "longer than the PAC bound", 0},
		{"undefined", "return;", "returned undefined, not a string", 0},
		{"null", "return null;", "returned null, not a string", 0},
		{"number", "return 42;", "returned int64 \"42\", not a string", 0},
		{"garbage", `return "PROXY";`, `returned garbage: entry 1 "PROXY": PROXY takes one host:port`, 0},
		{"empty", `return "";`, "returned garbage: the answer \"\" has no entry", 0},
		{"huge answer", `return "DIRECT;".repeat(10000);`, "returned garbage: the answer is 70000 bytes long", 0},
		{"bad timeRange", `return timeRange(1, 2, 3) ? "DIRECT" : "DIRECT";`, "timeRange: 3 arguments", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.timeout > 0 {
				EvalTimeout = tt.timeout
				defer func() { EvalTimeout = 300 * time.Millisecond }()
			}
			src := "function FindProxyForURL(url, host) {\n" + tt.body + "\n}"
			s, err := Compile("bad.pac", []byte(src), testEnv())
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.FindProxy(context.Background(), "https://h.example/", "h.example")
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("err %v, want %q", err, tt.err)
			}
			if !strings.Contains(err.Error(), `FindProxyForURL("https://h.example/", "h.example")`) {
				t.Errorf("err %v does not name the call", err)
			}
			// The script stays usable after a failure.
			if _, err := s.FindProxy(context.Background(), "https://h.example/", "h.example"); err == nil {
				t.Errorf("a second run succeeded")
			}
		})
	}
}

func TestBoundedByContext(t *testing.T) {
	s, err := Compile("loop.pac", []byte("function FindProxyForURL(u, h) { for (;;) {} }"), testEnv())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := s.FindProxy(ctx, "https://h/", "h"); err == nil || !strings.Contains(err.Error(), "took longer") {
		t.Fatalf("err %v", err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if _, err := s.FindProxy(ctx, "https://h/", "h"); err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Fatalf("err %v", err)
	}
}

func TestCompileErrors(t *testing.T) {
	old := EvalTimeout
	EvalTimeout = 300 * time.Millisecond
	t.Cleanup(func() { EvalTimeout = old })
	for _, tt := range []struct{ name, src, err string }{
		{"syntax", "function FindProxyForURL(url, host) {\n  return \"DIRECT\"\n", "does not compile: SyntaxError:"},
		{"no function", "var x = 1;", "defines no function FindProxyForURL"},
		{"top level throws", "var x = y.z;\nfunction FindProxyForURL(u, h) { return \"DIRECT\"; }", "its top level fails: ReferenceError: y is not defined at line 1:9"},
		{"top level loops", "while (1) {}\nfunction FindProxyForURL(u, h) { return \"DIRECT\"; }", "its top level fails: the evaluation took longer"},
		{"too big", strings.Repeat(" ", MaxScript+1), "bytes long (at most"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile("bad.pac", []byte(tt.src), testEnv())
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("err %v, want %q", err, tt.err)
			}
		})
	}
}

func TestFindProxyForURLEx(t *testing.T) {
	src := `function FindProxyForURL(u, h) { return "PROXY old:1"; }
function FindProxyForURLEx(u, h) { return isInNetEx(h, "2001:db8::/32") ? "DIRECT" : "PROXY ex:1"; }`
	s, err := Compile("ex.pac", []byte(src), testEnv())
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.FindProxy(context.Background(), "https://v6only.corp.example/", "v6only.corp.example")
	if err != nil || got[0].String() != "DIRECT" {
		t.Fatalf("%v %v", got, err)
	}
}
