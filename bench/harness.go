package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/moby/buildkit/client"

	"github.com/strata-build/strata/build"
	"github.com/strata-build/strata/builder"
	"github.com/strata-build/strata/cache/store"
	"github.com/strata-build/strata/integration/testenv"
)

// Run is one measured run of one contender.
type Run struct {
	Wall        float64 `json:"wallSeconds"`
	Tail        float64 `json:"tailSeconds"` // from the last Dockerfile step's end to the process's end
	BytesUp     int64   `json:"bytesPushed"` // request bodies sent to the registry, as the proxy counted them
	BytesDown   int64   `json:"bytesPulled"` // response bodies received from the registry
	BlobUploads int64   `json:"blobUploads"`
	MaxPerBlob  int     `json:"maxUploadsOfOneBlob"`
	StepsTotal  int     `json:"stepsTotal"`
	StepsCached int     `json:"stepsCached"`
	// ChangedSteps is the wall time the steps that ran (not cached) took,
	// overlaps counted once.
	ChangedSteps float64 `json:"changedStepsSeconds"`
	// ClientCPU is the CPU time (user and system) the measured command
	// itself used: on a machine of few cores, what it took from the
	// builder.
	ClientCPU float64 `json:"clientCPUSeconds"`
	// LastLayerAlone is, after a streamed push, how long pushing its last
	// layer of over 1 MB with a config and a manifest of its own took on
	// the same link: the least any push can leave after the last step.
	LastLayerAlone   float64 `json:"lastLayerAloneSeconds,omitempty"`
	LastLayerAloneMB float64 `json:"lastLayerAloneMB,omitempty"`
}

// Stat is a median with its range.
type Stat struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

// Result is one contender in one scenario on one link.
type Result struct {
	Scenario  string `json:"scenario"`
	Link      string `json:"link"`
	Contender string `json:"contender"`
	Runs      []Run  `json:"runs"`
	Wall      Stat   `json:"wallSeconds"`
	Tail      Stat   `json:"tailSeconds"`
	BytesUp   Stat   `json:"bytesPushed"`
	BytesDown Stat   `json:"bytesPulled"`
	Uploads   Stat   `json:"blobUploads"`
	// Ratio is Wall.Median divided by the scenario's baseline median on the same link.
	Ratio    float64 `json:"ratioToBaseline,omitempty"`
	Baseline string  `json:"baseline,omitempty"`
	// RatioToLimit is Wall.Median divided by the scenario's physical limit on the same link.
	RatioToLimit float64 `json:"ratioToLimit,omitempty"`
	// LastLayerAlone summarizes the runs' LastLayerAlone, when measured.
	LastLayerAlone *Stat `json:"lastLayerAloneSeconds,omitempty"`
}

func stat(runs []Run, f func(Run) float64) Stat {
	if len(runs) == 0 {
		return Stat{}
	}
	v := make([]float64, len(runs))
	for i, r := range runs {
		v[i] = f(r)
	}
	sort.Float64s(v)
	m := v[len(v)/2]
	if len(v)%2 == 0 {
		m = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return Stat{Median: m, Min: v[0], Max: v[len(v)-1]}
}

func summarize(scenario, link, contender string, runs []Run) Result {
	res := Result{
		Scenario: scenario, Link: link, Contender: contender, Runs: runs,
		Wall:      stat(runs, func(r Run) float64 { return r.Wall }),
		Tail:      stat(runs, func(r Run) float64 { return r.Tail }),
		BytesUp:   stat(runs, func(r Run) float64 { return float64(r.BytesUp) }),
		BytesDown: stat(runs, func(r Run) float64 { return float64(r.BytesDown) }),
		Uploads:   stat(runs, func(r Run) float64 { return float64(r.BlobUploads) }),
	}
	if len(runs) > 0 && runs[0].LastLayerAlone > 0 {
		st := stat(runs, func(r Run) float64 { return r.LastLayerAlone })
		res.LastLayerAlone = &st
	}
	return res
}

// compare summarizes each contender's runs, with its ratio to the
// baseline contender's median on the same link.
func compare(scenario, link string, names []string, runs [][]Run, baseline int) []Result {
	res := make([]Result, len(names))
	for c, n := range names {
		res[c] = summarize(scenario, link, n, runs[c])
	}
	for i := range res {
		res[i].Baseline = names[baseline]
		res[i].Ratio = res[i].Wall.Median / res[baseline].Wall.Median
	}
	return res
}

// bed is the shared test bed of a benchmark run.
type bed struct {
	env *testenv.Env
	dir string
	n   int
	// snapshotter of the fresh builders; empty for the test bed's default.
	snapshotter string

	branchImages []string // the new-branch scenario's registry, filled once

	only *regexp.Regexp // the one-change and new-branch contenders to run
	keep string         // where each measured command's progress is kept; empty: nowhere
	kept int
}

// freshBuilder starts a buildkitd with empty state, like a new CI runner.
func (b *bed) freshBuilder(ctx context.Context) (*builder.Local, func(), error) {
	b.n++
	var opts []testenv.BuildkitdOption
	if b.snapshotter != "" {
		opts = append(opts, testenv.WithSnapshotter(b.snapshotter))
	}
	l, err := b.env.StartBuildkitd(ctx, fmt.Sprintf("bench-%d", b.n), opts...)
	if err != nil {
		return nil, nil, err
	}
	return l, func() {
		_ = l.Stop(30 * time.Second)
		_ = os.RemoveAll(l.Dir)
	}, nil
}

// measure runs name with args on a fresh builder (addr given to args), and
// adds what crossed the proxy during the run.
func (b *bed) measure(ctx context.Context, proxy *testenv.Proxy, cmd func(addr string) (string, []string)) (Run, error) {
	return b.measureEnv(ctx, proxy, nil, cmd)
}

// freshRunner is the environment of a command on a new CI runner: an empty
// HOME, so no index file, no remembered layers and no docker config.
func (b *bed) freshRunner() ([]string, error) {
	home, err := os.MkdirTemp(b.dir, "home-")
	if err != nil {
		return nil, err
	}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k != "HOME" && k != "XDG_CACHE_HOME" && k != "XDG_CONFIG_HOME" && k != "DOCKER_CONFIG" && k != store.IndexFileEnv && k != builder.SnapshotterEnv {
			env = append(env, kv)
		}
	}
	return append(env, "HOME="+home), nil
}

