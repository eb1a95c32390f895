package pac

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dop251/goja"
)

// The PAC helper functions, written in Go after the semantics of
// Mozilla's pac_utils.js (the Netscape originals) and of Internet
// Explorer's IPv6 extensions (the Ex variants), with these choices where
// the references are loose or buggy:
//   - dnsResolve and myIpAddress return IPv4 addresses only (or null), as
//     in Chromium; the Ex variants return every address, ";"-separated.
//   - timeRange(h1, h2) wraps past midnight (timeRange(22, 6)) like its
//     four- and six-argument forms; Mozilla's two-argument form does not.
//   - dateRange and timeRange compare whole fields (h1:m1:00 to h2:m2:59)
//     instead of mixing in the current seconds as Mozilla's Date calls do.
//   - Every dnsResolve of one evaluation is asked once.

func (v *vm) install() error {
	fns := map[string]func(goja.FunctionCall) goja.Value{
		"isPlainHostName":     v.isPlainHostName,
		"dnsDomainIs":         v.dnsDomainIs,
		"localHostOrDomainIs": v.localHostOrDomainIs,
		"isResolvable":        v.isResolvable,
		"isResolvableEx":      v.isResolvableEx,
		"isInNet":             v.isInNet,
		"isInNetEx":           v.isInNetEx,
		"dnsResolve":          v.dnsResolve,
		"dnsResolveEx":        v.dnsResolveEx,
		"myIpAddress":         v.myIpAddress,
		"myIpAddressEx":       v.myIpAddressEx,
		"sortIpAddressList":   v.sortIpAddressList,
		"getClientVersion":    func(goja.FunctionCall) goja.Value { return v.rt.ToValue("1.0") },
		"dnsDomainLevels":     v.dnsDomainLevels,
		"shExpMatch":          v.shExpMatch,
		"weekdayRange":        v.weekdayRange,
		"dateRange":           v.dateRange,
		"timeRange":           v.timeRange,
		"alert":               func(goja.FunctionCall) goja.Value { return goja.Undefined() },
	}
	for name, f := range fns {
		if err := v.rt.Set(name, f); err != nil {
			return err
		}
	}
	return v.boundStrings()
}

