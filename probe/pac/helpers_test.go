package pac

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/dop251/goja"
)

// zone is a fixed local zone, so the local and GMT answers differ.
var zone = time.FixedZone("JST", 9*3600)

// clock: Wednesday 2026-12-02 01:30:15 UTC, which is 10:30:15 JST.
var clock = time.Date(2026, 12, 2, 1, 30, 15, 0, time.UTC)

var names = map[string][]netip.Addr{
	"intranet.corp.example": {netip.MustParseAddr("10.1.2.3")},
	"dual.corp.example":     {netip.MustParseAddr("2001:db8::7"), netip.MustParseAddr("192.0.2.7")},
	"v6only.corp.example":   {netip.MustParseAddr("2001:db8::8")},
}

func testEnv() Env {
	return Env{
		Resolve: func(_ context.Context, host string) ([]netip.Addr, error) {
			if a, ok := names[host]; ok {
				return a, nil
			}
			return nil, fmt.Errorf("%s: NXDOMAIN", host)
		},
		MyAddrs:  []netip.Addr{netip.MustParseAddr("fd00::5"), netip.MustParseAddr("10.9.8.7")},
		Now:      func() time.Time { return clock },
		Location: zone,
	}
}

// eval evaluates one JavaScript expression with the helpers installed.
func eval(t *testing.T, expr string) string {
	t.Helper()
	src := "function FindProxyForURL(url, host) { return String(" + expr + "); }"
	s, err := Compile("helpers.pac", []byte(src), testEnv())
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	v, err := s.get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	val, err := v.eval(context.Background(), func() (goja.Value, error) { return v.find(goja.Undefined()) })
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return val.String()
}

