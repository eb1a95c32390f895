// Package targets holds the target schema shared by target files and the
// daemon config, the strict loader for target files, and the embedded
// vendor catalog (targets/<vendor>/<region>.toml).
package targets

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The stages a target can ask for in checks, in the order they run.
const (
	CheckDNS  = "dns"
	CheckTCP  = "tcp"
	CheckTLS  = "tls"
	CheckHTTP = "http"
)

// AllChecks is the default and the canonical order of checks.
var AllChecks = []string{CheckDNS, CheckTCP, CheckTLS, CheckHTTP}

// Target is one validated endpoint: everything a prober needs, resolved
// once at load. Zero Interval, Timeout and TLSMinVersion mean "inherit the
// daemon's [defaults]"; nil Paths means every path.
type Target struct {
	Vendor  string
	Region  string
	Name    string
	Host    string
	Port    int
	Purpose string
	Checks  []string // a subset of AllChecks, in that order

	Paths         []string
	TLSMinVersion uint16
	HTTP          HTTPCheck
	ExpectCIDRs   []netip.Prefix
	PinIssuer     string
	// Inspection is InspectionBreaks for a target whose agent pins
	// certificates: an intercepted chain fails instead of passing.
	Inspection string
	Interval   time.Duration
	Timeout    time.Duration

	// Pos is "file:line" of the target's [[target]] header.
	Pos string
}

// HTTPCheck is what the http stage requests and expects.
type HTTPCheck struct {
	Path         string
	ExpectStatus []int          // empty: any response proves reachability
	ExpectBody   *regexp.Regexp // nil: no body check
}

// InspectionBreaks is the only value of a target's inspection key: TLS
// inspection breaks the agent (it pins the vendor's certificates), so a
// chain that a trusted inspection CA re-signed fails with tls_intercepted.
const InspectionBreaks = "breaks"

// ID names the target uniquely across the catalog and the config.
func (t Target) ID() string { return t.Vendor + "/" + t.Region + "/" + t.Name }

// Address is host:port.
func (t Target) Address() string { return net.JoinHostPort(t.Host, strconv.Itoa(t.Port)) }

// Has reports whether the target asks for the check.
func (t Target) Has(check string) bool { return slices.Contains(t.Checks, check) }

// Spec is a [[target]] table as written in a target file or the daemon
// config, before validation.
type Spec struct {
	Vendor        string    `toml:"vendor"` // daemon config only
	Region        string    `toml:"region"` // daemon config only
	Name          string    `toml:"name"`
	Host          string    `toml:"host"`
	Port          *int      `toml:"port"` // nil: the file's default, then 443
	Purpose       string    `toml:"purpose"`
	Checks        []string  `toml:"checks"`
	Paths         []string  `toml:"paths"`
	TLSMinVersion string    `toml:"tls_min_version"`
	HTTP          *HTTPSpec `toml:"http"`
	ExpectCIDRs   []string  `toml:"expect_cidrs"`
	PinIssuer     string    `toml:"pin_issuer"`
	Inspection    string    `toml:"inspection"`
	Interval      string    `toml:"interval"`
	Timeout       string    `toml:"timeout"`
}

// HTTPSpec is the http inline table of a Spec.
type HTTPSpec struct {
	Path         string `toml:"path"`
	ExpectStatus []int  `toml:"expect_status"`
	ExpectBody   string `toml:"expect_body"`
}

// Defaults is the [defaults] table of a target file: values every
// [[target]] in the file inherits unless it sets its own.
type Defaults struct {
	Port          *int     `toml:"port"`
	Checks        []string `toml:"checks"`
	Paths         []string `toml:"paths"`
	TLSMinVersion string   `toml:"tls_min_version"`
	Interval      string   `toml:"interval"`
	Timeout       string   `toml:"timeout"`
}

// Locator turns a field of the spec being resolved into "file:line".
type Locator func(field string) string

