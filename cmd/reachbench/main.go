// Command reachbench measures what reachd costs: CPU per full probe
// against the floor of a bare Go loop doing the same work, probes per
// second achieved against planned, memory per 1,000 targets, the /metrics
// scrape, scheduler delay, skipped runs, and start-to-ready time.
//
// Everything runs on loopback: the HTTPS and DNS servers in a process of
// their own (so their CPU is not counted), reachd as the real binary.
//
//	go build -o bin/reachd ./cmd/reachd && go run ./cmd/reachbench --reachd bin/reachd --targets 1000
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	reachd        string
	targets       int
	interval      time.Duration
	duration      time.Duration
	floorN        int
	scrapes       int
	concurrency   int
	sweepInterval time.Duration
	format        string
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		fs := flag.NewFlagSet("serve", flag.ExitOnError)
		dir := fs.String("dir", "", "directory for the CA")
		info := fs.String("info", "", "file to write the addresses to")
		fs.Parse(os.Args[2:])
		if err := serve(*dir, *info); err != nil {
			fmt.Fprintln(os.Stderr, "reachbench serve:", err)
			os.Exit(1)
		}
		return
	}
	var o options
	flag.StringVar(&o.reachd, "reachd", "bin/reachd", "the reachd binary to measure")
	flag.IntVar(&o.targets, "targets", 1000, "targets to configure")
	flag.DurationVar(&o.interval, "interval", 30*time.Second, "probe interval")
	flag.DurationVar(&o.duration, "duration", time.Minute, "how long to measure, after the first runs")
	flag.IntVar(&o.floorN, "floor", 2000, "iterations of the bare-loop floor")
	flag.IntVar(&o.scrapes, "scrapes", 5, "scrapes of /metrics to time")
	flag.IntVar(&o.concurrency, "concurrency", 32, "reachd [defaults] concurrency")
	flag.DurationVar(&o.sweepInterval, "sweep-interval", 24*time.Hour, "tls_sweep_interval (long: measure the steady state without sweeps)")
	flag.StringVar(&o.format, "format", "text", "text or json")
	flag.Parse()
	rep, err := run(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "reachbench:", err)
		os.Exit(1)
	}
	if o.format == "json" {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
		return
	}
	rep.print(os.Stdout)
}

// report holds every figure reachbench measures.
type report struct {
	Targets           int       `json:"targets"`
	IntervalSeconds   float64   `json:"interval_seconds"`
	HotFloorCPUMs     float64   `json:"floor_back_to_back_cpu_ms_per_probe"`
	FloorCPUMs        float64   `json:"floor_cpu_ms_per_probe"`
	ReachdCPUMs       float64   `json:"reachd_cpu_ms_per_probe"`
	Ratio             float64   `json:"ratio_to_floor"`
	PlannedPerSecond  float64   `json:"probes_per_second_planned"`
	AchievedPerSecond float64   `json:"probes_per_second_achieved"`
	ReadySeconds      float64   `json:"start_to_ready_seconds"`
	WarmupSeconds     float64   `json:"first_runs_done_seconds"`
	FirstSeconds      float64   `json:"first_results_seconds"`
	FirstLoad         string    `json:"first_results_loadavg"`
	RSSMiB            float64   `json:"rss_mib"`
	HeapMiB           float64   `json:"heap_inuse_mib"`
	StackMiB          float64   `json:"stack_inuse_mib"`
	RSSPer1000MiB     float64   `json:"rss_mib_per_1000_targets"`
	HeapPer1000MiB    float64   `json:"heap_mib_per_1000_targets"`
	ScrapeMs          []float64 `json:"scrape_ms"`
	ScrapeMB          float64   `json:"scrape_mb"`
	ScrapeAllocMB     []float64 `json:"scrape_alloc_mb"`
	DelayP50Ms        float64   `json:"scheduler_delay_p50_ms"`
	DelayP99Ms        float64   `json:"scheduler_delay_p99_ms"`
	Skipped           float64   `json:"skipped_runs"`
	Failures          float64   `json:"failed_runs"`
}