// TestHelpers checks each PAC helper against known answers (Mozilla's
// pac_utils.js and the Netscape and Microsoft specifications).
func TestHelpers(t *testing.T) {
	for _, tt := range []struct{ expr, want string }{
		{`isPlainHostName("www")`, "true"},
		{`isPlainHostName("www.example.com")`, "false"},
		{`isPlainHostName("::1")`, "false"},
		{`dnsDomainIs("www.example.com", ".example.com")`, "true"},
		{`dnsDomainIs("www", ".example.com")`, "false"},
		{`dnsDomainIs("www.example.org", ".example.com")`, "false"},
		{`localHostOrDomainIs("www.example.com", "www.example.com")`, "true"},
		{`localHostOrDomainIs("www", "www.example.com")`, "true"},
		{`localHostOrDomainIs("www.example.org", "www.example.com")`, "false"},
		{`localHostOrDomainIs("home.example.com", "www.example.com")`, "false"},
		{`isResolvable("intranet.corp.example")`, "true"},
		{`isResolvable("nowhere.corp.example")`, "false"},
		{`isResolvable("v6only.corp.example")`, "false"},
		{`isResolvableEx("v6only.corp.example")`, "true"},
		{`isInNet("intranet.corp.example", "10.0.0.0", "255.0.0.0")`, "true"},
		{`isInNet("intranet.corp.example", "10.2.0.0", "255.255.0.0")`, "false"},
		{`isInNet("198.95.249.79", "198.95.249.79", "255.255.255.255")`, "true"},
		{`isInNet("198.95.6.8", "198.95.0.0", "255.255.0.0")`, "true"},
		{`isInNet("nowhere.corp.example", "0.0.0.0", "0.0.0.0")`, "false"},
		{`isInNet("10.1.2.3", "10.0.0.0", "not-a-mask")`, "false"},
		{`isInNetEx("dual.corp.example", "2001:db8::/32")`, "true"},
		{`isInNetEx("dual.corp.example", "192.0.2.0/24")`, "true"},
		{`isInNetEx("198.95.249.79", "198.95.249.79/32")`, "true"},
		{`isInNetEx("intranet.corp.example", "2001:db8::/32")`, "false"},
		{`isInNetEx("10.1.2.3", "garbage")`, "false"},
		{`dnsResolve("intranet.corp.example")`, "10.1.2.3"},
		{`dnsResolve("dual.corp.example")`, "192.0.2.7"},
		{`dnsResolve("v6only.corp.example")`, "null"},
		{`dnsResolve("nowhere.corp.example")`, "null"},
		{`dnsResolveEx("dual.corp.example")`, "2001:db8::7;192.0.2.7"},
		{`dnsResolveEx("nowhere.corp.example")`, ""},
		{`myIpAddress()`, "10.9.8.7"},
		{`myIpAddressEx()`, "fd00::5;10.9.8.7"},
		{`sortIpAddressList("10.2.3.9;2001:4898:28:3:201:2ff:feea:fc14;::1;127.0.0.1;::9")`, "::1;::9;2001:4898:28:3:201:2ff:feea:fc14;10.2.3.9;127.0.0.1"},
		{`sortIpAddressList("10.0.0.1;nonsense")`, "false"},
		{`getClientVersion()`, "1.0"},
		{`dnsDomainLevels("www")`, "0"},
		{`dnsDomainLevels("www.netscape.com")`, "2"},
		{`shExpMatch("http://home.netscape.com/people/ari/index.html", "*/ari/*")`, "true"},
		{`shExpMatch("http://home.netscape.com/people/montulli/index.html", "*/ari/*")`, "false"},
		{`shExpMatch("www.example.com", "*.example.com")`, "true"},
		{`shExpMatch("example.com", "*.example.com")`, "false"},
		{`shExpMatch("a.b", "a?b")`, "true"},
		{`shExpMatch("a.b", "a.b*")`, "true"},
		{`shExpMatch("axb", "a.b")`, "false"},
		{`shExpMatch("", "*")`, "true"},
		// Wednesday in both zones; 10:30:15 local (JST), 01:30:15 GMT.
		{`weekdayRange("WED")`, "true"},
		{`weekdayRange("MON", "FRI")`, "true"},
		{`weekdayRange("SAT", "SUN")`, "false"},
		{`weekdayRange("FRI", "THU")`, "true"}, // wraps
		{`weekdayRange("THU", "TUE")`, "false"},
		{`weekdayRange("WED", "GMT")`, "true"},
		{`weekdayRange("wed")`, "false"}, // names are upper case
		{`weekdayRange()`, "false"},
		{`timeRange(10)`, "true"},
		{`timeRange(1, "GMT")`, "true"},
		{`timeRange(1)`, "false"},
		{`timeRange(9, 17)`, "true"},
		{`timeRange(11, 17)`, "false"},
		{`timeRange(22, 11)`, "true"}, // wraps past midnight
		{`timeRange(10, 30, 10, 30)`, "true"},
		{`timeRange(10, 31, 17, 0)`, "false"},
		{`timeRange(10, 30, 15, 10, 30, 15)`, "true"},
		{`timeRange(10, 30, 16, 10, 30, 59)`, "false"},
		{`timeRange(0, 0, 2, 0, "GMT")`, "true"},
		{`dateRange(2)`, "true"},
		{`dateRange("DEC")`, "true"},
		{`dateRange(2026)`, "true"},
		{`dateRange(2025)`, "false"},
		{`dateRange(1, 15)`, "true"},
		{`dateRange(3, 31)`, "false"},
		{`dateRange("NOV", "JAN")`, "true"}, // wraps past new year
		{`dateRange("JAN", "NOV")`, "false"},
		{`dateRange(1, "DEC", 2, "DEC")`, "true"},
		{`dateRange(3, "DEC", 31, "DEC")`, "false"},
		{`dateRange("OCT", 2026, "MAR", 2027)`, "true"},
		{`dateRange(1, "JAN", 2026, 1, "DEC", 2026)`, "false"},
		{`dateRange(1, "JAN", 2026, 2, "DEC", 2026)`, "true"},
		{`dateRange(2, "GMT")`, "true"},
		{`dateRange(1, 2, 3)`, "false"},
		{`dateRange("XYZ")`, "false"},
		{`"ab".repeat(3)`, "ababab"},
		{`"7".padStart(3, "0")`, "007"},
	} {
		t.Run(tt.expr, func(t *testing.T) {
			if got := eval(t, tt.expr); got != tt.want {
				t.Errorf("%s = %q, want %q", tt.expr, got, tt.want)
			}
		})
	}
}

// TestHelpersLocalDay: late evening UTC is already the next day in JST,
// which the GMT forms must not see.
func TestHelpersLocalDay(t *testing.T) {
	env := testEnv()
	late := time.Date(2026, 12, 1, 23, 0, 0, 0, time.UTC) // Tue 23:00 UTC = Wed 08:00 JST
	env.Now = func() time.Time { return late }
	src := `function FindProxyForURL(u, h) {
		return [weekdayRange("WED"), weekdayRange("TUE", "GMT"), dateRange(2), dateRange(1, "GMT"), timeRange(8), timeRange(23, "GMT")].join(",");
	}`
	s, err := Compile("day.pac", []byte(src), env)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.FindProxy(context.Background(), "https://x/", "x")
	if err == nil || !strings.Contains(err.Error(), `"true,true,true,true,true,true"`) {
		t.Fatalf("want every helper true (as garbage in the error), got %v", err)
	}
}
