package integration

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// multiStageDockerfile: the dependency step is in a builder stage, which
// inline cache (the image's own layers) does not cover; BuildKit's
// registry cache with mode=max does.
func multiStageDockerfile() string {
	return fmt.Sprintf(`FROM %[1]s AS deps
WORKDIR /src
COPY deps.lock ./
RUN head -c 300000 /dev/urandom > /deps.bin && cat deps.lock > /deps
COPY src/ ./src/
RUN cat src/* > /out

FROM %[1]s
COPY --from=deps /deps.bin /app/deps.bin
COPY --from=deps /out /app/out
`, env.Busybox)
}

// A pipeline whose images (with inline cache) and mode=max registry cache
// plain BuildKit pushed (as docker buildx build --cache-to
// type=registry,mode=max and --cache-to type=inline do): strata on a fresh
// runner reuses the builder stage's dependency step, with the cache export
// named in --cache-from and with no flag at all (then the export alone is
// imported: BuildKit combining it with the image's inline cache may load
// neither for the steps both record).
func TestCacheFromRegistryCacheExport(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	dir := gitApp(t, multiStageDockerfile(), t0)
	repo := env.Registry.Host + "/cachexport/app"
	addr := freshRunner(t, "cachexport-v1")
	run(t, exec.Command(filepath.Join(env.BinDir, "buildctl"), "--addr", addr, "build", "--progress", "plain",
		"--frontend", "dockerfile.v0", "--local", "context="+dir, "--local", "dockerfile="+dir,
		"--export-cache", "type=registry,ref="+repo+":buildcache,mode=max", "--export-cache", "type=inline",
		"--output", "type=image,name="+repo+":latest,push=true"))

	changeSource(t, dir, t0.Add(time.Hour))
	// --cache-from first, pushing to another repository; then no flags,
	// into the repository of the export (its push overwrites the export).
	for _, tc := range []struct {
		name  string
		repo  string
		flags []string
	}{
		{"cache-from", repo + "-cf", []string{"--no-auto-cache", "--cache-from", "type=registry,ref=" + repo + ":buildcache"}},
		{"no flags", repo, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := freshRunner(t, "cachexport-v2")
			meta := filepath.Join(t.TempDir(), "m.json")
			args := append([]string{"build", "--builder", addr, "--progress", "plain", "-t", tc.repo + ":v2", "--push", "--metadata-file", meta}, tc.flags...)
			code, _, stderr := strata(t, append(args, dir)...)
			if code != 0 {
				t.Fatalf("v2: exit %d\n%s", code, tail(stderr, 20))
			}
			if tc.flags == nil && !strings.Contains(stderr, "cache from "+repo+":buildcache: registry cache export") {
				t.Errorf("the progress does not name the cache export:\n%s", tail(stderr, 60))
			}
			// WORKDIR, COPY deps.lock, RUN deps and COPY /deps.bin are cached.
			if st := strataMetadata(t, readMetadata(t, meta)); st.Steps.Total != 7 || st.Steps.Cached != 4 {
				t.Errorf("steps %+v, want 4 of 7 cached\n%s", st.Steps, tail(stderr, 60))
			}
		})
	}
}

// strata's --cache-to writes BuildKit's registry cache beside the streamed
// push, as docker buildx build does, and the next build on a fresh runner,
// with no flag, finds it in the target repository and imports it. A bad
// --cache-to is one usage error.
func TestCacheToRegistry(t *testing.T) {
	t0 := time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)
	dir := gitApp(t, multiStageDockerfile(), t0)
	repo := env.Registry.Host + "/cacheto/app"
	addr := freshRunner(t, "cacheto-v1")
	if code, _, stderr := strata(t, "build", "--builder", addr, "--progress", "plain", "-t", repo+":latest", "--push",
		"--cache-to", "type=registry,ref="+repo+":buildcache,mode=max", dir); code != 0 {
		t.Fatalf("v1: exit %d\n%s", code, tail(stderr, 20))
	}
	r, err := name.ParseReference(repo+":buildcache", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	d, err := remote.Get(r)
	if err != nil {
		t.Fatalf("no cache export at %s: %v", r, err)
	}
	if !strings.Contains(string(d.Manifest), "application/vnd.buildkit.cacheconfig.v0") {
		t.Fatalf("%s is not a registry cache export:\n%s", r, d.Manifest)
	}

	changeSource(t, dir, t0.Add(time.Hour))
	addr = freshRunner(t, "cacheto-v2")
	meta := filepath.Join(t.TempDir(), "m.json")
	code, _, stderr := strata(t, "build", "--builder", addr, "--progress", "plain", "-t", repo+":v2", "--push", "--metadata-file", meta, dir)
	if code != 0 {
		t.Fatalf("v2: exit %d\n%s", code, tail(stderr, 20))
	}
	if !strings.Contains(stderr, "cache from "+repo+":buildcache: registry cache export") || strings.Contains(stderr, "cache from "+repo+"@") {
		t.Errorf("the progress does not name the cache export alone:\n%s", tail(stderr, 60))
	}
	if st := strataMetadata(t, readMetadata(t, meta)); st.Steps.Total != 7 || st.Steps.Cached != 4 {
		t.Errorf("steps %+v, want 4 of 7 cached\n%s", st.Steps, tail(stderr, 60))
	}

	code, _, stderr = strata(t, "build", "--builder", addr, "--cache-to", "type=registry,mode=max", "-t", repo+":bad", dir)
	if code != 2 || !strings.Contains(stderr, "type=registry needs ref=") || strings.Count(strings.TrimSpace(stderr), "\n") > 1 {
		t.Errorf("--cache-to with no ref: exit %d\n%s", code, stderr)
	}
}

