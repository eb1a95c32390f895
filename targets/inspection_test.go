package targets

import (
	"strings"
	"testing"
)

const inspectionHead = "vendor = \"acme\"\nregion = \"jp\"\ntitle = \"t\"\nsource = \"s\"\nchecked = 2025-01-01\n\n"

func TestInspectionKey(t *testing.T) {
	f, err := ParseFile("acme/jp.toml", []byte(inspectionHead+"[[target]]\nname = \"a\"\nhost = \"a.example\"\npurpose = \"p\"\ninspection = \"breaks\"\n\n[[target]]\nname = \"b\"\nhost = \"b.example\"\npurpose = \"p\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if a, b := f.Targets[0], f.Targets[1]; a.Inspection != InspectionBreaks || b.Inspection != "" {
		t.Errorf("inspection a %q b %q", a.Inspection, b.Inspection)
	}

	tests := []struct{ name, target, want string }{
		{"unknown value", "inspection = \"tolerated\"\n", `acme/jp.toml:11: target "a": inspection: "tolerated" is not a known value (known: "breaks")`},
		{"without tls", "checks = [\"dns\", \"tcp\"]\ninspection = \"breaks\"\n", `acme/jp.toml:12: target "a": inspection: set without the tls check`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseFile("acme/jp.toml", []byte(inspectionHead+"[[target]]\nname = \"a\"\nhost = \"a.example\"\npurpose = \"p\"\n"+tt.target))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
}

// TestCatalogInspection checks that the connections whose agents are known
// to break under TLS inspection say so — CrowdStrike's sensor proxy (the
// sensor pins its certificates) and Defender's core services under
// *.endpoint.security.microsoft.com (they need inspection exclusions) —
// and no other target does.
func TestCatalogInspection(t *testing.T) {
	c, err := Embedded()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range c.Files() {
		for _, tg := range f.Targets {
			want := ""
			if tg.Vendor == "crowdstrike-falcon" && tg.Name == "sensor-proxy" ||
				tg.Vendor == "microsoft-defender-endpoint" && strings.HasSuffix(tg.Host, ".endpoint.security.microsoft.com") {
				want = InspectionBreaks
				n++
			}
			if tg.Inspection != want {
				t.Errorf("%s (%s): inspection %q, want %q", tg.ID(), tg.Pos, tg.Inspection, want)
			}
		}
	}
	if n == 0 {
		t.Error("no catalog target has inspection = \"breaks\"")
	}
}
