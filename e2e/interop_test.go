//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"encoding/xml"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/reachd/reachd/probe/probetest"
)

// The interop suite (docs/interop.md) runs reachd against TLS servers,
// middleboxes and proxies that the project did not write, and compares
// its sweep with sslscan's against the same servers.

// interopVersions are the columns of a version string: "nnyy" means 1.0
// and 1.1 not accepted, 1.2 and 1.3 accepted; '?' is unknown (no sample),
// and in an expectation '~' allows accepted or unknown, '.' not accepted
// or unknown (an alert that may mean "no shared cipher").
var interopVersions = []string{"1.0", "1.1", "1.2", "1.3"}

// interopPKI is the test's certificate authority and the certificates the
// servers present, as PEM files in dir.
type interopPKI struct {
	dir  string
	root *probetest.CA
	mid  *probetest.CA // issues every leaf
	key  *rsa.PrivateKey
	// RootFile is the root alone (reachd's [trust] ca_files, client CA);
	// MidFile the intermediate alone.
	RootFile, MidFile string
	// KeyFile is the leaves' RSA key.
	KeyFile string
	// Good, Expired, WrongName: leaf + intermediate. NoChain: the leaf
	// alone, with an AIA caIssuers URL that serves the intermediate.
	// Good is for *.reachd.test, WrongName for other.reachd.test only.
	Good, Expired, WrongName, NoChain cert
	// AIAURL serves the intermediate (DER), for NoChain.
	AIAURL string
}

// cert is one server certificate as files: the leaf alone, the chain
// (leaf first), and the chain followed by the key (haproxy).
type cert struct{ Leaf, Chain, Combined string }

func newInteropPKI(t *testing.T, aiaHost string) *interopPKI {
	t.Helper()
	p := &interopPKI{dir: t.TempDir(), root: probetest.NewCA(t, "Interop Root CA")}
	p.mid = p.root.NewIntermediate(t, "Interop Issuing CA")
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p.key = key
	p.RootFile = writeFile(t, p.dir, "root.pem", string(p.root.PEM))
	p.MidFile = writeFile(t, p.dir, "issuing.pem", string(p.mid.PEM))
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	p.KeyFile = writeFile(t, p.dir, "leaf.key", keyPEM)

	// The AIA server hands out the intermediate, as a CA's web server does.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/pkix-cert")
		w.Write(p.mid.Cert.Raw)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	p.AIAURL = fmt.Sprintf("http://%s:%d/issuing.crt", aiaHost, ln.Addr().(*net.TCPAddr).Port)

	now := time.Now()
	mid := string(p.mid.PEM)
	issue := func(name string, names []string, from, until time.Time, aia string, withChain bool) cert {
		leaf := p.issue(t, names, from, until, aia)
		chain := leaf
		if withChain {
			chain += mid
		}
		return cert{
			Leaf:     writeFile(t, p.dir, name+"-leaf.pem", leaf),
			Chain:    writeFile(t, p.dir, name+".pem", chain),
			Combined: writeFile(t, p.dir, name+"-combined.pem", chain+keyPEM),
		}
	}
	p.Good = issue("good", []string{"*.reachd.test"}, now.Add(-time.Hour), now.AddDate(0, 1, 0), "", true)
	p.Expired = issue("expired", []string{"*.reachd.test"}, now.AddDate(0, 0, -30), now.AddDate(0, 0, -1), "", true)
	p.WrongName = issue("wrongname", []string{"other.reachd.test"}, now.Add(-time.Hour), now.AddDate(0, 1, 0), "", true)
	p.NoChain = issue("nochain", []string{"*.reachd.test"}, now.Add(-time.Hour), now.AddDate(0, 1, 0), p.AIAURL, false)
	return p
}