// boundStrings replaces the string built-ins that allocate their whole
// result in one native call, which no interrupt can stop.
func (v *vm) boundStrings() error {
	proto := v.rt.Get("String").ToObject(v.rt).Get("prototype").ToObject(v.rt)
	for _, name := range []string{"repeat", "padStart", "padEnd"} {
		orig, ok := goja.AssertFunction(proto.Get(name))
		if !ok {
			return fmt.Errorf("String.prototype.%s is missing", name)
		}
		err := proto.Set(name, func(call goja.FunctionCall) goja.Value {
			n := call.Argument(0).ToFloat()
			size := n // padStart and padEnd: the target length
			if name == "repeat" {
				size = float64(len(call.This.String())) * n
			}
			if size > MaxString {
				panic(v.rt.NewTypeError("String.prototype.%s: a result of %.0f characters is longer than the PAC bound of %d", name, size, MaxString))
			}
			val, err := orig(call.This, call.Arguments...)
			if err != nil {
				panic(err)
			}
			return val
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (v *vm) str(call goja.FunctionCall, i int) string { return call.Argument(i).String() }

func (v *vm) bool(b bool) goja.Value { return v.rt.ToValue(b) }

func (v *vm) isPlainHostName(c goja.FunctionCall) goja.Value {
	return v.bool(!strings.ContainsAny(v.str(c, 0), ".:"))
}

func (v *vm) dnsDomainIs(c goja.FunctionCall) goja.Value {
	return v.bool(strings.HasSuffix(v.str(c, 0), v.str(c, 1)))
}

func (v *vm) localHostOrDomainIs(c goja.FunctionCall) goja.Value {
	host, hostdom := v.str(c, 0), v.str(c, 1)
	return v.bool(host == hostdom || strings.HasPrefix(hostdom, host+"."))
}

func (v *vm) dnsDomainLevels(c goja.FunctionCall) goja.Value {
	return v.rt.ToValue(strings.Count(v.str(c, 0), "."))
}

// lookup resolves host through the first resolver (an IP literal is its
// own answer), once per evaluation.
func (v *vm) lookup(host string) []netip.Addr {
	if ip, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{ip.Unmap()}
	}
	if addrs, ok := v.dns[host]; ok {
		return addrs
	}
	var addrs []netip.Addr
	if v.env.Resolve != nil && host != "" && v.ctx != nil {
		addrs, _ = v.env.Resolve(v.ctx, host)
	}
	if v.dns != nil {
		v.dns[host] = addrs
	}
	return addrs
}

func firstV4(addrs []netip.Addr) (netip.Addr, bool) {
	for _, a := range addrs {
		if a = a.Unmap(); a.Is4() {
			return a, true
		}
	}
	return netip.Addr{}, false
}

func joinAddrs(addrs []netip.Addr) string {
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.Unmap().String()
	}
	return strings.Join(s, ";")
}

func (v *vm) dnsResolve(c goja.FunctionCall) goja.Value {
	if a, ok := firstV4(v.lookup(v.str(c, 0))); ok {
		return v.rt.ToValue(a.String())
	}
	return goja.Null()
}

func (v *vm) dnsResolveEx(c goja.FunctionCall) goja.Value {
	return v.rt.ToValue(joinAddrs(v.lookup(v.str(c, 0))))
}

func (v *vm) isResolvable(c goja.FunctionCall) goja.Value {
	_, ok := firstV4(v.lookup(v.str(c, 0)))
	return v.bool(ok)
}

func (v *vm) isResolvableEx(c goja.FunctionCall) goja.Value {
	return v.bool(len(v.lookup(v.str(c, 0))) > 0)
}

// isInNet(host, pattern, mask): host (an IPv4 literal, or a name resolved
// to its first IPv4 address) masked equals pattern masked.
func (v *vm) isInNet(c goja.FunctionCall) goja.Value {
	addr, ok := firstV4(v.lookup(v.str(c, 0)))
	pattern, perr := netip.ParseAddr(v.str(c, 1))
	mask, merr := netip.ParseAddr(v.str(c, 2))
	if !ok || perr != nil || merr != nil || !pattern.Is4() || !mask.Is4() {
		return v.bool(false)
	}
	a, p, m := addr.As4(), pattern.As4(), mask.As4()
	for i := range 4 {
		if a[i]&m[i] != p[i]&m[i] {
			return v.bool(false)
		}
	}
	return v.bool(true)
}

// isInNetEx(host, prefix): some address of host lies in the CIDR prefix.
func (v *vm) isInNetEx(c goja.FunctionCall) goja.Value {
	prefix, err := netip.ParsePrefix(v.str(c, 1))
	if err != nil {
		return v.bool(false)
	}
	for _, a := range v.lookup(v.str(c, 0)) {
		if prefix.Contains(a.Unmap()) {
			return v.bool(true)
		}
	}
	return v.bool(false)
}

func (v *vm) myIpAddress(goja.FunctionCall) goja.Value {
	if a, ok := firstV4(v.env.MyAddrs); ok {
		return v.rt.ToValue(a.String())
	}
	return v.rt.ToValue("127.0.0.1")
}

func (v *vm) myIpAddressEx(goja.FunctionCall) goja.Value {
	if len(v.env.MyAddrs) == 0 {
		return v.rt.ToValue("127.0.0.1")
	}
	return v.rt.ToValue(joinAddrs(v.env.MyAddrs))
}

// sortIpAddressList sorts a ";"-separated list, IPv6 first, each family
// in ascending order; a list with anything but addresses gives false.
func (v *vm) sortIpAddressList(c goja.FunctionCall) goja.Value {
	var addrs []netip.Addr
	for _, s := range strings.Split(v.str(c, 0), ";") {
		a, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil {
			return v.bool(false)
		}
		addrs = append(addrs, a.Unmap())
	}
	slices.SortFunc(addrs, func(a, b netip.Addr) int {
		if a.Is4() != b.Is4() {
			if a.Is6() {
				return -1
			}
			return 1
		}
		return a.Compare(b)
	})
	return v.rt.ToValue(joinAddrs(addrs))
}

// shExpMatch(str, shexp): a shell glob over the whole string; * matches
// any run, ? one character, everything else itself.
func (v *vm) shExpMatch(c goja.FunctionCall) goja.Value {
	return v.bool(globMatch(v.str(c, 0), v.str(c, 1)))
}

func globMatch(s, pattern string) bool {
	str, pat := []rune(s), []rune(pattern)
	si, pi, star, mark := 0, 0, -1, 0
	for si < len(str) {
		switch {
		case pi < len(pat) && (pat[pi] == '?' || pat[pi] == str[si]):
			si, pi = si+1, pi+1
		case pi < len(pat) && pat[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			mark++
			si, pi = mark, star+1
		default:
			return false
		}
	}
	for pi < len(pat) && pat[pi] == '*' {
		pi++
	}
	return pi == len(pat)
}

// args returns the arguments without a trailing "GMT", and the time in
// the zone they ask for.
func (v *vm) args(c goja.FunctionCall) ([]goja.Value, time.Time) {
	a := c.Arguments
	now := v.env.now()
	if n := len(a); n > 0 && a[n-1].String() == "GMT" {
		return a[:n-1], now.UTC()
	}
	return a, now.In(v.env.loc())
}

var weekdays = map[string]int{"SUN": 0, "MON": 1, "TUE": 2, "WED": 3, "THU": 4, "FRI": 5, "SAT": 6}

var months = map[string]int{"JAN": 1, "FEB": 2, "MAR": 3, "APR": 4, "MAY": 5, "JUN": 6,
	"JUL": 7, "AUG": 8, "SEP": 9, "OCT": 10, "NOV": 11, "DEC": 12}

// inRange is start <= x <= end, wrapping around when start > end.
func inRange[T cmp.Ordered](x, start, end T) bool {
	if start <= end {
		return start <= x && x <= end
	}
	return x >= start || x <= end
}

// weekdayRange(wd1[, wd2][, "GMT"]).
func (v *vm) weekdayRange(c goja.FunctionCall) goja.Value {
	a, now := v.args(c)
	if len(a) < 1 || len(a) > 2 {
		return v.bool(false)
	}
	wd1, ok1 := weekdays[a[0].String()]
	wd2, ok2 := wd1, true
	if len(a) == 2 {
		wd2, ok2 = weekdays[a[1].String()]
	}
	return v.bool(ok1 && ok2 && inRange(int(now.Weekday()), wd1, wd2))
}

// dateField is one argument of dateRange: a day (1-31), a month name or
// a year (above 31).
type dateField struct {
	kind  byte // 'd', 'm', 'y'
	value int
}

func parseDateField(val goja.Value) (dateField, bool) {
	s := val.String()
	if m, ok := months[s]; ok {
		return dateField{'m', m}, true
	}
	n, err := strconv.Atoi(s)
	switch {
	case err != nil || n < 1:
		return dateField{}, false
	case n <= 31:
		return dateField{'d', n}, true
	}
	return dateField{'y', n}, true
}

// dateKey orders the date fields present, year before month before day.
func dateKey(fields []dateField) (key int, kinds string) {
	var y, m, d int
	for _, f := range fields {
		switch f.kind {
		case 'y':
			y = f.value
		case 'm':
			m = f.value
		case 'd':
			d = f.value
		}
		kinds += string(f.kind)
	}
	return y*10000 + m*100 + d, kinds
}

// dateRange(day | month | year [, ...]): one value, or a start and an
// end half of the same form (d d, m m, y y, d m d m, m y m y, d m y d m y).
func (v *vm) dateRange(c goja.FunctionCall) goja.Value {
	a, now := v.args(c)
	var fields []dateField
	for _, val := range a {
		f, ok := parseDateField(val)
		if !ok {
			return v.bool(false)
		}
		fields = append(fields, f)
	}
	n := len(fields)
	if n == 0 || n > 6 || n > 1 && n%2 == 1 {
		return v.bool(false)
	}
	start, end := fields, fields
	if n > 1 {
		start, end = fields[:n/2], fields[n/2:]
	}
	ks, kindsS := dateKey(start)
	ke, kindsE := dateKey(end)
	if kindsS != kindsE || strings.Count(kindsS, "d") > 1 || strings.Count(kindsS, "m") > 1 || strings.Count(kindsS, "y") > 1 {
		return v.bool(false)
	}
	var today []dateField
	for _, f := range start {
		switch f.kind {
		case 'y':
			today = append(today, dateField{'y', now.Year()})
		case 'm':
			today = append(today, dateField{'m', int(now.Month())})
		case 'd':
			today = append(today, dateField{'d', now.Day()})
		}
	}
	kt, _ := dateKey(today)
	return v.bool(inRange(kt, ks, ke))
}

// timeRange(h | h1, h2 | h1, m1, h2, m2 | h1, m1, s1, h2, m2, s2 [, "GMT"]).
func (v *vm) timeRange(c goja.FunctionCall) goja.Value {
	a, now := v.args(c)
	n := make([]int, len(a))
	for i, val := range a {
		n[i] = int(val.ToInteger())
	}
	secs := now.Hour()*3600 + now.Minute()*60 + now.Second()
	switch len(n) {
	case 1:
		return v.bool(now.Hour() == n[0])
	case 2:
		return v.bool(inRange(now.Hour(), n[0], n[1]))
	case 4:
		return v.bool(inRange(secs, n[0]*3600+n[1]*60, n[2]*3600+n[3]*60+59))
	case 6:
		return v.bool(inRange(secs, n[0]*3600+n[1]*60+n[2], n[3]*3600+n[4]*60+n[5]))
	}
	panic(v.rt.NewTypeError("timeRange: %d arguments (1, 2, 4 or 6, and an optional \"GMT\")", len(n)))
}
