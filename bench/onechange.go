package main

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/strata-build/strata/builder"
	"github.com/strata-build/strata/integration/testenv"
)

// appDockerfile is a realistic application: a base image, a system-package
// step, a dependency step producing DepsMB from a lockfile, then the source
// COPY and a build step.
const appDockerfile = `FROM %[1]s
RUN mkdir -p /usr/share/sys && head -c 4000000 /dev/urandom > /usr/share/sys/pkgs.bin
WORKDIR /app
COPY lock.txt ./
RUN sleep %[3]d && mkdir -p deps && for i in $(seq %[2]d); do head -c 5000000 /dev/urandom > deps/lib$i.so; yes "$(cat lock.txt)" | head -c 5000000 > deps/lib$i.txt; done
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
	// newLockfile: v1 is pushed twice, the second time with a new
	// lockfile in a new commit (the dependency step runs again), before
	// v2 changes a source line.
	newLockfile bool
}

func (l changeLoop) run(ctx context.Context, b *bed, cfg config, link string, proxy *testenv.Proxy) ([]Result, error) {
	ctxDir := filepath.Join(b.dir, l.name+"-"+slug(link))
	// The context is a git checkout; each version is a new commit.
	lockfile := "left-pad 1.3.0\nlodash 4.17.21\n"
	write := func(version string) error {
		return writeAppDockerfile(ctxDir, l.dockerfile, proxy.Host+"/busybox:latest", cfg, lockfile, "main "+version+"\n")
	}
	cs := selected(b, l.label+"/"+link, l.contenders(b.env.BinDir, ctxDir), func(c contender) string { return c.name })
	if len(cs) == 0 {
		return nil, nil
	}
	runs := make([][]Run, len(cs))
	for i := range cfg.Runs {
		for c, ct := range cs {
			repo := fmt.Sprintf("%s/bench/%s-%d-%d-%s", proxy.Host, l.name, c, i, slug(link))
			lockfile = "left-pad 1.3.0\nlodash 4.17.21\n"
			// Each build runs on a new runner: a fresh builder and an
			// empty HOME (no index file, nothing remembered).
			runner := func() ([]string, error) {
				env, err := b.freshRunner()
				return append(env, ct.env...), err
			}
			prepare := func(version string) error {
				if err := write(version); err != nil {
					return err
				}
				env, err := runner()
				if err != nil {
					return err
				}
				if _, err := b.measureRunner(ctx, proxy, env, func(addr string) (string, []string) { return ct.v1(addr, repo) }); err != nil {
					return fmt.Errorf("preparing %s for %s: %w", version, ct.name, err)
				}
				return nil
			}
			if err := prepare("v1"); err != nil {
				return nil, err
			}
			if l.newLockfile {
				lockfile = "left-pad 1.3.0\nlodash 4.17.21\nexpress 4.19.2\n"
				if err := prepare("v1, new lockfile"); err != nil {
					return nil, err
				}
			}
			if err := write("v2"); err != nil {
				return nil, err
			}
			env, err := runner()
			if err != nil {
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
	// env is added to each run's environment (STRATA_BUILDER_SNAPSHOTTER).
	env []string
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

// lazyOwnBuilder is the contender on strata's own builder with lazy pulls
// turned on (lazyEnv), v1 pushed from there too.
const lazyOwnBuilder = "strata, own builder, lazy pulls (STRATA_BUILDER_SNAPSHOTTER=stargz, v1 there too)"

var lazyEnv = builder.SnapshotterEnv + "=" + builder.SnapshotterStargz

// ownBuilder is a contender that builds v1 and v2 with strata and no flags
// on its own builder, started from an empty directory for each, with env.
func ownBuilder(name, ctxDir string, env ...string) contender {
	return contender{name: name,
		v1: func(_, repo string) (string, []string) {
			return "", []string{"build", "--progress", "rawjson", "-t", repo + ":v1", "-t", repo + ":latest", "--push", ctxDir}
		},
		v2: func(_, repo string) (string, []string) {
			return "", []string{"build", "--progress", "rawjson", "-t", repo + ":v2", "--push", ctxDir}
		},
		env: env,
	}
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
		{name: "BuildKit, no cache",
			v1: func(addr, repo string) (string, []string) {
				return buildctl(addr, "--output", "type=image,name="+repo+":v1,push=true")
			},
			v2: func(addr, repo string) (string, []string) {
				return buildctl(addr, "--output", "type=image,name="+repo+":v2,push=true")
			}},
		{name: "BuildKit, registry cache mode=max",
			v1: func(addr, repo string) (string, []string) {
				return buildctl(addr, "--output", "type=image,name="+repo+":v1,push=true", "--export-cache", "type=registry,ref="+repo+":buildcache,mode=max")
			},
			v2: func(addr, repo string) (string, []string) {
				return buildctl(addr, "--output", "type=image,name="+repo+":v2,push=true", "--import-cache", "type=registry,ref="+repo+":buildcache",
					"--export-cache", "type=registry,ref="+repo+":buildcache,mode=max")
			}},
		{name: "BuildKit, inline cache from :latest", v1: buildkitV1, v2: inlineV2},
		{name: "BuildKit, inline cache from :latest (v1 by strata)", v1: strataV1, v2: inlineV2},
		{name: "strata, no flags (v1 by strata)", v1: strataV1, v2: strataV2},
		{name: "strata, no flags (v1 by BuildKit)", v1: buildkitV1, v2: strataV2},
		ownBuilder("strata, no flags, own builder (v1 by strata, own builder)", ctxDir),
		ownBuilder(lazyOwnBuilder, ctxDir, lazyEnv),
		{name: "strata, shared index (--index)",
			v1: func(addr, repo string) (string, []string) {
				return strata(addr, "--index", index(repo), "-t", repo+":v1", "-t", repo+":latest", "--push")
			},
			v2: func(addr, repo string) (string, []string) {
				return strata(addr, "--index", index(repo), "-t", repo+":v2", "--push")
			}},
	}
}

// dependencyChangeScenario is the one-change loop after a change of the
// lockfile: v1 is pushed, then v1 again with a new lockfile in a new
// commit (its dependency step runs), then v2, one source line changed in
// the next commit, is built on a fresh runner and measured. Every build
// runs on a fresh runner. It shows whether the dependency step the second
// push ran is a cache source for the commits after it.
func dependencyChangeScenario(ctx context.Context, b *bed, cfg config, link string, proxy *testenv.Proxy) ([]Result, error) {
	return changeLoop{label: "dependency-change", result: "one-change-after-new-lockfile", name: "dep", dockerfile: appDockerfile,
		contenders: dependencyChangeContenders, newLockfile: true}.run(ctx, b, cfg, link, proxy)
}

// dependencyChangeContenders are the dependency-change scenario's
// contenders: BuildKit's registry cache mode=max and inline cache from
// :latest, strata with no flags on the test bed's builder and on its own,
// and on its own with lazy pulls.
func dependencyChangeContenders(bin, ctxDir string) []contender {
	var out []contender
	for _, c := range oneChangeContenders(bin, ctxDir) {
		switch c.name {
		case "BuildKit, registry cache mode=max", "BuildKit, inline cache from :latest", "strata, no flags (v1 by strata)",
			"strata, no flags, own builder (v1 by strata, own builder)", lazyOwnBuilder:
			out = append(out, c)
		}
	}
	return out
}
