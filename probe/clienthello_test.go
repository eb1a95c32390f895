package probe

import (
	"context"
	"crypto/tls"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/reachd/reachd/configs"
	"github.com/reachd/reachd/probe/probetest"
)

// TestClientHelloIsTheAgents: probers share their TLS configs, yet every
// handshake (the stage's and each sweep's) names its own target in SNI,
// and offers the agents' key exchange groups in SChannel's order, with no
// post-quantum key share.
func TestClientHelloIsTheAgents(t *testing.T) {
	l := newLab(t)
	hosts := []string{"one.reachd.test", "two.reachd.test"}
	var mu sync.Mutex
	hellos := map[string][][]tls.CurveID{}
	conf := &tls.Config{Certificates: []tls.Certificate{l.ca.Issue(t, hosts, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))}, MinVersion: tls.VersionTLS10}
	conf.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		mu.Lock()
		hellos[hello.ServerName] = append(hellos[hello.ServerName], slices.Clone(hello.SupportedCurves))
		mu.Unlock()
		return nil, nil
	}
	s := probetest.NewRawServer(t, func(c net.Conn) { serveTLSOnce(c, conf) })
	env := NewEnv(l.config(), "reachd-test")
	var probers []*Prober
	for _, h := range hosts {
		l.dns.Set(h, probetest.Entry{A: []string{"127.0.0.1"}})
		probers = append(probers, New(target(h, s.Port), configs.Path{Name: "direct"}, env))
	}
	if probers[0].tls.conf != probers[1].tls.conf {
		t.Error("two probers with the same TLS settings built configs of their own")
	}
	for _, p := range probers {
		assertOutcome(t, p.Probe(context.Background()), "", "", "")
	}
	mu.Lock()
	defer mu.Unlock()
	for _, h := range hosts {
		if len(hellos[h]) != 1+len(TLSVersions) {
			t.Errorf("%s: %d ClientHellos named it, want the stage's and %d sweep handshakes (all hellos: %v)", h, len(hellos[h]), len(TLSVersions), hellos)
		}
		for _, curves := range hellos[h] {
			if !slices.Equal(curves, agentCurves) {
				t.Errorf("%s: offered groups %v, want %v", h, curves, agentCurves)
			}
		}
	}
}
