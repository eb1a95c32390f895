package configs

import "github.com/reachd/reachd/targets"

// spec is the config file as written, before validation.
type spec struct {
	Site       string         `toml:"site"`
	Direct     *bool          `toml:"direct"`
	CatalogDir string         `toml:"catalog_dir"`
	Defaults   defaultsSpec   `toml:"defaults"`
	Resolver   []resolverSpec `toml:"resolver"`
	Path       []pathSpec     `toml:"path"`
	Trust      trustSpec      `toml:"trust"`
	Metrics    metricsSpec    `toml:"metrics"`
	Use        []useSpec      `toml:"use"`
	Target     []targets.Spec `toml:"target"`
}

type defaultsSpec struct {
	Interval         string `toml:"interval"`
	Timeout          string `toml:"timeout"`
	TLSMinVersion    string `toml:"tls_min_version"`
	TLSSweepInterval string `toml:"tls_sweep_interval"`
	Concurrency      *int   `toml:"concurrency"`
}

type resolverSpec struct {
	Name     string   `toml:"name"`
	Servers  []string `toml:"servers"`
	Protocol string   `toml:"protocol"`
}

type pathSpec struct {
	Name         string `toml:"name"`
	Proxy        string `toml:"proxy"`
	Username     string `toml:"username"`
	Password     string `toml:"password"` // rejected: never inline
	PasswordFile string `toml:"password_file"`
	PasswordEnv  string `toml:"password_env"`
	CAFile       string `toml:"ca_file"`
}

type metricsSpec struct {
	StageHistograms bool `toml:"stage_histograms"`
}

type trustSpec struct {
	CAFiles []string `toml:"ca_files"`
}

type useSpec struct {
	Vendor string   `toml:"vendor"`
	Region string   `toml:"region"`
	Paths  []string `toml:"paths"`
}