// measureEnv is measure with the command's environment (nil: this
// process's).
func (b *bed) measureEnv(ctx context.Context, proxy *testenv.Proxy, env []string, cmd func(addr string) (string, []string)) (Run, error) {
	bk, stop, err := b.freshBuilder(ctx)
	if err != nil {
		return Run{}, err
	}
	defer stop()
	name, args := cmd(bk.Addr())
	return b.timedThrough(ctx, proxy, env, name, args)
}

// timedThrough is timed, with what crossed the proxy during the run.
func (b *bed) timedThrough(ctx context.Context, proxy *testenv.Proxy, env []string, name string, args []string) (Run, error) {
	up0, down0, blobs0 := proxy.BytesUp.Load(), proxy.BytesDown.Load(), proxy.BlobUploads.Load()
	proxy.ResetUploads()
	progress := filepath.Join(b.dir, "progress.json")
	r, err := timed(ctx, progress, env, name, args...)
	b.keepProgress(progress, name, args)
	if err != nil {
		return r, err
	}
	r.BytesUp, r.BytesDown = proxy.BytesUp.Load()-up0, proxy.BytesDown.Load()-down0
	r.BlobUploads = proxy.BlobUploads.Load() - blobs0
	r.MaxPerBlob = proxy.MaxUploadsPerBlob()
	return r, nil
}

// selected are the contenders cs of a scenario whose names -only matches;
// when none does, it says so.
func selected[C any](b *bed, scenario string, cs []C, name func(C) string) []C {
	if b.only == nil {
		return cs
	}
	cs = slices.DeleteFunc(cs, func(c C) bool { return !b.only.MatchString(name(c)) })
	if len(cs) == 0 {
		logf("%s: -only %s names none of its contenders", scenario, b.only)
	}
	return cs
}

// keepProgress copies a command's progress file to b.keep, when set, and
// says where.
func (b *bed) keepProgress(progress, name string, args []string) {
	if b.keep == "" {
		return
	}
	b.kept++
	dst := filepath.Join(b.keep, fmt.Sprintf("%03d-%s.json", b.kept, filepath.Base(name)))
	dt, err := os.ReadFile(progress)
	if err == nil {
		err = os.WriteFile(dst, dt, 0o644)
	}
	if err != nil {
		logf("keeping the progress of %s: %v", filepath.Base(name), err)
		return
	}
	logf("progress of %s %s: %s", filepath.Base(name), strings.Join(args, " "), dst)
}

// measureRunner runs cmd on a new runner: a fresh builder of the test bed
// (addr given to cmd) with the environment env (freshRunner's), or, when
// cmd names no command, strata with cmd's arguments on its own builder
// (measureOwn).
func (b *bed) measureRunner(ctx context.Context, proxy *testenv.Proxy, env []string, cmd func(addr string) (string, []string)) (Run, error) {
	if name, args := cmd(""); name == "" {
		return b.measureOwn(ctx, proxy, env, args)
	}
	return b.measureEnv(ctx, proxy, env, cmd)
}

