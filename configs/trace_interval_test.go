package configs

import (
	"strings"
	"testing"
	"time"
)

func TestTraceInterval(t *testing.T) {
	for _, tt := range []struct {
		body string
		want time.Duration
	}{
		{"", DefaultTraceInterval},
		{"[defaults]\ntrace_interval = \"0\"\n", 0},
		{"[defaults]\ntrace_interval = \"30m\"\n", 30 * time.Minute},
	} {
		cfg, err := Load(writeConfig(t, tt.body), testOptions(t, nil))
		if err != nil {
			t.Fatalf("%q: %v", tt.body, err)
		}
		if cfg.Defaults.TraceInterval != tt.want {
			t.Errorf("%q: trace interval %s, want %s", tt.body, cfg.Defaults.TraceInterval, tt.want)
		}
	}
	for body, want := range map[string]string{
		"[defaults]\ntrace_interval = \"10s\"\n": `:2: defaults.trace_interval: "10s" is outside 1m to 720h (or "0" for no path trace)`,
		"[defaults]\ntrace_interval = \"x\"\n":   `:2: defaults.trace_interval: "x" is not a duration`,
	} {
		file := writeConfig(t, body)
		_, err := Load(file, testOptions(t, nil))
		if err == nil || !strings.Contains(err.Error(), file+want) {
			t.Errorf("%q: error %v, want %q", body, err, file+want)
		}
	}
}
