package probe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"github.com/reachd/reachd/configs"
)

// resolver asks the servers of one configured resolver, in turn.
type resolver struct {
	name    string
	servers []string
	first   *dns.Client // the configured protocol
	tcp     *dns.Client // fallback on truncation
	// system is set when the resolver stands for the host's own
	// resolution (servers from resolv.conf): the hosts file first, then
	// DNS with the search list.
	system *systemRules
}

func newResolver(r configs.Resolver) *resolver {
	// The context deadline bounds every exchange; the clients' own
	// two-second defaults must not cut a slower probe short.
	const unbounded = 24 * time.Hour
	res := &resolver{
		name:    r.Name,
		servers: r.Servers,
		first:   &dns.Client{Net: r.Protocol, Timeout: unbounded, UDPSize: 1232},
		tcp:     &dns.Client{Net: "tcp", Timeout: unbounded},
	}
	if r.System {
		res.system = &systemRules{hosts: newHostsFile(r.HostsFile), search: r.Search, ndots: r.Ndots}
	}
	return res
}

// answer is the outcome of one query.
type answer struct {
	addrs    []netip.Addr
	rcode    int // -1 when no response arrived
	err      *Error
	duration time.Duration
	source   string // "hosts", or the server that answered; empty when none did
	name     string // the name answered when the search list made it another than the host
	warning  string // a hosts entry that DNS contradicts
}

// query is the check of host's qtype records: by the OS's rules for a
// system resolver, else the name as given.
func (r *resolver) query(ctx context.Context, host string, qtype uint16) answer {
	if r.system != nil {
		return r.system.query(ctx, r, host, qtype)
	}
	return r.ask(ctx, dns.Fqdn(host), qtype)
}

// pins reports whether the hosts file answers for host, so the dns stage
// does not ask DNS (the per-resolver check still does, to compare).
func (r *resolver) pins(host string) bool {
	return r.system != nil && len(r.system.hosts.lookup(host)) > 0
}

// ask asks the servers for fqdn's qtype records, in turn until one
// answers with NOERROR or NXDOMAIN; every server gets an equal share of
// the time left.
func (r *resolver) ask(ctx context.Context, fqdn string, qtype uint16) answer {
	start := time.Now()
	m := new(dns.Msg)
	m.SetQuestion(fqdn, qtype)
	m.SetEdns0(1232, false)
	a := answer{rcode: -1}
	for i, server := range r.servers {
		sctx, cancel := shareOf(ctx, len(r.servers)-i)
		a = r.exchange(sctx, m, server)
		cancel()
		if a.err == nil || a.rcode == dns.RcodeNameError || ctx.Err() != nil {
			break
		}
	}
	a.duration = time.Since(start)
	return a
}

func (r *resolver) exchange(ctx context.Context, m *dns.Msg, server string) answer {
	resp, _, err := r.first.ExchangeContext(ctx, m, server)
	return r.judge(ctx, m, resp, err, server)
}

// judge turns the response to m (or the error in its place) into an
// answer, asking again over TCP when a UDP answer was truncated.
func (r *resolver) judge(ctx context.Context, m *dns.Msg, resp *dns.Msg, err error, server string) answer {
	if err == nil && resp.Truncated && r.first.Net != "tcp" {
		if resp, _, err = r.tcp.ExchangeContext(ctx, m, server); err != nil {
			return answer{rcode: -1, err: classifyTruncated(ctx, server, err)}
		}
	}
	if err != nil {
		return answer{rcode: -1, err: classifyDNS(ctx, server, err)}
	}
	if err := sameQuestion(m.Question[0], resp); err != nil {
		return answer{rcode: -1, err: fail(DNSError, fmt.Errorf("%s %w", server, err))}
	}
	a := answer{rcode: resp.Rcode, source: server}
	switch resp.Rcode {
	case dns.RcodeSuccess:
	case dns.RcodeNameError:
		a.err = fail(DNSNXDomain, fmt.Errorf("%s answered NXDOMAIN for %s", server, m.Question[0].Name))
	case dns.RcodeServerFailure:
		a.err = fail(DNSServFail, fmt.Errorf("%s answered SERVFAIL", server))
	case dns.RcodeRefused:
		a.err = fail(DNSRefused, fmt.Errorf("%s answered REFUSED", server))
	default:
		a.err = fail(DNSError, fmt.Errorf("%s answered %s", server, dns.RcodeToString[resp.Rcode]))
	}
	for _, rr := range resp.Answer {
		switch rr := rr.(type) {
		case *dns.A:
			if ip, ok := netip.AddrFromSlice(rr.A.To4()); ok {
				a.addrs = append(a.addrs, ip)
			}
		case *dns.AAAA:
			if ip, ok := netip.AddrFromSlice(rr.AAAA); ok {
				a.addrs = append(a.addrs, ip)
			}
		}
	}
	return a
}

