package probe

import (
	"fmt"
	"slices"
)

// Stage is one step of a probe, in the order they run.
type Stage string

// The stages. A direct probe runs dns, tcp, tls, http; a proxy probe runs
// proxy, tls, http.
const (
	StageDNS   Stage = "dns"
	StageTCP   Stage = "tcp"
	StageProxy Stage = "proxy"
	StageTLS   Stage = "tls"
	StageHTTP  Stage = "http"
	// StageInternal is where a bug in reachd itself (a recovered panic)
	// is reported; it is not a network stage.
	StageInternal Stage = "internal"
)

// Reason names why a probe failed; the set is closed (DESIGN §6).
type Reason string

// The failure reasons, by stage.
const (
	DNSNXDomain          Reason = "dns_nxdomain"
	DNSServFail          Reason = "dns_servfail"
	DNSRefused           Reason = "dns_refused"
	DNSTimeout           Reason = "dns_timeout"
	DNSNoRecords         Reason = "dns_no_records"
	DNSUnexpectedAddress Reason = "dns_unexpected_address"
	DNSError             Reason = "dns_error"

	TCPRefused     Reason = "tcp_refused"
	TCPTimeout     Reason = "tcp_timeout"
	TCPUnreachable Reason = "tcp_unreachable"
	TCPReset       Reason = "tcp_reset"
	TCPError       Reason = "tcp_error"

	ProxyDNSFailed      Reason = "proxy_dns_failed"
	ProxyUnreachable    Reason = "proxy_unreachable"
	ProxyAuthRequired   Reason = "proxy_auth_required"
	ProxyAuthRejected   Reason = "proxy_auth_rejected"
	ProxyDenied         Reason = "proxy_denied"
	ProxyUpstreamFailed Reason = "proxy_upstream_failed"
	ProxyTimeout        Reason = "proxy_timeout"
	ProxyPACFailed      Reason = "proxy_pac_failed"
	ProxyError          Reason = "proxy_error"

	TLSTimeout            Reason = "tls_timeout"
	TLSReset              Reason = "tls_reset"
	TLSVersionUnsupported Reason = "tls_version_unsupported"
	TLSHandshakeFailed    Reason = "tls_handshake_failed"
	TLSClientCertRequired Reason = "tls_client_cert_required"
	TLSUntrustedCA        Reason = "tls_untrusted_ca"
	TLSChainIncomplete    Reason = "tls_chain_incomplete"
	TLSHostnameMismatch   Reason = "tls_hostname_mismatch"
	TLSExpired            Reason = "tls_expired"
	TLSIntercepted        Reason = "tls_intercepted"
	TLSIssuerChanged      Reason = "tls_issuer_changed"
	TLSError              Reason = "tls_error"

	HTTPTimeout          Reason = "http_timeout"
	HTTPStatusUnexpected Reason = "http_status_unexpected"
	HTTPBodyMismatch     Reason = "http_body_mismatch"
	HTTPBlocked          Reason = "http_blocked"
	HTTPError            Reason = "http_error"

	// Internal is a panic inside a probe, recovered: a bug in reachd, not
	// a network problem. It extends the closed set of DESIGN §6.
	Internal Reason = "internal"
)

type reasonInfo struct {
	stage Stage
	hint  string
}

