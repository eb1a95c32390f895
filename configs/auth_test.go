package configs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPathAuth: auth = basic | ntlm | negotiate, with the key material
// each needs; every problem is reported at its key's line.
func TestPathAuth(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"proxy.pass", "svc.keytab", "krb5.conf"} {
		writeStandIn(t, filepath.Join(dir, f))
	}
	const head = "site = \"x\"\n[[path]]\nname = \"p\"\nproxy = \"http://proxy.reachd.test:3128\"\n"
	tests := []struct {
		name, body string
		want       string // an error at line:text, or "" for a valid path
		auth       string
	}{
		{"username alone is basic", "username = \"svc\"\npassword_file = \"proxy.pass\"\n", "", AuthBasic},
		{"ntlm", "auth = \"ntlm\"\nusername = 'CORP\\svc'\npassword_file = \"proxy.pass\"\n", "", AuthNTLM},
		{"negotiate from a keytab", "auth = \"negotiate\"\nkeytab = \"svc.keytab\"\nprincipal = \"svc@CORP.EXAMPLE\"\nkrb5_conf = \"krb5.conf\"\n", "", AuthNegotiate},
		{"negotiate from a password", "auth = \"negotiate\"\nusername = \"svc@CORP.EXAMPLE\"\npassword_file = \"proxy.pass\"\n", "", AuthNegotiate},
		{"negotiate without key material", "auth = \"negotiate\"\n", ":5: path.auth: \"negotiate\" needs Kerberos key material", ""},
		{"a keytab without a principal", "auth = \"negotiate\"\nkeytab = \"svc.keytab\"\n", ":6: path.principal: missing", ""},
		{"a missing keytab", "auth = \"negotiate\"\nkeytab = \"nope.keytab\"\nprincipal = \"svc\"\n", ":6: path.keytab:", ""},
		{"ntlm without a password", "auth = \"ntlm\"\nusername = \"svc\"\n", ":5: path.auth: \"ntlm\" needs username and password_file", ""},
		{"a keytab on an ntlm path", "auth = \"ntlm\"\nusername = \"svc\"\npassword_file = \"proxy.pass\"\nkeytab = \"svc.keytab\"\n", ":8: path.keytab: only for auth = \"negotiate\"", ""},
		{"an unknown scheme", "auth = \"digest\"\n", ":5: path.auth: \"digest\": use basic, ntlm or negotiate", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(dir, "reachd.toml")
			if err := os.WriteFile(file, []byte(head+tt.body), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := Load(file, testOptions(t, nil))
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				p := cfg.Paths[len(cfg.Paths)-1]
				if p.Auth != tt.auth {
					t.Errorf("auth %q, want %q", p.Auth, tt.auth)
				}
				if tt.auth == AuthNegotiate && p.Keytab != "" && p.Keytab != filepath.Join(dir, "svc.keytab") {
					t.Errorf("keytab %q, want it relative to the config", p.Keytab)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), file+tt.want) {
				t.Errorf("error %v, want %s%s", err, file, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "stand-in-password") {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}