func classifyDNS(ctx context.Context, server string, err error) *Error {
	if isTimeout(err) || ctx.Err() != nil {
		return fail(DNSTimeout, fmt.Errorf("no answer from %s", server))
	}
	return fail(DNSError, err)
}

// classifyTruncated names a failed TCP retry of a truncated UDP answer: a
// site whose firewall lets DNS out over UDP only loses every large answer.
func classifyTruncated(ctx context.Context, server string, err error) *Error {
	const prefix = "the UDP answer was truncated and TCP to %s "
	if isTimeout(err) || ctx.Err() != nil {
		return fail(DNSTimeout, fmt.Errorf(prefix+"got no answer", server))
	}
	why := err.Error()
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		why = "connection refused"
	case isReset(err):
		why = "connection reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		why = "the server closed the connection without an answer"
	}
	return fail(DNSError, fmt.Errorf(prefix+"failed: %s", server, why))
}

// sameQuestion rejects an answer to another question than q, as dig and
// Go's resolver do: miekg/dns matches the message ID only, and a
// misrouted or forged answer must not pass as the name's records. An
// error answer may leave the question out (RFC 1035 allows it for
// FORMERR and kin); an answer with records may not.
func sameQuestion(q dns.Question, resp *dns.Msg) error {
	switch {
	case len(resp.Question) == 0 && resp.Rcode != dns.RcodeSuccess:
		return nil
	case len(resp.Question) == 0:
		return fmt.Errorf("answered without a question section, for %s %s", q.Name, dns.TypeToString[q.Qtype])
	case len(resp.Question) > 1:
		return fmt.Errorf("answered %d questions, not the one asked (%s %s)", len(resp.Question), q.Name, dns.TypeToString[q.Qtype])
	}
	got := resp.Question[0]
	if !strings.EqualFold(got.Name, q.Name) || got.Qtype != q.Qtype || got.Qclass != q.Qclass {
		return fmt.Errorf("answered a question about %s %s, not the %s %s asked: the answer is not for this query",
			got.Name, dns.TypeToString[got.Qtype], q.Name, dns.TypeToString[q.Qtype])
	}
	return nil
}

// lookup resolves host to its A and AAAA addresses, asked in parallel.
// It fails only when neither type has an address. It also returns the two
// answers, which the per-resolver check of the first resolver reuses.
func (r *resolver) lookup(ctx context.Context, host string) ([]netip.Addr, *Error, [2]answer) {
	var both [2]answer
	if r.system != nil {
		both = r.system.lookup(ctx, r, host)
	} else {
		both = r.askBoth(ctx, dns.Fqdn(host))
	}
	a, aaaa := both[0], both[1]
	addrs := append(slices.Clone(a.addrs), aaaa.addrs...)
	switch {
	case len(addrs) > 0:
		return addrs, nil, both
	case a.err != nil && (a.err.Reason == DNSNXDomain || aaaa.err == nil):
		return nil, a.err, both
	case aaaa.err != nil && (aaaa.err.Reason == DNSNXDomain || a.err == nil):
		return nil, aaaa.err, both
	case a.err != nil:
		return nil, a.err, both
	}
	return nil, fail(DNSNoRecords, fmt.Errorf("%s has no A or AAAA record", host)), both
}

// askBoth asks for fqdn's A and AAAA records. Over UDP both questions go
// out at once on one socket per server, as the OS's stub resolvers send
// them (glibc, unless single-request): a socket and a goroutine less per
// lookup. Each question moves on to the next server on its own, as ask
// does, and its duration runs until its own answer.
func (r *resolver) askBoth(ctx context.Context, fqdn string) [2]answer {
	if r.first.Net != "udp" {
		var a answer
		var wg sync.WaitGroup
		spawn(ctx, &wg, func() { a = r.ask(ctx, fqdn, dns.TypeA) })
		aaaa := r.ask(ctx, fqdn, dns.TypeAAAA)
		wg.Wait()
		return [2]answer{a, aaaa}
	}
	start := time.Now()
	var msgs [2]*dns.Msg
	out := [2]answer{{rcode: -1}, {rcode: -1}}
	var done [2]bool
	for i, qtype := range queryTypes {
		msgs[i] = new(dns.Msg)
		msgs[i].SetQuestion(fqdn, qtype)
		msgs[i].SetEdns0(1232, false)
	}
	for i, server := range r.servers {
		sctx, cancel := shareOf(ctx, len(r.servers)-i)
		r.exchangeBoth(sctx, msgs, &done, &out, server, start)
		cancel()
		for k, a := range out {
			done[k] = done[k] || a.err == nil || a.rcode == dns.RcodeNameError
		}
		if done[0] && done[1] || ctx.Err() != nil {
			break
		}
	}
	return out
}