// Resolve validates s with the file's defaults d and returns the target.
// Every problem is returned, each naming file:line, the target and the field.
func (s Spec) Resolve(d Defaults, vendor, region string, at Locator) (Target, []error) {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: target %q: %s: %s", at(field), s.Name, field, fmt.Sprintf(format, args...)))
	}
	t := Target{Vendor: vendor, Region: region, Name: s.Name, Host: s.Host, Purpose: s.Purpose, PinIssuer: s.PinIssuer, Pos: at("")}

	switch {
	case s.Name == "":
		bad("name", "missing")
	case !validName(s.Name):
		bad("name", "%q must be 1 to 63 characters of a-z, 0-9 and -", s.Name)
	}
	if err := ValidHost(s.Host); err != nil {
		bad("host", "%v", err)
	}

	t.Port = 443
	switch {
	case s.Port != nil:
		t.Port = *s.Port
		if t.Port < 1 || t.Port > 65535 {
			bad("port", "%d out of range 1-65535", t.Port)
		}
	case d.Port != nil:
		t.Port = *d.Port
		if t.Port < 1 || t.Port > 65535 {
			bad("defaults.port", "%d out of range 1-65535", t.Port)
		}
	}

	checks := s.Checks
	if checks == nil {
		checks = d.Checks
	}
	if checks == nil {
		checks = AllChecks
	}
	var err error
	_, ipErr := netip.ParseAddr(s.Host)
	ipHost := ipErr == nil
	if t.Checks, err = normalizeChecks(checks, ipHost); err != nil {
		bad("checks", "%v", err)
	}

	t.Paths = s.Paths
	if t.Paths == nil {
		t.Paths = d.Paths
	}
	if t.TLSMinVersion, err = ParseTLSVersion(firstNonEmpty(s.TLSMinVersion, d.TLSMinVersion)); err != nil {
		bad("tls_min_version", "%v", err)
	}
	if t.Interval, err = ParseInterval(firstNonEmpty(s.Interval, d.Interval)); err != nil {
		bad("interval", "%v", err)
	}
	if t.Timeout, err = ParseTimeout(firstNonEmpty(s.Timeout, d.Timeout)); err != nil {
		bad("timeout", "%v", err)
	}
	if t.Interval > 0 && t.Timeout > t.Interval {
		bad("timeout", "%s is longer than the interval %s", t.Timeout, t.Interval)
	}

	switch s.Inspection {
	case "", InspectionBreaks:
		t.Inspection = s.Inspection
	default:
		bad("inspection", "%q is not a known value (known: %q)", s.Inspection, InspectionBreaks)
	}
	if t.Inspection != "" && t.Checks != nil && !t.Has(CheckTLS) {
		bad("inspection", "set without the tls check, the only one it applies to")
	}

	t.HTTP.Path = "/"
	if h := s.HTTP; h != nil {
		if t.Checks != nil && !t.Has(CheckHTTP) {
			bad("http", "set, but checks %s has no http: add \"http\" to checks or remove the http table", strings.Join(t.Checks, ", "))
		}
		if h.Path != "" {
			if err := ValidRequestPath(h.Path); err != nil {
				bad("http.path", "%v", err)
			}
			t.HTTP.Path = h.Path
		}
		for _, code := range h.ExpectStatus {
			if code < 100 || code > 599 {
				bad("http.expect_status", "%d is not an HTTP status", code)
			}
		}
		t.HTTP.ExpectStatus = h.ExpectStatus
		if h.ExpectBody != "" {
			if t.HTTP.ExpectBody, err = regexp.Compile(h.ExpectBody); err != nil {
				bad("http.expect_body", "%v", err)
			}
		}
	}
	if s.PinIssuer != "" && t.Checks != nil && !t.Has(CheckTLS) {
		bad("pin_issuer", "set, but checks %s has no tls: the issuer is only seen in the TLS handshake", strings.Join(t.Checks, ", "))
	}
	if len(s.ExpectCIDRs) > 0 && ipHost {
		bad("expect_cidrs", "set, but host %s is an IP address: nothing is resolved, so no answer can fall outside", s.Host)
	}
	for _, c := range s.ExpectCIDRs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			bad("expect_cidrs", "%q is not a CIDR prefix", c)
			continue
		}
		t.ExpectCIDRs = append(t.ExpectCIDRs, p.Masked())
	}
	return t, errs
}

var nameRE = regexp.MustCompile(`^[a-z0-9-]{1,63}$`)

func validName(s string) bool { return nameRE.MatchString(s) }

// ValidHost reports why h is not a probe-able host: an IP literal or a
// syntactically valid DNS name without wildcards.
func ValidHost(h string) error {
	if h == "" {
		return fmt.Errorf("missing")
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return nil
	}
	if strings.Contains(h, "*") {
		return fmt.Errorf("%q is a wildcard and cannot be probed", h)
	}
	name := strings.TrimSuffix(h, ".")
	if len(name) > 253 {
		return fmt.Errorf("%q is longer than 253 characters", h)
	}
	for _, label := range strings.Split(name, ".") {
		if !validLabel(label) {
			return fmt.Errorf("%q is not a valid host name", h)
		}
	}
	return nil
}

