package main

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/strata-build/strata/integration/testenv"
)

// appDockerfile is a realistic application: a base image, a system-package
// step, a dependency step producing DepsMB from a lockfile, then the source
// COPY and a build step.
const appDockerfile = `FROM %[1]s
RUN mkdir -p /usr/share/sys && head -c 4000000 /dev/urandom > /usr/share/sys/pkgs.bin
WORKDIR /app
COPY lock.txt ./
RUN mkdir -p deps && for i in $(seq %[2]d); do head -c 5000000 /dev/urandom > deps/lib$i.so; yes "$(cat lock.txt)" | head -c 5000000 > deps/lib$i.txt; done
COPY src/ ./src/
RUN cat src/*.txt > app.bin && for i in $(seq 3); do sha256sum app.bin deps/lib1.so >/dev/null; done
`

// oneChangeScenario: v1 is pushed; v2 differs by one line of source, in a
// new commit. Each contender builds v2 on a fresh runner (a fresh builder
// and an empty HOME), with v1 pushed by strata or by plain BuildKit.
func oneChangeScenario(ctx context.Context, b *bed, cfg config, link string, proxy *testenv.Proxy) ([]Result, error) {
	return changeLoop{label: "one-change", result: "one-source-file-changed", name: "app", dockerfile: appDockerfile, contenders: oneChangeContenders}.run(ctx, b, cfg, link, proxy)
}

// changeLoop is a one-change scenario: the application with dockerfile
// (appDockerfile's format) in a git checkout, v1 pushed by each contender,
// then v2, one source line changed in a new commit, built and measured.
type changeLoop struct {
	label, result string // in the log, and the Result's scenario
	name          string // of the context directory and the repositories
	dockerfile    string
	contenders    func(bin, ctxDir string) []contender
}

func (l changeLoop) run(ctx context.Context, b *bed, cfg config, link string, proxy *testenv.Proxy) ([]Result, error) {
	ctxDir := filepath.Join(b.dir, l.name+"-"+slug(link))
	// The context is a git checkout; each version is a new commit.
	write := func(version string) error {
		return writeAppDockerfile(ctxDir, l.dockerfile, proxy.Host+"/busybox:latest", cfg, "left-pad 1.3.0\nlodash 4.17.21\n", "main "+version+"\n")
	}
	cs := selected(b, l.label+"/"+link, l.contenders(b.env.BinDir, ctxDir), func(c contender) string { return c.name })
	if len(cs) == 0 {
		return nil, nil
	}
	runs := make([][]Run, len(cs))
	for i := range cfg.Runs {
		for c, ct := range cs {
			repo := fmt.Sprintf("%s/bench/%s-%d-%d-%s", proxy.Host, l.name, c, i, slug(link))
			if err := write("v1"); err != nil {
				return nil, err
			}
			// Each build runs on a new runner: a fresh builder and an
			// empty HOME (no index file, nothing remembered).
			env, err := b.freshRunner()
			if err != nil {
				return nil, err
			}
			if _, err := b.measureRunner(ctx, proxy, env, func(addr string) (string, []string) { return ct.v1(addr, repo) }); err != nil {
				return nil, fmt.Errorf("preparing v1 for %s: %w", ct.name, err)
			}
			if err := write("v2"); err != nil {
				return nil, err
			}
			if env, err = b.freshRunner(); err != nil {
				return nil, err
			}
			r, err := b.measureRunner(ctx, proxy, env, func(addr string) (string, []string) { return ct.v2(addr, repo) })
			if err != nil {
				return nil, err
			}
			runs[c] = append(runs[c], r)
			logf("%s/%s %-50s run %d: %.1fs, steps %d/%d cached, %.1f MB pulled, %.1f MB pushed", l.label, link, ct.name, i+1, r.Wall, r.StepsCached, r.StepsTotal, float64(r.BytesDown)/1e6, float64(r.BytesUp)/1e6)
		}
	}
	names := make([]string, len(cs))
	for c, ct := range cs {
		names[c] = ct.name
	}
	return compare(l.result, link, names, runs, 0), nil
}