// exchangeBoth asks server, over one UDP socket, the questions of msgs not
// done yet, and puts each answer (with its duration since start) in out.
func (r *resolver) exchangeBoth(ctx context.Context, msgs [2]*dns.Msg, done *[2]bool, out *[2]answer, server string, start time.Time) {
	fail := func(k int, err error) {
		out[k] = answer{rcode: -1, err: classifyDNS(ctx, server, err), duration: time.Since(start)}
	}
	conn, err := r.first.DialContext(ctx, server)
	if err != nil {
		for k := range msgs {
			if !done[k] {
				fail(k, err)
			}
		}
		return
	}
	defer conn.Close()
	conn.UDPSize = 1232
	if deadline, ok := ctx.Deadline(); ok {
		conn.SetDeadline(deadline)
	}
	// A socket error (an ICMP port unreachable read back as a refused
	// write or read) is every question's.
	pending := func(k int) bool { return !done[k] }
	failAll := func(err error) {
		for k := range msgs {
			if pending(k) {
				fail(k, err)
			}
		}
	}
	for k, m := range msgs {
		if pending(k) {
			m.Id = dns.Id()
			if err := conn.WriteMsg(m); err != nil {
				failAll(err)
				return
			}
		}
	}
	// Read both replies first, then judge them: a truncated one is asked
	// again over TCP, which must not hold up reading the other.
	var resps [2]*dns.Msg
	awaited := func(k int) bool { return pending(k) && resps[k] == nil }
	for awaited(0) || awaited(1) {
		resp, err := conn.ReadMsg()
		if err != nil {
			for k := range msgs {
				if awaited(k) {
					fail(k, err)
				}
			}
			break
		}
		for k, m := range msgs {
			// A reply with another ID may answer an earlier query that
			// timed out: it is ignored, as miekg/dns's exchange does.
			if awaited(k) && resp.Id == m.Id {
				resps[k] = resp
				break
			}
		}
	}
	for k, m := range msgs {
		if resps[k] != nil {
			out[k] = r.judge(ctx, m, resps[k], nil, server)
			out[k].duration = time.Since(start)
		}
	}
}

// checkResolvers asks every resolver for host's A and AAAA records, all
// at once.
func checkResolvers(ctx context.Context, resolvers []*resolver, host string, cidrs []netip.Prefix) []DNSResult {
	out := make([]DNSResult, 2*len(resolvers))
	var wg sync.WaitGroup
	for i, res := range resolvers {
		for j, qtype := range queryTypes {
			spawn(ctx, &wg, func() { out[2*i+j] = newDNSResult(res.name, qtype, res.query(ctx, host, qtype), cidrs) })
		}
	}
	wg.Wait()
	return out
}

// queryTypes are the types a lookup asks for, in lookup's answer order.
var queryTypes = [2]uint16{dns.TypeA, dns.TypeAAAA}

// newDNSResult judges one answer: NOERROR with every address inside cidrs
// (when given) is a success, even with no address (an empty AAAA beside
// an A answer is normal).
func newDNSResult(resolver string, qtype uint16, a answer, cidrs []netip.Prefix) DNSResult {
	d := DNSResult{Resolver: resolver, QType: dns.TypeToString[qtype], Duration: a.duration, Success: a.err == nil,
		Source: a.source, Name: a.name, Warning: a.warning}
	if a.rcode >= 0 {
		d.Rcode = dns.RcodeToString[a.rcode]
	}
	for _, ip := range a.addrs {
		d.Answers = append(d.Answers, ip.String())
	}
	if a.err != nil {
		d.Reason = a.err.Reason
	} else if outside(a.addrs, cidrs) {
		d.Success, d.Reason = false, DNSUnexpectedAddress
	}
	return d
}

// outside reports an address outside cidrs; no cidrs means anything goes.
func outside(addrs []netip.Addr, cidrs []netip.Prefix) bool {
	if len(cidrs) == 0 {
		return false
	}
	for _, a := range addrs {
		if !slices.ContainsFunc(cidrs, func(p netip.Prefix) bool { return p.Contains(a.Unmap()) }) {
			return true
		}
	}
	return false
}

// shareOf gives a context 1/n of the time ctx has left.
func shareOf(ctx context.Context, n int) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok || n <= 1 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, time.Until(deadline)/time.Duration(n))
}