// issue returns a PEM leaf for names with the shared RSA key, signed by
// the intermediate.
func (p *interopPKI) issue(t *testing.T, names []string, from, until time.Time, aia string) string {
	t.Helper()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: names[0], Organization: []string{"reachd interop"}},
		DNSNames:     names,
		NotBefore:    from,
		NotAfter:     until,
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if aia != "" {
		tmpl.IssuingCertificateURL = []string{aia}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.mid.Cert, &p.key.PublicKey, p.mid.Key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// interopCase is one server (or middlebox, or proxy) configuration and the
// verdict DESIGN §5-§6 asks of reachd against it.
type interopCase struct {
	server, config string // the table's first two columns
	host           string // the target's name; resolves to 127.0.0.1
	port           int
	path           string // "" is direct
	extra          string // more TOML lines for the [[target]]
	// offers is what the server is configured to accept, as a version
	// string; sslscan must find exactly that (it checks the test's
	// server, not reachd). "" skips sslscan (proxies).
	offers string
	// versions is reachd's expected sweep; "" does not check it.
	versions string
	// stage and reason of the failure; both "" is success.
	stage, reason string
	detail        string // in the detail, when set
	intercepted   bool   // on success: the chain anchors in a path's CA
	status        int    // on success with http: the status, when set
	// note explains a disagreement between sslscan and reachd; every
	// disagreement needs one.
	note string
}

// id is the case's target name: [a-z0-9-], from server and config.
func (c *interopCase) id() string {
	var b strings.Builder
	for _, r := range strings.ToLower(c.server + "-" + c.config) {
		switch {
		case r == '.':
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}

// interopResult is the part of `reachd check --format json` the suite
// reads.
type interopResult struct {
	Target, Path, Stage, Reason, Detail string
	Success                             bool
	DurationSeconds                     float64 `json:"duration_seconds"`
	TLS                                 *struct {
		Version, Cipher, Issuer string
		Intercepted             bool
		VersionsAccepted        map[string]*bool `json:"versions_accepted"`
	}
	HTTP *struct{ Status int }
}

// versions is the sweep as a version string.
func (r *interopResult) versions() string {
	var b strings.Builder
	for _, v := range interopVersions {
		switch {
		case r.TLS == nil || r.TLS.VersionsAccepted[v] == nil:
			b.WriteByte('?')
		case *r.TLS.VersionsAccepted[v]:
			b.WriteByte('y')
		default:
			b.WriteByte('n')
		}
	}
	return b.String()
}

func (r *interopResult) verdict() string {
	if r.Success {
		s := "OK"
		if r.TLS != nil && r.TLS.Intercepted {
			s += " intercepted"
		}
		return s
	}
	return r.Stage + " " + r.Reason
}

// interopConfig writes a reachd config with one target per case.
func interopConfig(t *testing.T, dir, dnsAddr string, caFiles []string, paths string, cases []*interopCase, timeout time.Duration) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "site = \"interop\"\n[defaults]\ntimeout = %q\n\n[[resolver]]\nname = \"lab\"\nservers = [%q]\n\n[trust]\nca_files = [", timeout.String(), dnsAddr)
	for i, f := range caFiles {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", f)
	}
	b.WriteString("]\n\n" + paths + "\n")
	for _, c := range cases {
		path := c.path
		if path == "" {
			path = "direct"
		}
		fmt.Fprintf(&b, "[[target]]\nvendor = \"interop\"\nregion = \"lab\"\nname = %q\nhost = %q\nport = %d\npaths = [%q]\n%s\n", c.id(), c.host, c.port, path, c.extra)
	}
	return writeFile(t, dir, "reachd.toml", b.String())
}

// interopCheck runs `reachd check` over every case at once and returns
// the results by case id.
func interopCheck(t *testing.T, file string, guard time.Duration, args ...string) map[string]*interopResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	code, out, stderr := runReachd(t, ctx, nil, append([]string{"check", "--config.file", file, "--format", "json"}, args...)...)
	if code != 0 && code != 1 {
		t.Fatalf("reachd check: exit %d\n%s\n%s", code, stderr, out)
	}
	var doc struct{ Results []*interopResult }
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("reachd check: %v\n%s\n%s", err, out, stderr)
	}
	got := map[string]*interopResult{}
	for _, r := range doc.Results {
		got[r.Target] = r
	}
	return got
}

