package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/strata-build/strata/builder"
	"github.com/strata-build/strata/cache"
	"github.com/strata-build/strata/cache/store"
)

// commitsDockerfile has a WORKDIR before its dependency step: BuildKit's
// frontend stamps WORKDIR with SOURCE_DATE_EPOCH when it gets one, which
// would change every later cache key with each commit.
func commitsDockerfile() string {
	return fmt.Sprintf(`FROM %s
RUN echo tools > /tools
WORKDIR /app
COPY deps.lock ./
RUN head -c 300000 /dev/urandom > /deps.bin && cat deps.lock > /deps
COPY src/ ./src/
RUN cat src/* > /out
`, env.Busybox)
}

// gitCommit commits everything in dir at the given time.
func gitCommit(t *testing.T, dir string, at time.Time, msg string) {
	t.Helper()
	for _, args := range [][]string{{"init", "-q"}, {"add", "-A"}, {"commit", "-q", "-m", msg}} {
		if args[0] == "init" {
			if _, err := os.Stat(filepath.Join(dir, ".git")); err == nil {
				continue
			}
		}
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@example.com"}, args...)...)
		stamp := at.UTC().Format(time.RFC3339)
		cmd.Env = append(os.Environ(), "GIT_COMMITTER_DATE="+stamp, "GIT_AUTHOR_DATE="+stamp)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
}

// freshRunner starts a buildkitd with no state and gives strata an empty
// index and cache directory, as on a new CI runner.
func freshRunner(t *testing.T, name string) string {
	t.Helper()
	t.Setenv(store.IndexFileEnv, filepath.Join(t.TempDir(), "index.idx"))
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	bk, err := env.StartBuildkitd(t.Context(), fmt.Sprintf("%s-%d", name, time.Now().UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bk.Stop(20 * time.Second) })
	return bk.Addr()
}

// The context is a git checkout and each version a new commit. A fresh
// runner with no cache flags reuses every step before the changed COPY of
// the image pushed for the commit before; strata's images and those of a
// plain buildctl build of the same commit are full cache sources for each
// other.
func TestCacheSurvivesCommits(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Dockerfile":  commitsDockerfile(),
		"deps.lock":   "dep 1.0\n",
		"src/main.sh": "v1\n",
	})
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	gitCommit(t, dir, t0, "v1")
	repo := env.Registry.Host + "/commits/app"

	addr := freshRunner(t, "commits-v1")
	meta := filepath.Join(t.TempDir(), "m.json")
	if code, _, stderr := strata(t, "build", "--builder", addr, "--progress", "plain", "-t", repo+":v1", "-t", repo+":latest", "--push", "--metadata-file", meta, dir); code != 0 {
		t.Fatalf("v1: exit %d\n%s", code, tail(stderr, 20))
	}
	v1 := verifyImage(t, repo+":v1", metadataString(t, readMetadata(t, meta), "containerimage.digest"))

	writeFiles(t, dir, map[string]string{"src/main.sh": "v2\n"})
	gitCommit(t, dir, t0.Add(time.Hour), "v2")

	// A fresh runner, no flags: the target repository's tags are read.
	addr = freshRunner(t, "commits-v2")
	code, _, stderr := strata(t, "build", "--builder", addr, "--progress", "plain", "-t", repo+":v2", "--push", "--metadata-file", meta, dir)
	if code != 0 {
		t.Fatalf("v2: exit %d\n%s", code, tail(stderr, 20))
	}
	if !strings.Contains(stderr, "cache sources from target repository "+repo) {
		t.Errorf("the progress does not say the target repository was read:\n%s", tail(stderr, 40))
	}
	m := readMetadata(t, meta)
	if src := string(m["strata"]); !strings.Contains(src, `"cacheSource": "target repository `+repo) && !strings.Contains(src, `"cacheSource":"target repository `+repo) {
		t.Errorf("metadata has no cacheSource naming %s: %s", repo, src)
	}
	st := strataMetadata(t, m)
	// RUN tools, WORKDIR, COPY deps.lock, RUN deps are cached; COPY src/
	// and the RUN after it run.
	if st.Steps.Total != 6 || st.Steps.Cached != 4 {
		t.Errorf("v2 on a fresh runner: steps %+v, want 4 of 6 cached\n%s", st.Steps, tail(stderr, 40))
	}
	v2 := verifyImage(t, repo+":v2", metadataString(t, m, "containerimage.digest"))
	// Both COPY steps' sources are recorded, from the stage the plan read.
	if n := strings.Count(string(rawConfig(t, repo+":v2")), cache.SourcesMarker); n != 2 {
		t.Errorf("v2's history records %d COPY sources, want 2", n)
	}
	l1, _ := v1.Layers()
	l2, _ := v2.Layers()
	if len(l1) != 7 || len(l2) != 7 {
		t.Fatalf("v1 has %d layers, v2 %d; want 7 each (busybox, 6 steps)", len(l1), len(l2))
	}
	for i := range 7 {
		d1, _ := l1[i].Digest()
		d2, _ := l2[i].Digest()
		if same := d1 == d2; same != (i < 5) {
			t.Errorf("layer %d: v1 %s, v2 %s; want the layers before COPY src/ shared and the rest new", i, d1, d2)
		}
	}

	// Plain buildctl on a fresh builder, importing strata's v2: every step
	// hits, and its own image (with inline cache) serves strata in turn.
	addr = freshRunner(t, "commits-buildctl")
	bkRef := env.Registry.Host + "/commits/buildctl:v2"
	out := run(t, exec.Command(filepath.Join(env.BinDir, "buildctl"), "--addr", addr, "build", "--progress", "plain",
		"--frontend", "dockerfile.v0", "--local", "context="+dir, "--local", "dockerfile="+dir,
		"--import-cache", "type=registry,ref="+repo+":v2", "--export-cache", "type=inline",
		"--output", "type=image,name="+bkRef+",push=true"))
	for _, step := range []string{"RUN echo tools > /tools", "WORKDIR /app", "COPY deps.lock ./", "COPY src/ ./src/", "RUN cat src/* > /out"} {
		if ran, cached := stepState(t, out, step); ran || !cached {
			t.Errorf("buildctl with strata's image as cache: step %q ran=%v cached=%v\n%s", step, ran, cached, tail(out, 60))
		}
	}

	addr = freshRunner(t, "commits-from-buildctl")
	code, _, stderr = strata(t, "build", "--builder", addr, "--progress", "plain", "--no-auto-cache", "--cache-from", bkRef,
		"-t", repo+":v2-again", "--push", "--metadata-file", meta, dir)
	if code != 0 {
		t.Fatalf("strata from buildctl's image: exit %d\n%s", code, tail(stderr, 20))
	}
	if st := strataMetadata(t, readMetadata(t, meta)); st.Steps.Total != 6 || st.Steps.Cached != 6 {
		t.Errorf("strata with buildctl's image as cache: steps %+v, want all 6 cached\n%s", st.Steps, tail(stderr, 40))
	}
}

