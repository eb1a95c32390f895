package main

import (
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"
)

// reachd targets --config.file lists the allow-list: each target over each
// path, with the proxy the path goes through, the source and the date;
// the config's secrets are not needed to list it.
func TestTargetsOfConfig(t *testing.T) {
	cfg := writeFile(t, t.TempDir(), "reachd.toml", loopbackConfig+`[[path]]
name = "corp"
proxy = "http://127.0.0.1:3128"
username = "u"
password_file = "/nonexistent/proxy.pass"
[[use]]
vendor = "trendmicro-visionone"
region = "jp"
paths = ["corp"]
[[target]]
name = "crl"
host = "127.0.0.1"
port = 80
checks = ["dns", "tcp", "http"]
paths = ["direct"]
`)
	code, stdout, stderr := reachd(t, "targets", "--config.file", cfg, "--format", "csv")
	if code != exitOK {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	rows, err := csv.NewReader(strings.NewReader(stdout)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(rows[0], ","); got != "vendor,region,name,host,port,scheme,path,proxy,purpose,source,checked" {
		t.Errorf("header %q", got)
	}
	byName := map[string][]string{}
	for _, r := range rows[1:] {
		byName[r[2]+"/"+r[6]] = r
	}
	if r := byName["basecamp-api/corp"]; r == nil || r[3] != "api-ap2.xbc.trendmicro.com" || r[4] != "443" || r[5] != "https" || r[7] != "127.0.0.1:3128" ||
		!strings.HasPrefix(r[9], "https://") || r[10] != "2025-12-09" {
		t.Errorf("basecamp-api over corp: %q", r)
	}
	if _, ok := byName["basecamp-api/direct"]; ok {
		t.Error("a catalog target listed on a path [[use]] did not pick")
	}
	if r := byName["crl/direct"]; r == nil || r[5] != "http" || r[7] != "direct" || !strings.Contains(r[9], "local [[target]] in "+cfg) || r[10] != "" {
		t.Errorf("local target: %q", r)
	}

	code, stdout, _ = reachd(t, "targets", "--config.file", cfg, "--format", "json", "--region", "LOCAL")
	var js []targetRow
	if err := json.Unmarshal([]byte(stdout), &js); code != exitOK || err != nil || len(js) != 1 || js[0].Name != "crl" || js[0].Scheme != "http" {
		t.Errorf("json, region in another case: exit %d %v %+v", code, err, js)
	}
	code, stdout, _ = reachd(t, "targets", "--config.file", cfg)
	if code != exitOK || !strings.HasPrefix(stdout, "VENDOR") || !strings.Contains(stdout, "PROXY") {
		t.Errorf("table: exit %d\n%s", code, stdout)
	}
}

func TestTargetsCatalog(t *testing.T) {
	code, stdout, _ := reachd(t, "targets", "--vendor", "trendmicro-visionone", "--region", "JP", "--format", "csv")
	if code != exitOK || !strings.HasPrefix(stdout, "vendor,region,name,host,port,scheme,purpose,source,checked\n") || !strings.Contains(stdout, ",2025-12-09\n") {
		t.Errorf("exit %d\n%s", code, stdout)
	}
	code, _, stderr := reachd(t, "targets", "--vendor", "trendmicro-visionone", "--region", "mars")
	if code != exitConfig || !strings.Contains(stderr, `vendor "trendmicro-visionone" has no region "mars" (it has: `) || !strings.Contains(stderr, "jp") {
		t.Errorf("unknown region: exit %d %s", code, stderr)
	}
	code, _, stderr = reachd(t, "targets", "--vendor", "nobody")
	if code != exitConfig || !strings.Contains(stderr, `no vendor "nobody" (vendors: `) {
		t.Errorf("unknown vendor: exit %d %s", code, stderr)
	}
}
