// Command ciloop measures the CI loop from commit to pushed image: strata
// beside BuildKit's own cache and push, on the same fresh builders and the
// same registry, on loopback and behind a bandwidth-limited link.
//
//	go run ./bench                       # every scenario, 5 runs each
//	go run ./bench -scenario push -runs 1 -step-mb 20
//	go run ./bench -scenario new-branch -runs 1 -deps-mb 20
//	go run ./bench -render              # docs/benchmarks.md from bench/results/latest.json
//	go run ./bench -scenario push -keep-times -out bench/results/push-keep-times.json -doc docs/benchmarks-keep-times.md
//	go run ./bench -scenario push -compression zstd -out bench/results/push-zstd.json -doc docs/benchmarks-zstd.md
//	go run ./bench -scenario one-change -snapshotter stargz -out bench/results/one-change-stargz.json -doc ""
//	go run ./bench -scenario one-change -runs 1 -only 'own builder|from :latest$' -keep-progress /tmp/progress -out /tmp/r.json -doc ""
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"syscall"
	"time"

	"github.com/strata-build/strata/cache/store"
	"github.com/strata-build/strata/integration/testenv"
)

type config struct {
	Scenario string `json:"scenario"`
	Runs     int    `json:"runs"`
	StepMB   int    `json:"stepMB"`
	DepsMB   int    `json:"depsMB"`
	// DepsSeconds is how long the dependency step waits before it writes
	// DepsMB, as a dependency install waits on its downloads.
	DepsSeconds int     `json:"depsSeconds"`
	Work        int     `json:"workRounds"`
	Bandwidth   float64 `json:"bandwidthMBps"`
	// Latency is the round trip added to each request on the limited link.
	Latency time.Duration `json:"latency,omitempty"`
	// Compression, when set, is the layer compression of every contender
	// of the push scenario.
	Compression string `json:"compression,omitempty"`
	// Snapshotter, when set, is the snapshotter of every fresh builder
	// (stargz pulls eStargz layers lazily); default BuildKit's auto.
	Snapshotter string `json:"snapshotter,omitempty"`
	// KeepTimes adds strata build --push --reproducible=false to the push
	// scenario (about 3 minutes more): what rewriting timestamps costs.
	KeepTimes bool `json:"keepTimes,omitempty"`
	// Only, when set, is a regular expression: the one-change and
	// new-branch scenarios run only the contenders whose names match it.
	Only string `json:"only,omitempty"`
}

// Report is bench/results/latest.json.
type Report struct {
	Date    time.Time `json:"date"`
	Config  config    `json:"config"`
	Results []Result  `json:"results"`
	Limits  []Limit   `json:"limits"`
}

func logf(format string, a ...any) { fmt.Fprintf(os.Stderr, format+"\n", a...) }

func main() {
	var cfg config
	out := flag.String("out", "bench/results/latest.json", "where to write the results (JSON)")
	doc := flag.String("doc", "docs/benchmarks.md", "where to write the table and chart (Markdown with SVG); empty to skip")
	flag.StringVar(&cfg.Scenario, "scenario", "all", "scenario to run: push, one-change, dependency-change, multi-stage, new-branch or all")
	flag.IntVar(&cfg.Runs, "runs", 5, "runs per contender (medians of these are reported)")
	flag.IntVar(&cfg.StepMB, "step-mb", 60, "megabytes each heavy step of the push scenario writes (half random)")
	flag.IntVar(&cfg.DepsMB, "deps-mb", 100, "megabytes the dependency step of the one-change scenario writes (half random)")
	flag.IntVar(&cfg.DepsSeconds, "deps-seconds", 6, "seconds the dependency step waits before it writes, as an install waits on downloads")
	flag.IntVar(&cfg.Work, "work", 6, "rounds of hashing in each heavy step (CPU work)")
	flag.Float64Var(&cfg.Bandwidth, "bandwidth", 25, "MB/s each way on the limited link")
	flag.DurationVar(&cfg.Latency, "latency", 0, "round trip added to each request on the limited link (e.g. 20ms: a distant registry)")
	flag.StringVar(&cfg.Compression, "compression", "", "layer compression of every contender of the push scenario (estargz, zstd, uncompressed; default: each tool's own, eStargz for strata and gzip for buildctl)")
	flag.StringVar(&cfg.Snapshotter, "snapshotter", "", "snapshotter of every fresh builder: stargz, overlayfs, native (default: BuildKit's auto)")
	flag.BoolVar(&cfg.KeepTimes, "keep-times", false, "add strata build --push --reproducible=false to the push scenario")
	flag.StringVar(&cfg.Only, "only", "", "run only the one-change and new-branch contenders whose names match this regular expression")
	keep := flag.String("keep-progress", "", "directory where the rawjson progress of every measured command is kept")
	render := flag.Bool("render", false, "write -doc from the results in -out, without running anything")
	flag.Parse()
	if *render {
		if err := renderDoc(*out, *doc); err != nil {
			logf("bench: %v", err)
			os.Exit(1)
		}
		return
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, *out, *doc, *keep); err != nil {
		logf("bench: %v", err)
		os.Exit(1)
	}
}

