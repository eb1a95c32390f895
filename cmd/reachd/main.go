// Command reachd tests, on a schedule, whether this site can reach the
// cloud endpoints its security and endpoint-management agents depend on,
// and exports the results to Prometheus.
package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/promslog"
	promslogflag "github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"
)

// Exit codes of check and validate.
const (
	exitOK      = 0
	exitFailed  = 1
	exitConfig  = 2
	defaultAddr = ":9716"
)

func main() {
	os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr))
}

// terminated is what kingpin's terminate function panics with after it
// printed help or the version, so that Main returns instead of running the
// command that the help was asked about.
type terminated struct{ code int }

// Main runs reachd with args and returns the exit code. --help, -h,
// --help-long, --help-man and --version print and return without running
// anything: kingpin's actions for them call terminate, which unwinds here.
func Main(args []string, stdout, stderr io.Writer) (code int) {
	defer func() {
		if r := recover(); r != nil {
			t, ok := r.(terminated)
			if !ok {
				panic(r)
			}
			code = t.code
		}
	}()
	app := kingpin.New("reachd", "Tests whether this site reaches the cloud endpoints of its security and endpoint-management agents, and exports the results to Prometheus.")
	app.Version(version.Print("reachd"))
	app.HelpFlag.Short('h')
	app.UsageWriter(stdout)
	app.ErrorWriter(stderr)
	app.Terminate(func(code int) { panic(terminated{code}) })
	logCfg := &promslog.Config{Writer: stderr}
	promslogflag.AddFlags(app, logCfg)

	runCmd := app.Command("run", "Run the daemon (the default).").Default()
	var ro runOptions
	runCmd.Flag("config.file", "reachd config file; none: the embedded default, which probes the real vendor endpoints.").StringVar(&ro.configFile)
	ro.web = kingpinflag.AddFlags(runCmd, defaultAddr)
	runCmd.Flag("web.enable-lifecycle", "Allow reloading through POST /-/reload.").BoolVar(&ro.lifecycle)
	runCmd.Flag("web.external-url", "The URL under which reachd is reached through a reverse proxy (https://proxy.example/reachd/); redirects point there, and the route prefix defaults to its path.").StringVar(&ro.routes.externalURL)
	runCmd.Flag("web.route-prefix", "Prefix of every endpoint (/reachd serves /reachd/metrics). Default: the path of --web.external-url, else /.").StringVar(&ro.routes.prefix)

	checkCmd := app.Command("check", "Probe once, print a report and exit: 0 all passed, 1 some failed, 2 usage or config error.")
	var co checkOptions
	checkCmd.Flag("config.file", "reachd config file; none: the embedded default.").StringVar(&co.configFile)
	checkCmd.Flag("format", "Output format: text (colour on a terminal unless NO_COLOR is set), json (as /api/v1/results), markdown (plain, for a vendor support ticket), or chat (markdown with ✅/❌ for a chat tool).").Default("text").EnumVar(&co.format, "text", "json", "markdown", "chat")
	checkCmd.Flag("failed", "Show only the probes that failed; the summary still counts all.").BoolVar(&co.failed)
	checkCmd.Flag("target", "Only targets of this name (or vendor/region/name).").StringVar(&co.target)
	checkCmd.Flag("vendor", "Only targets of this vendor.").StringVar(&co.vendor)
	checkCmd.Flag("region", "Only targets of this region.").StringVar(&co.region)
	checkCmd.Flag("path", "Only this path.").StringVar(&co.path)
	checkCmd.Flag("host", "Ad hoc: probe HOST[:PORT] (port 443), or a URL (https://host/path, http://host for plain HTTP), instead of the config's targets.").StringVar(&co.host)
	checkCmd.Flag("proxy", "Ad hoc: go through this http:// or https:// proxy.").StringVar(&co.proxy)
	checkCmd.Flag("proxy-user", "Ad hoc: proxy username; the password comes from $REACHD_PROXY_PASSWORD.").StringVar(&co.proxyUser)
	checkCmd.Flag("resolver", "Ad hoc: DNS server ADDR[:PORT] instead of /etc/resolv.conf.").StringVar(&co.resolver)
	checkCmd.Flag("ca-file", "Ad hoc: PEM file of a CA to trust: with --proxy, the proxy's TLS-inspection CA (reported as interception); without, a private CA the host legitimately uses.").StringVar(&co.caFile)
	checkCmd.Flag("timeout", "Ad hoc: timeout of the whole probe.").Default("10s").DurationVar(&co.timeout)
	checkCmd.Flag("wpad", "Instead of probing, look for the PAC file by WPAD (http://wpad.<search domain>/wpad.dat through the first resolver) and report every candidate.").BoolVar(&co.wpad)

	validateCmd := app.Command("validate", "Load and validate the config and target files; print every problem; exit 0 or 2.")
	var vo validateOptions
	validateCmd.Flag("config.file", "reachd config file; none: the embedded default.").StringVar(&vo.configFile)
	validateCmd.Flag("catalog.dir", "Also validate the target files in this directory.").StringVar(&vo.catalogDir)

	targetsCmd := app.Command("targets", "List what a config probes, per path, as the allow-list a firewall or proxy team needs; without a config, the vendor catalog.")
	var to targetsOptions
	targetsCmd.Flag("config.file", "List what this config probes, one row per target and path, with the proxy each path goes through.").StringVar(&to.configFile)
	targetsCmd.Flag("vendor", "Only this vendor.").StringVar(&to.vendor)
	targetsCmd.Flag("region", "Only this region (any case).").StringVar(&to.region)
	targetsCmd.Flag("format", "Output format: table, json or csv.").Default("table").EnumVar(&to.format, "table", "text", "json", "csv")
	targetsCmd.Flag("catalog.dir", "Directory of target files that extend or override the embedded catalog.").StringVar(&to.catalogDir)

	versionCmd := app.Command("version", "Print the version.")

	cmd, err := app.Parse(args)
	if err != nil {
		fmt.Fprintf(stderr, "reachd: %v (see reachd --help)\n", err)
		return exitConfig
	}
	logger := promslog.New(logCfg)
	slog.SetDefault(logger) // the probe package logs the rare once-only notes (a kernel that cannot trace) through it
	switch cmd {
	case runCmd.FullCommand():
		return run(ro, logger)
	case checkCmd.FullCommand():
		if co.wpad {
			return checkWPAD(co, stdout, stderr)
		}
		return check(co, logger, stdout, stderr)
	case validateCmd.FullCommand():
		return validate(vo, stdout, stderr)
	case targetsCmd.FullCommand():
		return listTargets(to, stdout, stderr)
	case versionCmd.FullCommand():
		fmt.Fprintln(stdout, version.Print("reachd"))
	}
	return exitOK
}

// userAgent is sent with every HTTP request a probe makes.
func userAgent() string { return "reachd/" + version.Version }

func init() {
	if version.Version == "" {
		version.Version = "dev"
	}
}