func run(o options) (*report, error) {
	dir, err := os.MkdirTemp("", "reachbench")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	info, stop, err := startServers(dir)
	if err != nil {
		return nil, err
	}
	defer stop()

	rep := &report{Targets: o.targets, IntervalSeconds: o.interval.Seconds(), PlannedPerSecond: float64(o.targets) / o.interval.Seconds()}
	fmt.Fprintf(os.Stderr, "floor: %d bare-loop probes back to back...\n", o.floorN)
	hot, err := floor(info, o.floorN, 0)
	if err != nil {
		return nil, fmt.Errorf("floor: %w", err)
	}
	rep.HotFloorCPUMs = ms(hot)
	every := time.Duration(float64(time.Second) / rep.PlannedPerSecond)
	paced := min(o.floorN, int(20*time.Second/every)+1)
	fmt.Fprintf(os.Stderr, "floor: %d bare-loop probes paced at the planned rate (%.1f/s)...\n", paced, rep.PlannedPerSecond)
	fl, err := floor(info, paced, every)
	if err != nil {
		return nil, fmt.Errorf("floor: %w", err)
	}
	rep.FloorCPUMs = ms(fl)

	d, err := startReachd(o, info, dir)
	if err != nil {
		return nil, err
	}
	defer d.stop()
	rep.ReadySeconds = d.ready.Seconds()

	// Every probe's first run (with its TLS sweep) falls within
	// min(interval, 10s) of the start; measure after that.
	// Every probe's first run (with its TLS sweep) is due within
	// min(interval, 10s) of the start; measure once all of them are done.
	fmt.Fprintf(os.Stderr, "reachd ready in %.2fs; waiting for every probe's first run...\n", d.ready.Seconds())
	var a sample
	for {
		if a, err = d.sample(); err != nil {
			return nil, err
		}
		if a.runs >= float64(o.targets) && a.inflight == 0 {
			first, swept, err := d.firstResults(o.targets)
			if err != nil {
				return nil, err
			}
			if swept {
				rep.FirstSeconds = first
				break
			}
		}
		time.Sleep(time.Second) // polling reachd's own counters
	}
	rep.WarmupSeconds = time.Since(d.started).Seconds()
	rep.FirstLoad = loadavg()
	fmt.Fprintf(os.Stderr, "first runs done after %.1fs; measuring %s...\n", rep.WarmupSeconds, o.duration)
	time.Sleep(o.duration)
	b, err := d.sample()
	if err != nil {
		return nil, err
	}
	runs := b.runs - a.runs
	rep.ReachdCPUMs = ms(b.cpu-a.cpu) / runs
	rep.Ratio = rep.ReachdCPUMs / rep.FloorCPUMs
	rep.AchievedPerSecond = runs / b.at.Sub(a.at).Seconds()
	rep.RSSMiB, rep.HeapMiB, rep.StackMiB = b.rss/(1<<20), b.heap/(1<<20), b.stack/(1<<20)
	rep.RSSPer1000MiB = rep.RSSMiB * 1000 / float64(o.targets)
	rep.HeapPer1000MiB = rep.HeapMiB * 1000 / float64(o.targets)
	window := map[float64]float64{} // the delays of the runs in the window only
	for bound, n := range b.delay {
		window[bound] = n - a.delay[bound]
	}
	rep.DelayP50Ms = 1000 * quantile(window, 0.50)
	rep.DelayP99Ms = 1000 * quantile(window, 0.99)
	rep.Skipped = b.skipped - a.skipped

	d.scrape() // the first scrape sizes the buffer; the timed ones reuse it
	// sample reads only the head of /metrics and hangs up: give that
	// scrape the moment it takes to stop (it checks between chunks), or
	// the next overlaps it and builds a scratch of its own (14.5 MB at
	// 10,000 probes), which a Prometheus, reading every scrape whole,
	// never causes.
	settled := func() (sample, error) {
		s, err := d.sample()
		time.Sleep(100 * time.Millisecond)
		return s, err
	}
	for range o.scrapes {
		before, _ := settled()
		took, size, failures, err := d.scrape()
		if err != nil {
			return nil, err
		}
		after, _ := settled()
		rep.ScrapeMs = append(rep.ScrapeMs, ms(took))
		rep.ScrapeMB = float64(size) / 1e6
		rep.ScrapeAllocMB = append(rep.ScrapeAllocMB, (after.allocated-before.allocated)/1e6)
		rep.Failures = failures
	}
	return rep, nil
}

