package exporter

import (
	"bytes"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/reachd/reachd/probe"
	"github.com/reachd/reachd/probe/trace"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// goldenStore holds one probe of each shape /metrics writes: passing,
// failing with a trace that reached a hop and one that reached none, with
// hostile labels, revocation URLs and PAC entries, never run, a handshake that failed
// after a sweep, values that take the exponent form, and a few realistic
// ones. Each probe failed in one way only, so that no two failure series
// come from one map (whose order is random).
func goldenStore(histograms bool) *Store {
	store := NewStore()
	store.SetStageHistograms(histograms)
	a, b, c, d, e, f := fake("a"), fake("b"), fake("hostile"), fake("d"), fake("e"), fake("f")
	c.t.Host = `evil"host\name` + "\n"
	c.path = `corp "proxy"`
	probes := []fakeProbe{a, b, c, d, e, f}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 4 {
		probes = append(probes, fake("real"+string(rune('0'+i))))
	}
	Sync(store, probes)

	carried := okResult(a)
	carried.PAC = &probe.PACInfo{Source: "http://pac.reachd.test/proxy.pac", Answer: "PROXY proxy.reachd.test:8080; DIRECT", Used: "PROXY proxy.reachd.test:8080"}
	store.Record(a.Key(), carried)

	traced := badResult(b)
	traced.Err = &probe.Error{Stage: probe.StageTCP, Reason: probe.TCPTimeout}
	traced.Trace = testTrace()
	store.Record(b.Key(), traced)
	store.Record(b.Key(), traced)

	hostile := okResult(c)
	hostile.Revocation = []probe.RevocationCheck{{Kind: probe.RevocationCRL, URL: `http://crl.reachd.test/"a"\b`, Reachable: false}, {Kind: probe.RevocationOCSP, URL: "http://ocsp.reachd.test", Reachable: true}}
	hostile.TLS.Issuer = `CN with "quotes" and \ backslash` + "\nnewline"
	hostile.PAC = &probe.PACInfo{Answer: `PROXY dead:1; PROXY "b\c":8080`, Used: `PROXY "b\c":8080`, Fallback: true}
	store.Record(c.Key(), hostile)

	silent := badResult(d)
	silent.Err = &probe.Error{Stage: probe.StageTLS, Reason: probe.TLSTimeout}
	silent.Trace = &probe.TraceInfo{Start: t0, Hops: []trace.Hop{{TTL: 1}, {TTL: 2}}}
	silent.TLS = &probe.TLSInfo{Accepted: map[uint16]bool{0x0303: false, 0x0304: true}}
	silent.DNS = []probe.DNSResult{{Resolver: "system", QType: "A", Duration: 5 * time.Second, Reason: probe.DNSTimeout}}
	silent.PAC = &probe.PACInfo{Answer: "PROXY dead:1"} // no entry carried it: no pac series
	store.Record(d.Key(), silent)

	// e never ran.

	odd := okResult(f)
	odd.Duration = 1e6 * time.Second
	odd.Stages = []probe.StageResult{{Stage: probe.StageDNS, Success: true, Duration: 15 * time.Microsecond}, {Stage: probe.StageTCP, Success: true}, {Stage: probe.StageTLS, Success: true, Duration: 999999 * time.Second}}
	odd.HTTP = &probe.HTTPInfo{Status: 200, ClockSkew: 123456 * time.Second, HasDate: true}
	odd.TLS.NotAfter = time.Unix(-1, 0)
	odd.DNS = append(odd.DNS, probe.DNSResult{Resolver: "public", QType: "A", Success: true, Rcode: "NOERROR", Answers: make([]string, 12), Duration: 1234567 * time.Second})
	store.Record(f.Key(), odd)
	store.entries[f.Key()].Runs = [2]uint64{1234567, 1e6}

	for _, p := range probes[6:] {
		for round := range 3 {
			store.Record(p.Key(), benchResult(p, round, rng))
		}
	}
	http := benchResult(probes[7], 3, rng)
	http.HTTP.HasDate = false
	http.Err = &probe.Error{Stage: probe.StageHTTP, Reason: probe.HTTPStatusUnexpected}
	store.Record(probes[7].Key(), http)
	return store
}

// TestProbeFamiliesGolden holds the per-probe part of /metrics to the
// bytes in testdata: samples, their order and their formatting. Run with
// -update to rewrite the files after an intended change.
func TestProbeFamiliesGolden(t *testing.T) {
	for _, tt := range []struct {
		histograms bool
		file       string
	}{
		{false, "probe_families.txt"},
		{true, "probe_families_histograms.txt"},
	} {
		t.Run(tt.file, func(t *testing.T) {
			var got bytes.Buffer
			if err := goldenStore(tt.histograms).writeProbeFamilies(t.Context(), &got); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", tt.file)
			if *update {
				if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Errorf("per-probe families differ from %s:\n%s", path, got.Bytes())
			}
		})
	}
}