// gitApp is a git checkout of an application built from dockerfile, with a
// lockfile and one source file, committed at t0 as v1.
func gitApp(t *testing.T, dockerfile string, t0 time.Time) string {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Dockerfile":  dockerfile,
		"deps.lock":   "dep 1.0\n",
		"src/main.sh": "v1\n",
	})
	gitCommit(t, dir, t0, "v1")
	return dir
}

// changeSource changes the source file of a gitApp checkout in a new
// commit, at.
func changeSource(t *testing.T, dir string, at time.Time) {
	t.Helper()
	writeFiles(t, dir, map[string]string{"src/main.sh": "v2\n"})
	gitCommit(t, dir, at, "v2")
}

// The CI loop on strata's own builder, with no flags, every commit on a
// fresh runner (a new builder, an empty HOME): the lockfile changes in one
// commit, a source file in the next. The build after the lockfile change
// runs the dependency step once (it writes random bytes: a layer made
// twice differs); the one after it reuses it, from the image the build
// before pushed.
func TestCacheSurvivesDependencyChange(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)
	dir := gitApp(t, commitsDockerfile(), t0)
	repo := fmt.Sprintf("%s/depchange/app-%d", env.Registry.Host, time.Now().UnixNano())
	meta := filepath.Join(t.TempDir(), "m.json")
	build := func(tag string) []v1.Hash {
		t.Helper()
		local := ownBuilder(t)
		home := t.TempDir()
		// No snapshotter named: strata's own choice.
		code, out := strataBin(t, []string{"STRATA_BUILDER_DIR=" + local.Dir, builder.SnapshotterEnv + "=", "HOME=" + home, "XDG_CACHE_HOME=" + filepath.Join(home, ".cache"),
			store.IndexFileEnv + "=" + filepath.Join(home, "index.idx")},
			"build", "--progress", "plain", "-t", repo+":"+tag, "-t", repo+":latest", "--push", "--metadata-file", meta, dir)
		_ = local.Stop(20 * time.Second)
		if code != 0 {
			t.Fatalf("%s: exit %d\n%s", tag, code, tail(out, 30))
		}
		ds := layerDigests(t, verifyImage(t, repo+":"+tag, metadataString(t, readMetadata(t, meta), "containerimage.digest")))
		if len(ds) != 7 {
			t.Fatalf("%s has %d layers, want 7 (busybox, 6 steps)", tag, len(ds))
		}
		return ds
	}
	l1 := build("v1")
	writeFiles(t, dir, map[string]string{"deps.lock": "dep 2.0\n"})
	gitCommit(t, dir, t0.Add(time.Hour), "the lockfile changes")
	l2 := build("v2")
	if l2[4] == l1[4] {
		t.Errorf("v2 (new lockfile) kept v1's dependency layer %s", l1[4])
	}
	changeSource(t, dir, t0.Add(2*time.Hour))
	l3 := build("v3")
	for i := range 5 {
		if l3[i] != l2[i] {
			t.Errorf("v3 (a source file changed after the new lockfile): layer %d is %s, v2's %s; want every layer before COPY src/ reused", i, l3[i], l2[i])
		}
	}
}