// scenarios run in this order on each link.
var scenarios = []struct {
	name string
	run  func(context.Context, *bed, config, string, *testenv.Proxy) ([]Result, error)
}{
	{"one-change", oneChangeScenario},
	{"dependency-change", dependencyChangeScenario},
	{"multi-stage", multiStageScenario},
	{"new-branch", newBranchScenario},
	{"push", pushScenario},
}

func run(ctx context.Context, cfg config, out, doc, keep string) error {
	only, err := regexp.Compile(cfg.Only)
	if err != nil {
		return fmt.Errorf("-only: %w", err)
	}
	if keep != "" {
		if err := os.MkdirAll(keep, 0o755); err != nil {
			return err
		}
	}
	env, err := testenv.Start(ctx)
	if err != nil {
		return err
	}
	defer env.Close()
	dir, err := os.MkdirTemp("", "strata-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b := &bed{env: env, dir: dir, snapshotter: cfg.Snapshotter, only: only, keep: keep}
	// Pushed images are recorded in the index; keep the user's own file out of it.
	os.Setenv(store.IndexFileEnv, filepath.Join(dir, "default.idx"))

	links := []struct {
		name string
		opts []testenv.ProxyOption
	}{
		{"loopback", nil},
		{limitedLink(cfg), []testenv.ProxyOption{testenv.WithBandwidth(int(cfg.Bandwidth * 1e6)), testenv.WithLatency(cfg.Latency)}},
	}
	rep := Report{Date: time.Now().UTC(), Config: cfg}
	for _, l := range links {
		proxy, err := testenv.StartProxy(env.Registry.Host, l.opts...)
		if err != nil {
			return err
		}
		mbps, err := measureThroughput(ctx, proxy.Host)
		if err != nil {
			proxy.Close()
			return err
		}
		logf("%s: %.0f MB/s measured with a %d MB upload", l.name, mbps, throughputBlobMB)
		first := len(rep.Results)
		for _, sc := range scenarios {
			if cfg.Scenario != "all" && cfg.Scenario != sc.name {
				continue
			}
			res, err := sc.run(ctx, b, cfg, l.name, proxy)
			if err != nil {
				proxy.Close()
				return fmt.Errorf("%s scenario on %s: %w", sc.name, l.name, err)
			}
			rep.Results = append(rep.Results, res...)
		}
		rep.Limits = append(rep.Limits, limits(rep.Results[first:], l.name, mbps)...)
		proxy.Close()
	}

	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	dt, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(out, append(dt, '\n'), 0o644); err != nil {
		return err
	}
	if doc != "" {
		if err := os.WriteFile(doc, []byte(markdown(rep, out)), 0o644); err != nil {
			return err
		}
	}
	fmt.Print(table(rep))
	return nil
}

// renderDoc writes the Markdown of a results file.
func renderDoc(results, doc string) error {
	dt, err := os.ReadFile(results)
	if err != nil {
		return err
	}
	var rep Report
	if err := json.Unmarshal(dt, &rep); err != nil {
		return fmt.Errorf("%s: %w", results, err)
	}
	return os.WriteFile(doc, []byte(markdown(rep, results)), 0o644)
}

// limitedLink names the limited link: its bandwidth, and its round trip
// when one is added.
func limitedLink(cfg config) string {
	if cfg.Latency > 0 {
		return fmt.Sprintf("%g MB/s, %s RTT", cfg.Bandwidth, cfg.Latency)
	}
	return fmt.Sprintf("%g MB/s", cfg.Bandwidth)
}