// measureOwn runs a strata command with no --builder on a new runner: the
// environment env (an empty HOME) and an empty builder directory, so
// strata starts its own buildkitd (BuildKit's choice of snapshotter, or
// the one env's STRATA_BUILDER_SNAPSHOTTER names), its start counted in the
// command's time. The builder is stopped and removed after the run.
func (b *bed) measureOwn(ctx context.Context, proxy *testenv.Proxy, env, args []string) (Run, error) {
	b.n++
	dir := filepath.Join(b.dir, fmt.Sprintf("own-%d", b.n))
	l := &builder.Local{Dir: dir}
	defer func() {
		_ = l.Stop(30 * time.Second)
		_ = os.RemoveAll(dir)
	}()
	env = append(env, "STRATA_BUILDER_DIR="+dir)
	return b.timedThrough(ctx, proxy, env, filepath.Join(b.env.BinDir, "strata"), args)
}

// timed runs a command, with its rawjson progress going to a file, and
// returns the wall time, the end of the last Dockerfile step, and the step
// counts read from the progress stream.
func timed(ctx context.Context, progressFile string, env []string, name string, args ...string) (Run, error) {
	f, err := os.Create(progressFile)
	if err != nil {
		return Run{}, err
	}
	defer f.Close()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	cmd.Stderr = f
	var out strings.Builder
	cmd.Stdout = &out
	// The writeback of what earlier runs and the set-up wrote (layers,
	// builders' state removed) would land in this run's time, on whichever
	// contender comes next: flush it first.
	syscall.Sync()
	start := time.Now()
	err = cmd.Run()
	end := time.Now()
	if err != nil {
		dt, _ := os.ReadFile(progressFile)
		return Run{}, fmt.Errorf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, lastLines(string(dt), 20))
	}
	r := Run{Wall: end.Sub(start).Seconds(), ClientCPU: (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()}
	p, err := readProgress(progressFile)
	if err != nil {
		return r, err
	}
	if !p.lastStep.IsZero() {
		r.Tail = end.Sub(p.lastStep).Seconds()
	}
	r.StepsTotal, r.StepsCached, r.ChangedSteps = p.total, p.cached, p.ran
	return r, nil
}

// progressSummary is what a rawjson progress stream says about the steps.
type progressSummary struct {
	lastStep      time.Time // end of the last Dockerfile step
	total, cached int
	ran           float64 // seconds during which a step that was not cached ran
}

type stepSpan struct {
	start, end time.Time
	cached     bool
}

// readProgress reads a rawjson progress stream.
func readProgress(path string) (progressSummary, error) {
	var p progressSummary
	f, err := os.Open(path)
	if err != nil {
		return p, err
	}
	defer f.Close()
	steps := map[string]*stepSpan{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var st client.SolveStatus
		if json.Unmarshal(sc.Bytes(), &st) != nil {
			continue
		}
		for _, v := range st.Vertexes {
			if v.Completed == nil || !build.IsStep(v.Name) {
				continue
			}
			sp := steps[v.Digest.String()]
			if sp == nil {
				sp = &stepSpan{start: *v.Completed, end: *v.Completed}
				steps[v.Digest.String()] = sp
			}
			if v.Started != nil && v.Started.Before(sp.start) {
				sp.start = *v.Started
			}
			if v.Completed.After(sp.end) {
				sp.end = *v.Completed
			}
			sp.cached = sp.cached || v.Cached
			if v.Completed.After(p.lastStep) {
				p.lastStep = *v.Completed
			}
		}
	}
	var ran []stepSpan
	for _, sp := range steps {
		p.total++
		if sp.cached {
			p.cached++
		} else {
			ran = append(ran, *sp)
		}
	}
	p.ran = unionSeconds(ran)
	return p, sc.Err()
}

// unionSeconds is the length of the union of the spans.
func unionSeconds(spans []stepSpan) float64 {
	sort.Slice(spans, func(i, j int) bool { return spans[i].start.Before(spans[j].start) })
	var total time.Duration
	var cur *stepSpan
	for i := range spans {
		sp := &spans[i]
		switch {
		case cur == nil || sp.start.After(cur.end):
			if cur != nil {
				total += cur.end.Sub(cur.start)
			}
			c := *sp
			cur = &c
		case sp.end.After(cur.end):
			cur.end = sp.end
		}
	}
	if cur != nil {
		total += cur.end.Sub(cur.start)
	}
	return total.Seconds()
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// slug makes s usable as an image tag.
func slug(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			return r
		}
		return '-'
	}, strings.ToLower(s))
}
