//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reachd/reachd/probe/probetest"
)

// startAuthSquid runs squid with the auth lines of auth on
// 127.0.0.1:port, allowing CONNECT only to loopback. files are copied
// into squid's directory (the proxy user cannot read a test's temporary
// directory), and "%DIR%" in auth and env names it. env is added to
// squid's environment (its helpers inherit it).
func startAuthSquid(t *testing.T, dnsAddr, auth string, files map[string]string, env ...string) (port int, dir string) {
	t.Helper()
	requireRoot(t)
	bin := requireTool(t, "squid", squidPkg)
	proxyUser, err := user.Lookup("proxy")
	if err != nil {
		t.Fatalf("no proxy user to run squid as (%v): install %s", err, squidPkg)
	}
	uid, _ := strconv.Atoi(proxyUser.Uid)
	gid, _ := strconv.Atoi(proxyUser.Gid)
	dir, err = os.MkdirTemp("", "reachd-authsquid-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for name, from := range files {
		data, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, dir, name, string(data))
	}
	auth = strings.ReplaceAll(auth, "%DIR%", dir)
	for i := range env {
		env[i] = strings.ReplaceAll(env[i], "%DIR%", dir)
	}
	port = freePort(t)
	writeFile(t, dir, "squid.conf", fmt.Sprintf(`http_port 127.0.0.1:%d
icp_port 0
htcp_port 0
snmp_port 0
dns_nameservers %s
hosts_file none
visible_hostname reachd-e2e
cache_effective_user proxy
pid_filename %[3]s/squid.pid
cache_log %[3]s/cache.log
access_log stdio:%[3]s/access.log
cache_store_log none
logfile_rotate 0
pinger_enable off
cache deny all
cache_mem 8 MB
coredump_dir %[3]s
netdb_filename none
shutdown_lifetime 0 seconds
acl to_loopback dst 127.0.0.0/8
acl to_anywhere dst all
http_access deny to_anywhere !to_loopback
%s
`, port, dnsRelay(t, dnsAddr), dir, auth))
	if err := chownTree(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-N", "-f", filepath.Join(dir, "squid.conf"))
	cmd.Env = append(os.Environ(), env...)
	startTool(t, "squid", port, cmd)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("cache.log:\n%s\naccess.log:\n%s", readFile(dir, "cache.log"), readFile(dir, "access.log"))
		}
	})
	return port, dir
}

// TestNTLMThroughSquid: reachd speaks NTLMv2 to squid over one
// connection (NEGOTIATE, squid's 407 CHALLENGE, AUTHENTICATE, then the
// tunnel), on a proxy path and to the proxy a PAC picks. squid's ntlm_fake_auth helper runs the real handshake but
// accepts any password, so the refused case is a user squid's ACL does
// not admit: squid answers its AUTHENTICATE with a fresh 407.
func TestNTLMThroughSquid(t *testing.T) {
	requireFile(t, filepath.Join(squidLibexec, "ntlm_fake_auth"), squidPkg)
	labCA := probetest.NewCA(t, "E2E Lab Root CA")
	good := probetest.NewTLSServer(t, probetest.Issuer(labCA), probetest.Hosts("good.reachd.test"))
	dnsSrv := probetest.NewDNSServer(t, probetest.Records{"good.reachd.test": {A: []string{"127.0.0.1"}}})
	port, sqDir := startAuthSquid(t, dnsSrv.Addr, `auth_param ntlm program /usr/lib/squid/ntlm_fake_auth -S
auth_param ntlm children 2 startup=1 idle=1
acl ntlm_users proxy_auth REQUIRED
acl svc_user proxy_auth svc
http_access deny !ntlm_users
http_access deny !svc_user
http_access allow all`, nil)
	dir := t.TempDir()
	proxy := "http://127.0.0.1:" + strconv.Itoa(port)
	pass := writeFile(t, dir, "svc.pass", "Ntlm-s3cret-pw\n")
	os.Chmod(pass, 0o600)
	cfg := fmt.Sprintf(`site = "ntlm-e2e"
direct = false
[defaults]
timeout = "5s"
[[resolver]]
name = "lab"
servers = [%q]
[trust]
ca_files = [%q]
[[path]]
name = "ntlm"
proxy = %q
auth = "ntlm"
username = 'CORP\svc'
password_file = %q
[[path]]
name = "ntlm-intruder"
proxy = %q
auth = "ntlm"
username = 'CORP\intruder'
password_file = %q
[[path]]
name = "basic"
proxy = %q
username = 'CORP\svc'
password_file = %q
[[path]]
name = "none"
proxy = %q
[[path]]
name = "pac-ntlm"
proxy = "pac"
pac_file = %q
auth = "ntlm"
username = 'CORP\svc'
password_file = %q
[[target]]
vendor = "acme"
region = "jp"
name = "good"
host = "good.reachd.test"
port = %d
http = { expect_status = [200], expect_body = "^ok" }
`, dnsSrv.Addr, writeFile(t, dir, "lab.pem", string(labCA.PEM)), proxy, pass, proxy, pass, proxy, pass, proxy,
		writeFile(t, dir, "proxy.pac", `function FindProxyForURL(url, host) { return "PROXY 127.0.0.1:`+strconv.Itoa(port)+`"; }`), pass, good.Port)
	got := checkVerdicts(t, dir, cfg, []verdict{
		{"good/ntlm", "", "", nil},
		// The proxy a PAC picks gets the path's scheme too (it got Basic).
		{"good/pac-ntlm", "", "", nil},
		{"good/ntlm-intruder", "proxy", "proxy_auth_rejected", []string{"rejected the configured credentials (407; offers NTLM)"}},
		{"good/basic", "proxy", "proxy_auth_rejected", []string{"(407; offers NTLM)"}},
		{"good/none", "proxy", "proxy_auth_required", []string{"demands credentials (407; offers NTLM) and the path has none"}},
	})
	for k, r := range got {
		if strings.Contains(r.Detail, "Ntlm-s3cret-pw") {
			t.Errorf("%s: the detail shows the password", k)
		}
	}
	// squid saw user svc through the NTLM tunnel.
	if log := readFile(sqDir, "access.log"); !strings.Contains(log, "TCP_TUNNEL/200") || !strings.Contains(log, " svc ") {
		t.Errorf("squid's access.log lacks an NTLM tunnel as svc:\n%s", log)
	}
}

