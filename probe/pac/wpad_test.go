package pac

import (
	"context"
	"net"
	"strings"
	"testing"
)

func TestCandidates(t *testing.T) {
	for _, tt := range []struct {
		domains []string
		want    string
	}{
		{[]string{"a.b.example.com"}, "wpad.a.b.example.com wpad.b.example.com wpad.example.com"},
		{[]string{"example.com"}, "wpad.example.com"},
		{[]string{"Branch.Corp.Example.CO.UK."}, "wpad.branch.corp.example.co.uk wpad.corp.example.co.uk wpad.example.co.uk"},
		{[]string{"a.example.com", "b.example.com"}, "wpad.a.example.com wpad.example.com wpad.b.example.com"},
		{[]string{"com", "co.uk", ""}, ""},
		{[]string{"corp.reachd.test"}, "wpad.corp.reachd.test wpad.reachd.test"},
	} {
		var hosts []string
		for _, u := range Candidates(tt.domains) {
			if !strings.HasPrefix(u, "http://") || !strings.HasSuffix(u, "/wpad.dat") {
				t.Errorf("candidate %q", u)
			}
			hosts = append(hosts, hostOf(u))
		}
		if got := strings.Join(hosts, " "); got != tt.want {
			t.Errorf("%v: %q, want %q", tt.domains, got, tt.want)
		}
	}
}

// TestDiscover: the first candidate that resolves and serves a PAC wins;
// one that resolves but serves nothing is passed over and reported.
func TestDiscover(t *testing.T) {
	srv := newPACServer(t, map[string]string{"wpad.corp.reachd.test/wpad.dat": goodPAC})
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	testPort = port
	t.Cleanup(func() { testPort = "" })
	resolve := loopbackNames("wpad.branch.corp.reachd.test", "wpad.corp.reachd.test", "wpad.reachd.test")
	u, src, tried, err := Discover(context.Background(), []string{"site.branch.corp.reachd.test"}, resolve, testEnv())
	if err != nil {
		t.Fatal(err)
	}
	if u != "http://wpad.corp.reachd.test/wpad.dat" || len(tried) != 3 || string(src) != goodPAC {
		t.Fatalf("found %q after %v", u, tried)
	}
	if !strings.Contains(tried[0].Err.Error(), "wpad.site.branch.corp.reachd.test does not resolve") ||
		!strings.Contains(tried[1].Err.Error(), "404") || tried[2].Err != nil {
		t.Errorf("attempts %v", tried)
	}
	if srv.gets["wpad.reachd.test/wpad.dat"] != 0 {
		t.Errorf("asked past the first PAC")
	}

	_, _, tried, err = Discover(context.Background(), []string{"elsewhere.example"}, resolve, testEnv())
	if err == nil || len(tried) != 1 || !strings.Contains(err.Error(), "WPAD: no PAC found: http://wpad.elsewhere.example/wpad.dat: wpad.elsewhere.example does not resolve") {
		t.Errorf("err %v, tried %v", err, tried)
	}
	if _, _, _, err := Discover(context.Background(), nil, resolve, testEnv()); err == nil || !strings.Contains(err.Error(), "no search domain") {
		t.Errorf("err %v", err)
	}
}