// sslscanVersions runs sslscan against 127.0.0.1:port with host as SNI
// and returns the versions it found enabled as a version string.
func sslscanVersions(t *testing.T, bin, host string, port int) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--no-colour", "--xml=-", "--sni-name="+host, "--no-ciphersuites",
		"--no-cipher-details", "--no-groups", "--no-heartbleed", "--no-compression", "--no-renegotiation",
		"--no-fallback", "--no-check-certificate", "--timeout=3", "127.0.0.1:"+strconv.Itoa(port))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("sslscan: %v: %s", err, errb.String())
	}
	// sslscan prints banner lines before the XML on stdout.
	doc := out.Bytes()
	if i := bytes.Index(doc, []byte("<?xml")); i >= 0 {
		doc = doc[i:]
	}
	var x struct {
		Tests []struct {
			Protocols []struct {
				Type    string `xml:"type,attr"`
				Version string `xml:"version,attr"`
				Enabled string `xml:"enabled,attr"`
			} `xml:"protocol"`
		} `xml:"ssltest"`
	}
	if err := xml.Unmarshal(doc, &x); err != nil {
		return "", fmt.Errorf("sslscan XML: %v\n%s", err, out.String())
	}
	if len(x.Tests) != 1 {
		return "", fmt.Errorf("sslscan: %d ssltest elements, want 1\n%s", len(x.Tests), out.String())
	}
	enabled := map[string]bool{}
	for _, p := range x.Tests[0].Protocols {
		if p.Type == "tls" {
			enabled[p.Version] = p.Enabled == "1"
		}
	}
	var b strings.Builder
	for _, v := range interopVersions {
		b.WriteString(map[bool]string{true: "y", false: "n"}[enabled[v]])
	}
	return b.String(), nil
}

// interopScan runs sslscan against every case that has offers set, in
// parallel, and returns the version strings by case id.
func interopScan(t *testing.T, cases []*interopCase) map[string]string {
	t.Helper()
	bin := requireTool(t, "sslscan", "sslscan")
	var mu sync.Mutex
	var wg sync.WaitGroup
	got := map[string]string{}
	sem := make(chan struct{}, 4)
	for _, c := range cases {
		if c.offers == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			v, err := sslscanVersions(t, bin, c.host, c.port)
			if err != nil {
				v = "error: " + err.Error()
			}
			mu.Lock()
			got[c.id()] = v
			mu.Unlock()
		}()
	}
	wg.Wait()
	return got
}

// interopAssert checks every case's result and prints the table.
func interopAssert(t *testing.T, title string, cases []*interopCase, got map[string]*interopResult, scans map[string]string) {
	t.Helper()
	var table strings.Builder
	fmt.Fprintf(&table, "%s\n%-14s %-34s %-8s %-8s %-40s %s\n", title, "server", "config", "sslscan", "reachd", "reachd verdict", "")
	fmt.Fprintf(&table, "%-14s %-34s %-8s %-8s %-40s %s\n", "", "", "0123", "0123", "", "(versions 1.0 1.1 1.2 1.3: y accepted, n not, ? unknown)")
	for _, c := range cases {
		r := got[c.id()]
		scan := scans[c.id()]
		if c.offers == "" {
			scan = "-"
		}
		row := func(versions, verdict, mark string) {
			fmt.Fprintf(&table, "%-14s %-34s %-8s %-8s %-40s %s\n", c.server, c.config, scan, versions, verdict, mark)
		}
		if r == nil {
			row("-", "NO RESULT", "FAIL")
			t.Errorf("%s %s: no result", c.server, c.config)
			continue
		}
		problems := interopProblems(c, r, scan)
		mark := "ok"
		if len(problems) > 0 {
			mark = "FAIL: " + strings.Join(problems, "; ")
			status := 0
			if r.HTTP != nil {
				status = r.HTTP.Status
			}
			t.Errorf("%s %s: %s\n  reachd: success=%v stage=%q reason=%q versions=%s http=%d detail=%q", c.server, c.config,
				strings.Join(problems, "; "), r.Success, r.Stage, r.Reason, r.versions(), status, r.Detail)
		} else if c.note != "" {
			mark = "ok (" + c.note + ")"
		}
		row(r.versions(), r.verdict(), mark)
	}
	t.Log("\n" + table.String())
	var details strings.Builder
	for _, c := range cases {
		if r := got[c.id()]; r != nil && r.Detail != "" {
			fmt.Fprintf(&details, "%-14s %-34s %s\n", c.server, c.config, r.Detail)
		}
	}
	t.Log("reachd's details:\n" + details.String())
}