// kdc is a real MIT krb5kdc for realm REACHD.TEST on 127.0.0.1.
type kdc struct {
	dir, conf string // conf: the krb5.conf clients use
}

func (k *kdc) admin(t *testing.T, query string) {
	t.Helper()
	cmd := exec.Command("kadmin.local", "-r", "REACHD.TEST", "-q", query)
	cmd.Env = append(os.Environ(), "KRB5_CONFIG="+k.conf, "KRB5_KDC_PROFILE="+filepath.Join(k.dir, "kdc.conf"))
	if out, err := cmd.CombinedOutput(); err != nil || strings.Contains(string(out), "rror") {
		t.Fatalf("kadmin.local -q %q: %v\n%s", query, err, out)
	}
}

func startKDC(t *testing.T) *kdc {
	t.Helper()
	requireRoot(t)
	bin := requireTool(t, "krb5kdc", "krb5-kdc")
	requireTool(t, "kadmin.local", "krb5-admin-server")
	dir := t.TempDir()
	port := freePort(t)
	k := &kdc{dir: dir}
	k.conf = writeFile(t, dir, "krb5.conf", fmt.Sprintf(`[libdefaults]
 default_realm = REACHD.TEST
 dns_lookup_kdc = false
 dns_lookup_realm = false
 rdns = false
 udp_preference_limit = 1
[realms]
 REACHD.TEST = {
  kdc = 127.0.0.1:%d
 }
`, port))
	writeFile(t, dir, "kdc.conf", fmt.Sprintf(`[kdcdefaults]
 kdc_listen = 127.0.0.1:%[1]d
 kdc_tcp_listen = 127.0.0.1:%[1]d
[realms]
 REACHD.TEST = {
  database_name = %[2]s/principal
  key_stash_file = %[2]s/stash
  acl_file = %[2]s/kadm5.acl
  supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
 }
[logging]
 kdc = FILE:%[2]s/kdc.log
`, port, dir))
	writeFile(t, dir, "kadm5.acl", "")
	env := append(os.Environ(), "KRB5_CONFIG="+k.conf, "KRB5_KDC_PROFILE="+filepath.Join(dir, "kdc.conf"))
	create := exec.Command("kdb5_util", "create", "-s", "-r", "REACHD.TEST", "-P", "kdc-master-pw")
	create.Env = env
	if out, err := create.CombinedOutput(); err != nil {
		t.Fatalf("kdb5_util create: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-n", "-r", "REACHD.TEST")
	cmd.Env = env
	startTool(t, "krb5kdc", port, cmd)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kdc.log:\n%s", readFile(dir, "kdc.log"))
		}
	})
	return k
}

