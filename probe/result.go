package probe

import (
	"crypto/x509"
	"time"

	"github.com/reachd/reachd/targets"
)

// Result is what one run of a probe found. Err is nil on success.
type Result struct {
	Target *targets.Target
	Path   string
	// Version is the version of the prober that ran (Prober.Version): a
	// store drops the late result of a prober that a reload replaced.
	Version  string
	Start    time.Time
	Duration time.Duration
	Err      *Error
	Stages   []StageResult
	TLS      *TLSInfo  // nil until a handshake completed
	HTTP     *HTTPInfo // nil until a response arrived
	DNS      []DNSResult
	PAC      *PACInfo // on a pac or wpad path: what the PAC chose
	// Trace is the path trace of a failing direct probe (tcp_timeout,
	// tcp_unreachable, tls_timeout, tls_reset); nil otherwise.
	Trace *TraceInfo
	// Revocation is what the chain's OCSP, CRL and caIssuers URLs
	// answered over the probe's path, from the last revocation check.
	Revocation []RevocationCheck
	// Panic is the stack of a panic recovered during the run (Err then
	// has reason internal); the daemon logs it. Never shown on pages.
	Panic []byte
	// Proxy is the explicit proxy the path went through (credentials
	// never included), "" for direct, environment and pac paths; ProxyAuth
	// says whether the path authenticates to it.
	Proxy     string
	ProxyAuth bool
}

// Success reports whether every stage passed.
func (r *Result) Success() bool { return r.Err == nil }

// StageResult is one stage's outcome within a run.
type StageResult struct {
	Stage    Stage
	Success  bool
	Duration time.Duration
}

// TLSInfo is what the tls stage and the sweep learned.
type TLSInfo struct {
	Version     uint16
	Cipher      string
	Issuer      string    // the issuing CA of the leaf (its Common Name)
	Intercepted bool      // the chain anchors only in a private (trusted, not legitimate) CA
	NotAfter    time.Time // earliest expiry of the verified chain; the leaf's when none verified
	// ClientCertRequested: the server sent a CertificateRequest (reachd,
	// like an agent without a certificate, presents none). A handshake that
	// failed after the request still returns a TLSInfo with only this set.
	ClientCertRequested bool
	// Accepted holds the last sweep's verdict per version: true accepted,
	// false rejected on the wire, absent unknown; nil before the first sweep.
	Accepted map[uint16]bool
	// Chain is the verified chain, leaf first, root last; nil when none
	// verified. For the revocation checks: reports show its URLs only.
	Chain []*x509.Certificate
}

// HTTPInfo is what the http stage learned.
type HTTPInfo struct {
	Status    int
	ClockSkew time.Duration // server Date minus the local clock
	HasDate   bool
}

// DNSResult is one target x resolver x query type check.
type DNSResult struct {
	Resolver string
	QType    string // "A" or "AAAA"
	Success  bool
	Rcode    string // "NOERROR", "NXDOMAIN", ...; empty when no answer came
	Answers  []string
	Duration time.Duration
	Reason   Reason // empty on success
	// Source is where the answer came from: "hosts" (the hosts file, for
	// a system resolver) or the server that answered; empty when none did.
	Source string
	// Name is the name answered when a system resolver's search list made
	// it another than the host (a short intranet name).
	Name string
	// Warning is set when the hosts file pins the host to other addresses
	// than DNS answers (a stale pin); the check still passes.
	Warning string
}

// run times one stage and records it; it reports whether the stage passed.
// A failure that belongs to a stage that already ran (a proxy's own answer
// read at the http stage) is recorded as that stage's: it fails, and the
// time is added to it, so the stages still name each stage once (one
// series per stage).
func (r *Result) run(stage Stage, f func() *Error) bool {
	start := time.Now()
	err := f()
	d := time.Since(start)
	r.Stages = append(r.Stages, StageResult{Stage: stage, Success: err == nil, Duration: d})
	if err != nil {
		r.Err = err
		return false
	}
	return true
}

// ran reports whether the stage ran, passed or failed.
func (r *Result) ran(stage Stage) bool {
	for _, s := range r.Stages {
		if s.Stage == stage {
			return true
		}
	}
	return false
}