// interopProblems lists how a result differs from its case.
func interopProblems(c *interopCase, r *interopResult, scan string) []string {
	var p []string
	if c.offers != "" && scan != c.offers {
		p = append(p, fmt.Sprintf("sslscan found %s, the server is configured for %s", scan, c.offers))
	}
	if c.reason == "" {
		if !r.Success {
			p = append(p, "want success")
		}
		if c.intercepted != (r.TLS != nil && r.TLS.Intercepted) {
			p = append(p, fmt.Sprintf("want intercepted=%v", c.intercepted))
		}
		if c.status != 0 && (r.HTTP == nil || r.HTTP.Status != c.status) {
			p = append(p, fmt.Sprintf("want HTTP %d", c.status))
		}
	} else if r.Success || r.Stage != c.stage || r.Reason != c.reason {
		p = append(p, fmt.Sprintf("want %s %s", c.stage, c.reason))
	}
	if c.detail != "" && !strings.Contains(r.Detail, c.detail) {
		p = append(p, fmt.Sprintf("want %q in the detail", c.detail))
	}
	if c.versions != "" {
		got := r.versions()
		for i := range interopVersions {
			w, g := c.versions[i], got[i]
			if w == g || (w == '~' && (g == 'y' || g == '?')) || (w == '.' && (g == 'n' || g == '?')) {
				continue
			}
			p = append(p, fmt.Sprintf("want versions %s", c.versions))
			break
		}
		// reachd and sslscan agree on every version reachd has a sample
		// for, or the case says why not.
		if c.offers != "" && c.note == "" {
			for i := range interopVersions {
				if got[i] != '?' && len(scan) == 4 && got[i] != scan[i] {
					p = append(p, fmt.Sprintf("reachd says %s, sslscan %s, and no note explains it", got, scan))
					break
				}
			}
		}
	}
	return p
}

// interopProc starts a server as a child process in its own process
// group and kills the group when the test ends. It waits until every
// port accepts TCP connections. Its output and logs (files) are shown
// when the test fails and REACHD_INTEROP_LOGS is set: the matrix fails
// case by case, and the servers' logs of every case would drown the table.
func interopProc(t *testing.T, name string, ports []int, logs []string, argv ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out := &lockedWriter{w: &strings.Builder{}}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("%s (process group %d) did not die within 10s of SIGKILL", name, cmd.Process.Pid)
		}
		if t.Failed() && os.Getenv("REACHD_INTEROP_LOGS") != "" {
			var b strings.Builder
			for _, l := range logs {
				data, _ := os.ReadFile(l)
				fmt.Fprintf(&b, "--- %s\n%s\n", filepath.Base(l), data)
			}
			out.mu.Lock()
			t.Logf("%s output:\n%s\n%s", name, out.w, b.String())
			out.mu.Unlock()
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for _, port := range ports {
		for {
			c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case err := <-done:
				done <- err
				out.mu.Lock()
				t.Fatalf("%s exited before listening on %d: %v\n%s", name, port, err, out.w)
			case <-time.After(50 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not listening on %d within 30s", name, port)
			}
		}
	}
	return cmd
}