// contender is one way to build v1 and v2 in the one-change scenario.
type contender struct {
	name string
	v1   func(addr, repo string) (string, []string) // prepares the registry
	// v2 is measured. A func that names no command gives strata's
	// arguments, run with no --builder on strata's own builder
	// started from an empty directory (see bed.measureRunner).
	v2 func(addr, repo string) (string, []string)
}

// contextCommands return the command lines of a buildctl build and of a
// strata build of the context ctxDir on the builder at addr, with the
// binaries in bin and rawjson progress; extra goes before the context.
func contextCommands(bin, ctxDir string) (buildctl, strata func(addr string, extra ...string) (string, []string)) {
	buildctl = func(addr string, extra ...string) (string, []string) {
		return filepath.Join(bin, "buildctl"), append([]string{"--addr", addr, "build", "--progress", "rawjson", "--frontend", "dockerfile.v0",
			"--local", "context=" + ctxDir, "--local", "dockerfile=" + ctxDir}, extra...)
	}
	strata = func(addr string, extra ...string) (string, []string) {
		return filepath.Join(bin, "strata"), append([]string{"build", "--builder", addr, "--progress", "rawjson"}, append(extra, ctxDir)...)
	}
	return buildctl, strata
}

// oneChangeContenders are the one-change scenario's contenders, building
// the context ctxDir with the binaries in bin.
func oneChangeContenders(bin, ctxDir string) []contender {
	buildctl, strata := contextCommands(bin, ctxDir)
	buildkitV1 := func(addr, repo string) (string, []string) {
		return buildctl(addr, "--output", "type=image,name="+repo+":latest,push=true", "--export-cache", "type=inline")
	}
	strataV1 := func(addr, repo string) (string, []string) {
		return strata(addr, "-t", repo+":v1", "-t", repo+":latest", "--push")
	}
	strataV2 := func(addr, repo string) (string, []string) { return strata(addr, "-t", repo+":v2", "--push") }
	inlineV2 := func(addr, repo string) (string, []string) {
		return buildctl(addr, "--output", "type=image,name="+repo+":v2,push=true", "--export-cache", "type=inline", "--import-cache", "type=registry,ref="+repo+":latest")
	}
	index := func(repo string) string { return repo + "-index:main" }
	return []contender{
		{"BuildKit, no cache",
			func(addr, repo string) (string, []string) {
				return buildctl(addr, "--output", "type=image,name="+repo+":v1,push=true")
			},
			func(addr, repo string) (string, []string) {
				return buildctl(addr, "--output", "type=image,name="+repo+":v2,push=true")
			}},
		{"BuildKit, registry cache mode=max",
			func(addr, repo string) (string, []string) {
				return buildctl(addr, "--output", "type=image,name="+repo+":v1,push=true", "--export-cache", "type=registry,ref="+repo+":buildcache,mode=max")
			},
			func(addr, repo string) (string, []string) {
				return buildctl(addr, "--output", "type=image,name="+repo+":v2,push=true", "--import-cache", "type=registry,ref="+repo+":buildcache",
					"--export-cache", "type=registry,ref="+repo+":buildcache,mode=max")
			}},
		{"BuildKit, inline cache from :latest", buildkitV1, inlineV2},
		{"BuildKit, inline cache from :latest (v1 by strata)", strataV1, inlineV2},
		{"strata, no flags (v1 by strata)", strataV1, strataV2},
		{"strata, no flags (v1 by BuildKit)", buildkitV1, strataV2},
		{"strata, no flags, own builder (v1 by strata, own builder)",
			func(_, repo string) (string, []string) {
				return "", []string{"build", "--progress", "rawjson", "-t", repo + ":v1", "-t", repo + ":latest", "--push", ctxDir}
			},
			func(_, repo string) (string, []string) {
				return "", []string{"build", "--progress", "rawjson", "-t", repo + ":v2", "--push", ctxDir}
			}},
		{"strata, shared index (--index)",
			func(addr, repo string) (string, []string) {
				return strata(addr, "--index", index(repo), "-t", repo+":v1", "-t", repo+":latest", "--push")
			},
			func(addr, repo string) (string, []string) {
				return strata(addr, "--index", index(repo), "-t", repo+":v2", "--push")
			}},
	}
}