// TestNegotiateThroughSquid: reachd logs in to a real MIT KDC from a
// keytab, and authenticates to squid with Kerberos through SPNEGO; squid
// checks the ticket with negotiate_kerberos_auth and its own keytab. A
// stale keytab (its key replaced since) is refused by the KDC
// (KDC_ERR_PREAUTH_FAILED): proxy_auth_rejected.
func TestNegotiateThroughSquid(t *testing.T) {
	requireFile(t, filepath.Join(squidLibexec, "negotiate_kerberos_auth"), squidPkg)
	k := startKDC(t)
	k.admin(t, "addprinc -randkey HTTP/proxy.reachd.test")
	k.admin(t, "ktadd -k "+filepath.Join(k.dir, "proxy.keytab")+" HTTP/proxy.reachd.test")
	k.admin(t, "addprinc -randkey +requires_preauth svc") // as Active Directory requires
	stale := filepath.Join(k.dir, "stale.keytab")
	k.admin(t, "ktadd -k "+stale+" svc")
	keytab := filepath.Join(k.dir, "svc.keytab")
	k.admin(t, "ktadd -k "+keytab+" svc") // a new key: stale.keytab's no longer works

	labCA := probetest.NewCA(t, "E2E Lab Root CA")
	good := probetest.NewTLSServer(t, probetest.Issuer(labCA), probetest.Hosts("good.reachd.test"))
	dnsSrv := probetest.NewDNSServer(t, probetest.Records{
		"good.reachd.test":  {A: []string{"127.0.0.1"}},
		"proxy.reachd.test": {A: []string{"127.0.0.1"}},
	})
	port, sqDir := startAuthSquid(t, dnsSrv.Addr, `auth_param negotiate program /usr/lib/squid/negotiate_kerberos_auth -s GSS_C_NO_NAME -k %DIR%/proxy.keytab
auth_param negotiate children 2 startup=1 idle=1
auth_param negotiate keep_alive on
acl krb_users proxy_auth REQUIRED
http_access deny !krb_users
http_access allow all`, map[string]string{"proxy.keytab": filepath.Join(k.dir, "proxy.keytab"), "krb5.conf": k.conf},
		"KRB5_CONFIG=%DIR%/krb5.conf", "KRB5_KTNAME=%DIR%/proxy.keytab")

	dir := t.TempDir()
	proxy := "http://proxy.reachd.test:" + strconv.Itoa(port)
	cfg := fmt.Sprintf(`site = "negotiate-e2e"
direct = false
[defaults]
timeout = "5s"
[[resolver]]
name = "lab"
servers = [%q]
[trust]
ca_files = [%q]
[[path]]
name = "krb"
proxy = %q
auth = "negotiate"
keytab = %q
principal = "svc@REACHD.TEST"
krb5_conf = %q
[[path]]
name = "krb-stale"
proxy = %q
auth = "negotiate"
keytab = %q
principal = "svc@REACHD.TEST"
krb5_conf = %q
[[path]]
name = "none"
proxy = %q
[[target]]
vendor = "acme"
region = "jp"
name = "good"
host = "good.reachd.test"
port = %d
http = { expect_status = [200], expect_body = "^ok" }
`, dnsSrv.Addr, writeFile(t, dir, "lab.pem", string(labCA.PEM)), proxy, keytab, k.conf, proxy, stale, k.conf, proxy, good.Port)
	checkVerdicts(t, dir, cfg, []verdict{
		{"good/krb", "", "", nil},
		{"good/krb-stale", "proxy", "proxy_auth_rejected", []string{"KDC_ERR_PREAUTH_FAILED"}},
		{"good/none", "proxy", "proxy_auth_required", []string{"(407; offers Negotiate) and the path has none"}},
	})
	// squid checked the ticket: the tunnel is logged as svc@REACHD.TEST.
	if log := readFile(sqDir, "access.log"); !strings.Contains(log, "TCP_TUNNEL/200") || !strings.Contains(log, "svc@REACHD.TEST") {
		t.Errorf("squid's access.log lacks a Kerberos tunnel as svc@REACHD.TEST:\n%s", log)
	}

	// validate rejects a negotiate path without key material, with file:line.
	bad := writeFile(t, dir, "bad.toml", fmt.Sprintf("site = \"x\"\n[[path]]\nname = \"krb\"\nproxy = %q\nauth = \"negotiate\"\n", proxy))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code, _, stderr := runReachd(t, ctx, nil, "validate", "--config.file", bad)
	if want := bad + ":5:"; code != 2 || !strings.Contains(stderr, want) || !strings.Contains(stderr, "needs Kerberos key material") {
		t.Errorf("validate: exit %d, want 2 and %q with the missing key material\n%s", code, want, stderr)
	}
}
