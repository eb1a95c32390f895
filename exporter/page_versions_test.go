package exporter

import (
	"strings"
	"testing"

	"github.com/reachd/reachd/probe"
)

// TestStatusPageUndecidedVersions: a version the sweep could not decide
// (absent from Accepted) shows as "?", never as refused.
func TestStatusPageUndecidedVersions(t *testing.T) {
	tg := pageTarget("acme", "jp", "api", "direct")
	r := upResult(tg, "direct", t0)
	r.TLS = &probe.TLSInfo{Version: 0x0303, Cipher: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", Issuer: "R3", NotAfter: t0.AddDate(0, 3, 0),
		Accepted: map[uint16]bool{0x0301: false, 0x0303: true}}
	s := NewStore()
	p := pageProbe{tg, "direct"}
	Sync(s, []pageProbe{p})
	s.Record(p.Key(), r)
	page := render(t, s, loaded, "")
	for _, want := range []string{"1.0 ✗", "1.1 ?", "1.2 ✓", "1.3 ?"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}
