//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/reachd/reachd/probe/probetest"
)

// TestSquidPlainHTTP: a plain-HTTP target on port 80 (a certificate or
// CRL host) passes through stock squid, whose policy denies CONNECT to
// any port but the SSL ones: reachd sends it an absolute-form GET, as
// agents and CryptoAPI do, with the path's credentials on the auth port.
func TestSquidPlainHTTP(t *testing.T) {
	w := newSquidWorld(t)
	// Port 80 on a loopback address of its own, so no other server on
	// 127.0.0.1:80 is in the way.
	ln, err := net.Listen("tcp", "127.0.80.80:80")
	if err != nil {
		t.Fatalf("listen on port 80: %v", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/pki/crl/root.crl" {
			rw.WriteHeader(http.StatusNotFound)
			return
		}
		rw.Write([]byte("crl"))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	w.dns.Set("crl.reachd.test", probetest.Entry{A: []string{"127.0.80.80"}})
	good := writeFile(t, w.dir, "good.pass", squidPassword+"\n")
	sq := w.squid
	file := writeFile(t, w.dir, "reachd.toml", fmt.Sprintf(`site = "squid-plain"
[defaults]
timeout = "5s"

[[resolver]]
name = "lab"
servers = [%q]

[[path]]
name = "open"
proxy = %q

[[path]]
name = "auth"
proxy = %q
username = "svc"
password_file = %q

[[target]]
vendor = "acme"
region = "jp"
name = "crl"
host = "crl.reachd.test"
port = 80
checks = ["dns", "tcp", "http"]
paths = ["direct", "open", "auth"]
http = { path = "/pki/crl/root.crl", expect_status = [200] }
`, w.dns.Addr, sq.url(sq.OpenPort), sq.url(sq.AuthPort), good))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code, out, stderr := runReachd(t, ctx, nil, "check", "--config.file", file, "--format", "json")
	var doc struct{ Results []checkResult }
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("exit %d: %v\n%s\n%s", code, err, out, stderr)
	}
	if code != 0 || len(doc.Results) != 3 {
		t.Errorf("exit %d, %d results, want 0 and 3\n%s\n%s", code, len(doc.Results), out, stderr)
	}
	for _, r := range doc.Results {
		var stages []string
		for _, s := range r.Stages {
			stages = append(stages, s.Stage)
		}
		want := "proxy,http"
		if r.Path == "direct" {
			want = "dns,tcp,http"
		}
		if !r.Success || r.HTTP == nil || r.HTTP.Status != 200 || strings.Join(stages, ",") != want {
			t.Errorf("%s: success %v %s %s %q stages %v http %+v, want success over %s with 200", r.Path, r.Success, r.Stage, r.Reason, r.Detail, stages, r.HTTP, want)
		}
	}
	// The http stage reads no more of the body than it checks: squid may
	// log the GET as aborted.
	log := sq.accessLog()
	for _, re := range []string{
		`TCP_MISS(_ABORTED)?/200 \d+ GET http://crl\.reachd\.test/pki/crl/root\.crl - `,
		`TCP_MISS(_ABORTED)?/200 \d+ GET http://crl\.reachd\.test/pki/crl/root\.crl svc `,
	} {
		if !regexp.MustCompile(re).MatchString(log) {
			t.Errorf("squid's access.log lacks %s\n%s", re, log)
		}
	}
	if strings.Contains(log, "CONNECT crl.reachd.test") {
		t.Errorf("reachd sent CONNECT for a plain-HTTP target:\n%s", log)
	}
}
