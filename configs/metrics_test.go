package configs

import (
	"strings"
	"testing"
)

func TestMetricsTable(t *testing.T) {
	opts := testOptions(t, nil)
	cfg, err := Load(writeConfig(t, "site = \"x\"\n"), opts)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Metrics.StageHistograms {
		t.Error("stage histograms are on by default; DESIGN §7 makes them opt-in")
	}
	cfg, err = Load(writeConfig(t, "site = \"x\"\n[metrics]\nstage_histograms = true\n"), opts)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Metrics.StageHistograms {
		t.Error("[metrics] stage_histograms = true was not taken")
	}
	file := writeConfig(t, "site = \"x\"\n[metrics]\nstage_histogram = true\n")
	if _, err := Load(file, opts); err == nil || !strings.Contains(err.Error(), file+`:3: unknown key "metrics.stage_histogram"`) {
		t.Errorf("a misspelt [metrics] key: %v", err)
	}
}