// With no flag at all, a push of a target that copies from other stages
// writes BuildKit's registry cache (mode=max) to REPO:buildcache, and the
// next build on a fresh runner reuses the builder stage's dependency step
// from it; a one-stage build writes none (its image's inline cache covers
// it), nor does --cache-to type=inline.
func TestDefaultCacheExport(t *testing.T) {
	t0 := time.Date(2026, 7, 1, 10, 0, 0, 0, time.UTC)
	exists := func(ref string) bool {
		r, err := name.ParseReference(ref, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		_, err = remote.Head(r)
		return err == nil
	}
	dir := gitApp(t, multiStageDockerfile(), t0)
	repo := env.Registry.Host + "/defaultexport/app"
	addr := freshRunner(t, "defaultexport-v1")
	code, _, stderr := strata(t, "build", "--builder", addr, "--progress", "plain", "-t", repo+":latest", "--push", dir)
	if code != 0 {
		t.Fatalf("v1: exit %d\n%s", code, tail(stderr, 20))
	}
	if !exists(repo+":buildcache") || !strings.Contains(stderr, "strata: cache export to "+repo+":buildcache") {
		t.Fatalf("no cache export at %s:buildcache, or the progress does not say so:\n%s", repo, tail(stderr, 40))
	}
	changeSource(t, dir, t0.Add(time.Hour))
	addr = freshRunner(t, "defaultexport-v2")
	meta := filepath.Join(t.TempDir(), "m.json")
	code, _, stderr = strata(t, "build", "--builder", addr, "--progress", "plain", "-t", repo+":v2", "--push", "--metadata-file", meta, dir)
	if code != 0 {
		t.Fatalf("v2: exit %d\n%s", code, tail(stderr, 20))
	}
	if st := strataMetadata(t, readMetadata(t, meta)); st.Steps.Total != 7 || st.Steps.Cached != 4 {
		t.Errorf("v2: steps %+v, want 4 of 7 cached\n%s", st.Steps, tail(stderr, 60))
	}
	// With a shared index (no target repository read), the export is
	// looked for where a push writes it.
	addr = freshRunner(t, "defaultexport-index")
	code, _, stderr = strata(t, "build", "--builder", addr, "--progress", "plain", "--index", repo+"-index:main", "-t", repo+":v2-index", "--push", "--metadata-file", meta, dir)
	if code != 0 {
		t.Fatalf("v2 with --index: exit %d\n%s", code, tail(stderr, 20))
	}
	if st := strataMetadata(t, readMetadata(t, meta)); st.Steps.Total != 7 || st.Steps.Cached < 4 {
		t.Errorf("v2 with --index: steps %+v, want at least 4 of 7 cached\n%s", st.Steps, tail(stderr, 60))
	}

	for _, tc := range []struct {
		name, dockerfile string
		flags            []string
	}{
		{"one stage", commitsDockerfile(), nil},
		{"type=inline", multiStageDockerfile(), []string{"--cache-to", "type=inline"}},
	} {
		dir := gitApp(t, tc.dockerfile, t0)
		repo := env.Registry.Host + "/defaultexport/" + strings.NewReplacer(" ", "-", "=", "-").Replace(tc.name)
		args := append([]string{"build", "--builder", addr, "--progress", "plain", "-t", repo + ":latest", "--push"}, tc.flags...)
		if code, _, stderr := strata(t, append(args, dir)...); code != 0 {
			t.Fatalf("%s: exit %d\n%s", tc.name, code, tail(stderr, 20))
		}
		if exists(repo + ":buildcache") {
			t.Errorf("%s: a cache export was written", tc.name)
		}
	}
}