// reasons holds every reason with its stage and the one-line hint an
// operator reads next to it: what is likely wrong and where the fix is.
var reasons = map[Reason]reasonInfo{
	DNSNXDomain:          {StageDNS, "the name does not exist for this resolver: check the host name against the vendor's list for your region, and DNS forwarding / split-horizon zones or a hosts-file entry"},
	DNSServFail:          {StageDNS, "the resolver failed to resolve the name (SERVFAIL): check the resolver's forwarders and DNSSEC, or its reach to the internet"},
	DNSRefused:           {StageDNS, "the resolver refused the query: allow this host to query it (ACL / recursion), or configure the resolver the agents use"},
	DNSTimeout:           {StageDNS, "no DNS answer in time: check that the resolver is up and that the firewall allows DNS (UDP and TCP 53) to it"},
	DNSNoRecords:         {StageDNS, "the name exists but has no A or AAAA address: check for a DNS filter or a broken record, or a stale hosts-file entry"},
	DNSUnexpectedAddress: {StageDNS, "the name resolved outside the vendor's expected ranges: a DNS filter or sinkhole, split-horizon DNS, or a hosts-file entry is redirecting it"},
	DNSError:             {StageDNS, "DNS lookup failed: check the resolver configuration (/etc/resolv.conf or [[resolver]]) and that it is reachable"},

	TCPRefused:     {StageTCP, "the connection was refused: a firewall rejects this port, or nothing listens at that address; allow the host and port in the firewall"},
	TCPTimeout:     {StageTCP, "no answer to the connection attempt: a firewall silently drops it; allow the host and port outbound, or use the proxy path"},
	TCPUnreachable: {StageTCP, "no route to the host: check the site's default route and egress, or a firewall answering host-unreachable"},
	TCPReset:       {StageTCP, "the connection was reset: a firewall or IPS rejects it; allow the host in the firewall"},
	TCPError:       {StageTCP, "the connection failed: check egress from this site to the host and port"},

	ProxyDNSFailed:      {StageProxy, "the proxy's own host name does not resolve: check the proxy address in the config and DNS"},
	ProxyUnreachable:    {StageProxy, "the proxy does not accept connections: check that the proxy is up and its address and port are right"},
	ProxyAuthRequired:   {StageProxy, "the proxy demands credentials (407): configure the agents' and reachd's proxy username and password, or exempt the agents from proxy authentication"},
	ProxyAuthRejected:   {StageProxy, "the proxy rejected the credentials that were sent (407 after authenticating): check the path's username, password or Kerberos keys, and that the account is not locked or expired"},
	ProxyDenied:         {StageProxy, "the proxy denied the request: allow the host and port (CONNECT to 443) in the proxy's ACL or web filter"},
	ProxyUpstreamFailed: {StageProxy, "the proxy could not reach the host (502/503/504): check the proxy's own DNS and egress to the host"},
	ProxyTimeout:        {StageProxy, "the proxy did not answer in time: check the proxy's load and its upstream"},
	ProxyPACFailed:      {StageProxy, "the PAC file could not be fetched or evaluated: check the pac_url / WPAD host and the script; agents that use it fall back to an older copy or to direct"},
	ProxyError:          {StageProxy, "the proxy conversation failed: check that the address is an HTTP proxy that supports CONNECT"},

	TLSTimeout:            {StageTLS, "the TLS handshake stalled: a firewall or DPI device drops the ClientHello, or an MTU black hole eats large packets; allow the host in the firewall or check the path MTU"},
	TLSReset:              {StageTLS, "the connection was reset after the ClientHello: a firewall or web filter blocks this host by its SNI; allow the host in the firewall or web filter"},
	TLSVersionUnsupported: {StageTLS, "no common TLS version: enable TLS 1.2 (or 1.3) on the agents and on any proxy or inspection device in between"},
	TLSHandshakeFailed:    {StageTLS, "the TLS handshake failed: no common cipher suite or a device in between breaks TLS; enable TLS 1.2 with modern cipher suites"},
	TLSClientCertRequired: {StageTLS, "the server (or a device in front of it) demands a client certificate: agents do not present one here; exempt the host from mutual-TLS inspection or check that the right endpoint is configured"},
	TLSUntrustedCA:        {StageTLS, "the certificate chain ends in a CA this site does not trust: a TLS-inspecting proxy (install its CA on the agents, or exempt this host from inspection) or a missing root CA (update the trust store)"},
	TLSChainIncomplete:    {StageTLS, "the server sends an incomplete chain (an intermediate is missing) that verifies once the issuer is fetched from its AIA URL: agents that cannot fetch it fail; fix the server's chain, or allow the AIA host through the proxy"},
	TLSHostnameMismatch:   {StageTLS, "the certificate is for another name: a proxy, captive portal or wrong DNS answer is serving this host; check DNS and exempt the host from inspection"},
	TLSExpired:            {StageTLS, "the certificate is expired or not yet valid: fix this host's clock (NTP) or an inspection device that signs with stale certificates"},
	TLSIntercepted:        {StageTLS, "a TLS-inspecting proxy re-signs this host and the agent will reject it (it pins the vendor's certificates, or the issuer is not the pinned one): exempt the host from TLS inspection in the proxy or firewall"},
	TLSIssuerChanged:      {StageTLS, "the certificate verifies against the public roots but its issuer is not the pinned one: the vendor rotated its CA; check the vendor's notice and update pin_issuer (and any pinned agents)"},
	TLSError:              {StageTLS, "TLS failed: check egress to the host and any device that inspects TLS"},

	HTTPTimeout:          {StageHTTP, "no HTTP answer in time: the service or a device in between is stalling; check the proxy and web filter"},
	HTTPStatusUnexpected: {StageHTTP, "the server answered with an unexpected status: a web filter block page or a captive portal may be answering instead of the vendor"},
	HTTPBodyMismatch:     {StageHTTP, "the answer is not what the vendor serves: a web filter block page or a captive portal is answering"},
	HTTPBlocked:          {StageHTTP, "a web filter or transparent proxy answered with its own block page instead of the vendor: allow the host in the filter's policy"},
	HTTPError:            {StageHTTP, "the HTTP exchange failed: check the proxy and web filter between this site and the host"},

	Internal: {StageInternal, "reachd itself failed on this probe (a bug): the log has the stack trace; please report it with reachd version"},
}

// Reasons returns every reason, sorted.
func Reasons() []Reason {
	out := make([]Reason, 0, len(reasons))
	for r := range reasons {
		out = append(out, r)
	}
	slices.Sort(out)
	return out
}

// Stage is the stage the reason belongs to.
func (r Reason) Stage() Stage { return reasons[r].stage }

// Hint is the one-line remediation hint for the reason.
func (r Reason) Hint() string { return reasons[r].hint }

// Error is a classified probe failure: the stage that failed, why, and the
// underlying cause. errors.As gets it back from a wrapped error.
type Error struct {
	Stage  Stage
	Reason Reason
	Err    error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("%s: %s", e.Stage, e.Reason)
	}
	return fmt.Sprintf("%s: %s: %v", e.Stage, e.Reason, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// fail classifies err as reason; the stage comes from the reason.
func fail(reason Reason, err error) *Error {
	return &Error{Stage: reason.Stage(), Reason: reason, Err: err}
}