// firstResults is when the last of the targets' first results was
// recorded, in seconds after reachd's start: the latest `since` (the end
// of the run that began a probe's current state: its first run, as every
// bench probe passes) in /api/v1/results, and whether every result has
// its sweep's versions. Call it once the first runs are done; it fails
// unless every target has passed.
func (d *daemon) firstResults(targets int) (float64, bool, error) {
	resp, err := http.Get(d.base + "/api/v1/results")
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	var got struct {
		Results []struct {
			Since   *time.Time `json:"since"`
			Success bool       `json:"success"`
			TLS     *struct {
				Accepted map[string]bool `json:"versions_accepted"`
			} `json:"tls"`
		} `json:"results"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		return 0, false, err
	}
	var last time.Time
	swept := true
	for _, r := range got.Results {
		if r.Since == nil || !r.Success {
			return 0, false, fmt.Errorf("a probe failed or has no result after its first run")
		}
		if r.Since.After(last) {
			last = *r.Since
		}
		swept = swept && r.TLS != nil && len(r.TLS.Accepted) > 0
	}
	if len(got.Results) != targets {
		return 0, false, fmt.Errorf("%d results for %d targets", len(got.Results), targets)
	}
	return last.Sub(d.started).Seconds(), swept, nil
}

// loadavg is the machine's load average (1, 5, 15 minutes), reported
// beside the timings since the machine may be shared.
func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// startServers runs `reachbench serve` and waits for its addresses.
func startServers(dir string) (serverInfo, func(), error) {
	self, err := os.Executable()
	if err != nil {
		return serverInfo{}, nil, err
	}
	infoFile := filepath.Join(dir, "servers.json")
	cmd := exec.Command(self, "serve", "-dir", dir, "-info", infoFile)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return serverInfo{}, nil, err
	}
	stop := func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }
	deadline := time.Now().Add(10 * time.Second)
	for {
		var info serverInfo
		if data, err := os.ReadFile(infoFile); err == nil && json.Unmarshal(data, &info) == nil {
			return info, stop, nil
		}
		if time.Now().After(deadline) {
			stop()
			return serverInfo{}, nil, errors.New("the servers did not start within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// daemon is the reachd under measurement.
type daemon struct {
	body    bytes.Buffer // scrapes read into it, as Prometheus reuses its buffers
	cmd     *exec.Cmd
	base    string
	started time.Time
	ready   time.Duration
}

func startReachd(o options, info serverInfo, dir string) (*daemon, error) {
	_, port, _ := net.SplitHostPort(info.HTTPS)
	var b strings.Builder
	fmt.Fprintf(&b, "site = \"reachbench\"\n[defaults]\ninterval = %q\ntimeout = \"10s\"\ntls_sweep_interval = %q\nconcurrency = %d\n",
		o.interval, o.sweepInterval, o.concurrency)
	fmt.Fprintf(&b, "[[resolver]]\nname = \"bench\"\nservers = [%q]\n[trust]\nca_files = [%q]\n", info.DNS, info.CAFile)
	for i := range o.targets {
		fmt.Fprintf(&b, "[[target]]\nvendor = \"bench\"\nregion = \"lo\"\nname = \"t%d\"\nhost = \"t%d.bench.test\"\nport = %s\n", i, i, port)
	}
	file := filepath.Join(dir, "reachd.toml")
	if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	d := &daemon{base: "http://" + addr}
	d.cmd = exec.Command(o.reachd, "run", "--config.file", file, "--web.listen-address", addr, "--log.level", "error")
	d.cmd.Stderr = os.Stderr
	start := time.Now()
	d.started = start
	if err := d.cmd.Start(); err != nil {
		return nil, err
	}
	for {
		if resp, err := http.Get(d.base + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				d.ready = time.Since(start)
				return d, nil
			}
		}
		if time.Since(start) > time.Minute {
			d.stop()
			return nil, errors.New("reachd was not ready within a minute")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (d *daemon) stop() { d.cmd.Process.Signal(syscall.SIGTERM); d.cmd.Wait() }

// sample is reachd's state at one moment.
type sample struct {
	at                      time.Time
	cpu                     time.Duration
	rss                     float64
	heap, stack, allocated  float64
	runs, skipped, inflight float64
	delay                   map[float64]float64 // cumulative bucket counts by upper bound
}

// sample reads the process's CPU and RSS from /proc and the self-metrics
// from the head of /metrics, which comes before the per-probe families.
func (d *daemon) sample() (sample, error) {
	s := sample{at: time.Now(), delay: map[float64]float64{}}
	pid := d.cmd.Process.Pid
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	s.cpu = time.Duration((utime + stime) / 100 * float64(time.Second)) // USER_HZ is 100 on Linux
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			s.rss = kb * 1024
		}
	}
	resp, err := http.Get(d.base + "/metrics")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "# HELP reachd_probe_") {
			break // the per-probe families follow; nothing else is needed
		}
		name, value, ok := splitSample(line)
		if !ok {
			continue
		}
		switch {
		case name == "go_memstats_heap_inuse_bytes":
			s.heap = value
		case name == "go_memstats_stack_inuse_bytes":
			s.stack = value
		case name == "go_memstats_alloc_bytes_total":
			s.allocated = value
		case name == "reachd_scheduler_delay_seconds_count":
			s.runs = value
		case name == "reachd_scheduler_skipped_total":
			s.skipped = value
		case name == "reachd_scheduler_inflight":
			s.inflight = value
		case strings.HasPrefix(name, "reachd_scheduler_delay_seconds_bucket"):
			le := name[strings.Index(name, `le="`)+4 : strings.LastIndexByte(name, '"')]
			bound, _ := strconv.ParseFloat(le, 64)
			s.delay[bound] = value
		}
	}
	return s, sc.Err()
}

