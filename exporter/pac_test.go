package exporter

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/reachd/reachd/probe"
)

// TestPACReported: a pac path's result names the PAC, its answer and the
// entry that carried the probe, in the JSON and on the status page.
func TestPACReported(t *testing.T) {
	tg := pageTarget("acme", "jp", "api", "pac")
	r := upResult(tg, "pac", t0)
	r.PAC = &probe.PACInfo{Source: "http://pac.reachd.test/proxy.pac", Answer: "PROXY a:8080; PROXY b:8080; DIRECT",
		Used: "PROXY b:8080", Fallback: true, FetchError: "PAC http://pac.reachd.test/proxy.pac: GET answered \"503 Service Unavailable\""}
	b, err := json.Marshal(NewResultReport(&r))
	if err != nil {
		t.Fatal(err)
	}
	want := `"pac":{"source":"http://pac.reachd.test/proxy.pac","answer":"PROXY a:8080; PROXY b:8080; DIRECT","proxy_used":"PROXY b:8080","fallback":true,"fetch_error":"PAC http://pac.reachd.test/proxy.pac: GET answered \"503 Service Unavailable\""}`
	if !strings.Contains(string(b), want) {
		t.Errorf("JSON %s lacks %s", b, want)
	}
	plain := upResult(tg, "direct", t0)
	if b, _ := json.Marshal(NewResultReport(&plain)); strings.Contains(string(b), `"pac"`) {
		t.Errorf("a direct result has a pac object: %s", b)
	}

	s := NewStore()
	p := pageProbe{tg, "pac"}
	Sync(s, []pageProbe{p})
	s.Record(p.Key(), r)
	page := render(t, s, loaded, "")
	for _, w := range []string{"<dt>PAC</dt><dd class=\"mono\">http://pac.reachd.test/proxy.pac</dd>", "<dt>carried by</dt><dd class=\"mono\">PROXY b:8080 <span class=\"warn\">(a fallback: the first choice could not be reached)</span></dd>", "the last good copy is in use"} {
		if !strings.Contains(page, w) {
			t.Errorf("page lacks %q", w)
		}
	}
}