func validLabel(l string) bool {
	if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for _, c := range l {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// validChecks are the check sets a target may ask for (DESIGN §4): a
// prefix of dns → tcp → tls → http, or dns → tcp → http for plain HTTP.
var validChecks = [][]string{
	{CheckDNS},
	{CheckDNS, CheckTCP},
	{CheckDNS, CheckTCP, CheckTLS},
	{CheckDNS, CheckTCP, CheckTLS, CheckHTTP},
	{CheckDNS, CheckTCP, CheckHTTP},
}

// normalizeChecks puts the checks in stage order and refuses a set that
// skips a stage a later one needs. An IP host resolves nothing: it may
// leave dns out, and dns alone would check nothing.
func normalizeChecks(in []string, ipHost bool) ([]string, error) {
	if len(in) == 0 {
		return nil, fmt.Errorf("empty: name at least one of %s", strings.Join(AllChecks, ", "))
	}
	var out []string
	for _, c := range AllChecks {
		if slices.Contains(in, c) {
			out = append(out, c)
		}
	}
	for _, c := range in {
		if !slices.Contains(AllChecks, c) {
			return nil, fmt.Errorf("unknown check %q (known: %s)", c, strings.Join(AllChecks, ", "))
		}
	}
	if len(out) != len(in) {
		return nil, fmt.Errorf("%s names a check twice", strings.Join(in, ", "))
	}
	if ipHost && slices.Equal(out, []string{CheckDNS}) {
		return nil, fmt.Errorf("only dns, but the host is an IP address: there is nothing to resolve; add tcp")
	}
	want := out
	if ipHost && out[0] != CheckDNS {
		want = append([]string{CheckDNS}, out...)
	}
	for _, v := range validChecks {
		if slices.Equal(want, v) {
			return out, nil
		}
	}
	return nil, fmt.Errorf("%s skips a stage: checks are dns, tcp, tls, http in that order, each needing the ones before it (http without tls for plain HTTP)", strings.Join(out, ", "))
}

// ValidRequestPath reports why p cannot be sent as the path of an HTTP
// request: it must start with / and hold no space or control character
// (a CR or LF would inject headers).
func ValidRequestPath(p string) error {
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("%q must start with /", p)
	}
	for _, c := range p {
		if c <= ' ' || c == 0x7f {
			return fmt.Errorf("%q holds a space or a control character: percent-encode it", p)
		}
	}
	if _, err := url.ParseRequestURI(p); err != nil {
		return fmt.Errorf("%q is not a request path", p)
	}
	return nil
}

// TLS versions by their configuration names.
var tlsVersions = map[string]uint16{
	"1.0": tls.VersionTLS10,
	"1.1": tls.VersionTLS11,
	"1.2": tls.VersionTLS12,
	"1.3": tls.VersionTLS13,
}

// ParseTLSVersion parses "1.0".."1.3"; the empty string gives 0 (inherit).
func ParseTLSVersion(s string) (uint16, error) {
	if s == "" {
		return 0, nil
	}
	v, ok := tlsVersions[s]
	if !ok {
		return 0, fmt.Errorf("%q is not one of 1.0, 1.1, 1.2, 1.3", s)
	}
	return v, nil
}

// ParseDuration parses a Go duration that must be positive; the empty
// string gives 0 (inherit).
func ParseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (e.g. \"30s\", \"5m\")", s)
	}
	if d <= 0 {
		return 0, fmt.Errorf("%q must be positive", s)
	}
	return d, nil
}

// Bounds of intervals and timeouts: below them a typo ("1ms") floods the
// network, above them ("2200000h") the schedule's arithmetic overflows.
const (
	MinInterval = time.Second
	MaxInterval = 24 * time.Hour
	MinTimeout  = 100 * time.Millisecond
)

// ParseBounded parses a duration as ParseDuration does and requires it
// within [lo, hi]; the empty string gives 0 (inherit).
func ParseBounded(s string, lo, hi time.Duration) (time.Duration, error) {
	d, err := ParseDuration(s)
	if err != nil || d == 0 {
		return d, err
	}
	if d < lo || d > hi {
		return 0, fmt.Errorf("%q is outside %s to %s", s, shortDuration(lo), shortDuration(hi))
	}
	return d, nil
}

// ParseInterval parses a probe interval: 1s to 24h.
func ParseInterval(s string) (time.Duration, error) { return ParseBounded(s, MinInterval, MaxInterval) }

// ParseTimeout parses a probe timeout: 100ms to 24h.
func ParseTimeout(s string) (time.Duration, error) { return ParseBounded(s, MinTimeout, MaxInterval) }

// shortDuration writes 24h as "24h", not "24h0m0s".
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

func firstNonEmpty(v ...string) string {
	for _, x := range v {
		if x != "" {
			return x
		}
	}
	return ""
}