func splitSample(line string) (string, float64, bool) {
	if line == "" || line[0] == '#' {
		return "", 0, false
	}
	i := strings.LastIndexByte(line, ' ')
	if i < 0 {
		return "", 0, false
	}
	v, err := strconv.ParseFloat(line[i+1:], 64)
	return line[:i], v, err == nil
}

// scrape times one whole GET /metrics read as Prometheus reads it (into a
// buffer kept from scrape to scrape, no parsing), then counts the failed
// runs it reports.
func (d *daemon) scrape() (time.Duration, int64, float64, error) {
	body := &d.body
	body.Reset()
	start := time.Now()
	resp, err := http.Get(d.base + "/metrics")
	if err != nil {
		return 0, 0, 0, err
	}
	_, err = body.ReadFrom(resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	if err != nil {
		return 0, 0, 0, err
	}
	var failures float64
	for _, line := range bytes.Split(body.Bytes(), []byte("\n")) {
		if bytes.HasPrefix(line, []byte("reachd_probe_runs_total{")) && bytes.Contains(line, []byte(`result="failure"`)) {
			if _, v, ok := splitSample(string(line)); ok {
				failures += v
			}
		}
	}
	return took, int64(body.Len()), failures, nil
}

// quantile interpolates q from cumulative histogram buckets.
func quantile(buckets map[float64]float64, q float64) float64 {
	bounds := make([]float64, 0, len(buckets))
	for b := range buckets {
		bounds = append(bounds, b)
	}
	sort.Float64s(bounds)
	if len(bounds) == 0 {
		return 0
	}
	total := buckets[bounds[len(bounds)-1]]
	rank := q * total
	prevBound, prevCount := 0.0, 0.0
	for _, b := range bounds {
		c := buckets[b]
		if c >= rank {
			if c == prevCount {
				return b
			}
			return prevBound + (b-prevBound)*(rank-prevCount)/(c-prevCount)
		}
		prevBound, prevCount = b, c
	}
	return bounds[len(bounds)-1]
}

func (r *report) print(w io.Writer) {
	fmt.Fprintf(w, "reachbench: %d targets, interval %gs (%.1f probes/s planned)\n\n", r.Targets, r.IntervalSeconds, r.PlannedPerSecond)
	fmt.Fprintf(w, "CPU per full probe (dns+tcp+tls+http)\n  floor, back to back:      %.3f ms\n  floor, at the same pace:  %.3f ms\n  reachd:                   %.3f ms  (%.2fx the paced floor)\n", r.HotFloorCPUMs, r.FloorCPUMs, r.ReachdCPUMs, r.Ratio)
	fmt.Fprintf(w, "probes per second     %.1f achieved / %.1f planned\n", r.AchievedPerSecond, r.PlannedPerSecond)
	fmt.Fprintf(w, "start to ready        %.3f s\n", r.ReadySeconds)
	fmt.Fprintf(w, "first round           every probe's first result after %.1f s; its extras (TLS sweep) done after %.1f s (load average %s)\n", r.FirstSeconds, r.WarmupSeconds, r.FirstLoad)
	fmt.Fprintf(w, "memory                RSS %.1f MiB, heap in use %.1f MiB, stacks %.1f MiB (per 1,000 targets: RSS %.1f MiB, heap %.1f MiB)\n", r.RSSMiB, r.HeapMiB, r.StackMiB, r.RSSPer1000MiB, r.HeapPer1000MiB)
	fmt.Fprintf(w, "/metrics scrape       %.1f MB; times (ms) %v; allocated per scrape (MB) %v\n", r.ScrapeMB, round(r.ScrapeMs), round(r.ScrapeAllocMB))
	fmt.Fprintf(w, "scheduler delay       p50 %.2f ms, p99 %.2f ms; skipped runs %g; failed runs %g\n", r.DelayP50Ms, r.DelayP99Ms, r.Skipped, r.Failures)
}

func round(v []float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(int(x*10+0.5)) / 10
	}
	return out
}
