package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/strata-build/strata/cache"
	"github.com/strata-build/strata/cache/plan"
	"github.com/strata-build/strata/cache/store"
)

const planDockerfile = `FROM %s
RUN echo setup > /setup
COPY data.txt /data.txt
RUN cat /setup /data.txt > /out
`

type planJSON struct {
	Stages []struct {
		Stage      string
		Steps      []string
		Candidates []plan.Candidate
	}
	Imports []plan.Import
}

// TestCacheIndexNeverCausesWrongBuild builds and pushes v1, indexes it,
// changes the content of a copied file, and checks that the plan offers v1
// (the COPY's files no longer match, but the step before it does), that a
// fresh buildkitd importing the plan's cache reuses the RUN before the COPY,
// rebuilds the COPY and the RUN after it, and that the output has the new
// content.
func TestCacheIndexNeverCausesWrongBuild(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": fmt.Sprintf(planDockerfile, env.Busybox), "data.txt": "v1\n"})
	ref := env.Registry.Host + "/cache/wrong:v1"
	// --stream=false: BuildKit pushes v1, so its history records no COPY
	// sources, as in images other tools built: the index reads the COPY's
	// small layer instead.
	if code, _, stderr := strata(t, "build", "--builder", env.Builder.Addr(), "--progress", "plain", "--stream=false", "-t", ref, "--push", dir); code != 0 {
		t.Fatalf("build v1: exit %d: %s", code, tail(stderr, 20))
	}
	indexFile := filepath.Join(t.TempDir(), "index.idx")
	code, out, stderr := strata(t, "index", "refresh", "--registry", env.Registry.Host, "--repo", "cache/wrong", "--index-file", indexFile, "--progress", "plain")
	if code != 0 || !strings.Contains(out, "1 fetched") {
		t.Fatalf("refresh: exit %d: %s %s", code, out, stderr)
	}

	if code, out, _ := strata(t, "index", "ls", "--index-file", indexFile); code != 0 || !strings.Contains(out, "cache/wrong:v1") || strings.Contains(out, "0001-01-01") {
		t.Fatalf("index ls: exit %d\n%s", code, out)
	}

	// Same content: every step matches, the COPY by the files of its layer.
	got := runPlan(t, dir, indexFile)
	c := got.Stages[0].Candidates
	if len(c) != 1 || c[0].Ref != ref || c[0].Matched != 3 || strings.Join(c[0].Match, ",") != "exact,exact,exact" || !c[0].InlineCache {
		t.Fatalf("plan of unchanged context: %+v", got)
	}

	writeFiles(t, dir, map[string]string{"data.txt": "v2, new content\n"})
	got = runPlan(t, dir, indexFile)
	c = got.Stages[0].Candidates
	if len(c) != 1 || c[0].Matched != 3 || c[0].Exact != 1 || c[0].Match[1] != plan.MatchChanged {
		t.Fatalf("plan after the change: %+v", got)
	}
	if len(got.Imports) != 1 || !strings.HasPrefix(got.Imports[0].Ref, env.Registry.Host+"/cache/wrong@sha256:") {
		t.Fatalf("imports: %+v", got.Imports)
	}

	fresh, err := env.StartBuildkitd(context.Background(), "fresh-"+t.Name())
	if err != nil {
		t.Fatal(err)
	}
	outDir := t.TempDir()
	meta := filepath.Join(t.TempDir(), "meta.json")
	code, _, stderr = strata(t, "build", "--builder", fresh.Addr(), "--progress", "plain", "--cache-from", got.Imports[0].Ref,
		"--metadata-file", meta, "--output", "type=local,dest="+outDir, dir)
	if code != 0 {
		t.Fatalf("build v2: exit %d: %s", code, tail(stderr, 30))
	}
	st := strataMetadata(t, readMetadata(t, meta))
	if st.Steps.Total != 3 || st.Steps.Cached != 1 {
		t.Errorf("steps %+v: want 3, only the RUN before the COPY cached", st.Steps)
	}
	// BuildKit reuses the RUN by pulling its layer from v1; the COPY of
	// changed content and the RUN after it run again.
	for _, step := range []string{"COPY data.txt /data.txt", "RUN cat /setup /data.txt > /out"} {
		id := vertexID(stderr, step)
		if id == "" || strings.Contains(stderr, id+" CACHED") || !strings.Contains(stderr, id+" DONE") {
			t.Errorf("step %q (vertex %s) was not run:\n%s", step, id, stderr)
		}
	}
	data, err := os.ReadFile(filepath.Join(outDir, "out"))
	if err != nil || string(data) != "setup\nv2, new content\n" {
		t.Fatalf("output %q, %v", data, err)
	}
}

func runPlan(t *testing.T, dir, indexFile string) planJSON {
	t.Helper()
	code, out, stderr := strata(t, "plan", "--index-file", indexFile, "--json", dir)
	if code != 0 {
		t.Fatalf("plan: exit %d: %s", code, stderr)
	}
	var p planJSON
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatalf("plan JSON: %v\n%s", err, out)
	}
	return p
}

// TestCacheSharedIndexConcurrentWriters runs 8 writers updating the shared
// index in the real registry at once, and checks no entry is lost; then
// that BuildKit can read the index image as a build stage.
func TestCacheSharedIndexConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	// A repository of its own per run, so -count=N starts empty each time.
	ref := fmt.Sprintf("%s/strata/index-%d:concurrent", env.Registry.Host, time.Now().UnixNano())
	const writers, each = 8, 25
	var wg sync.WaitGroup
	errc := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := store.NewRegistryStore(ref)
			if err != nil {
				errc <- err
				return
			}
			x := cache.NewIndex()
			for i := range each {
				x.Put(&cache.Image{Ref: fmt.Sprintf("%s/w%d/app:%d", env.Registry.Host, w, i), Digest: fmt.Sprintf("sha256:%064d", w*1000+i),
					Platform: "linux/amd64", InlineCache: true, Indexed: time.Now(),
					Steps:  []cache.Step{{Token: "RAW base", Text: "RAW base"}, {Token: fmt.Sprintf("RUN %d", i), Text: fmt.Sprintf("RUN %d", i)}},
					Layers: []cache.Layer{{Digest: "sha256:" + strings.Repeat("a", 64), DiffID: "sha256:" + strings.Repeat("b", 64), Size: 1}, {Size: 2}}})
			}
			if _, err := st.Update(ctx, x); err != nil {
				errc <- err
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	st, err := store.NewRegistryStore(ref)
	if err != nil {
		t.Fatal(err)
	}
	x, err := st.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if x.Len() != writers*each {
		t.Fatalf("shared index holds %d images, want %d", x.Len(), writers*each)
	}

	// A writer after the grace period collects the merged deltas.
	later, err := store.NewRegistryStore(ref, store.WithClock(func() time.Time { return time.Now().Add(time.Hour) }))
	if err != nil {
		t.Fatal(err)
	}
	one := cache.NewIndex()
	one.Put(&cache.Image{Ref: env.Registry.Host + "/late/app:1", Digest: "sha256:" + strings.Repeat("c", 64), Platform: "linux/amd64", Indexed: time.Now().Add(time.Hour)})
	if _, err := later.Update(ctx, one); err != nil {
		t.Fatal(err)
	}
	r, _ := name.ParseReference(ref, name.Insecure)
	tags, err := remote.List(r.Context())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, tag := range tags {
		if strings.HasPrefix(tag, "concurrent-delta-") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d deltas left after collection, want the last writer's: %v", n, tags)
	}
	if x, err := st.Load(ctx); err != nil || x.Len() != writers*each+1 {
		t.Fatalf("after collection: %v images, %v", x.Len(), err)
	}

	// The CLI reads the same index.
	code, out, stderr := strata(t, "index", "ls", "--index", ref)
	if code != 0 || strings.Count(out, "linux/amd64") != writers*each+1 {
		t.Fatalf("index ls: exit %d, %d lines: %s", code, strings.Count(out, "\n"), stderr)
	}

	// BuildKit reads the index image like any other (what a frontend's llb.Image + ReadFile does).
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": fmt.Sprintf("FROM %s AS index\nFROM %s\nCOPY --from=index /%s /index\nRUN test -s /index && head -c 8 /index > /magic\n", ref, env.Busybox, cache.IndexPath)})
	outDir := t.TempDir()
	if code, _, stderr := strata(t, "build", "--builder", env.Builder.Addr(), "--progress", "plain", "--output", "type=local,dest="+outDir, dir); code != 0 {
		t.Fatalf("build reading the index: exit %d: %s", code, tail(stderr, 20))
	}
	if magic, _ := os.ReadFile(filepath.Join(outDir, "magic")); string(magic) != "STRATAIX" {
		t.Errorf("index file read by BuildKit starts %q", magic)
	}
}

// vertexID finds the "#N" of the progress vertex whose name ends in step.
func vertexID(progress, step string) string {
	for _, l := range strings.Split(progress, "\n") {
		if id, rest, ok := strings.Cut(l, " "); ok && strings.HasPrefix(id, "#") && strings.HasSuffix(rest, step) && strings.HasPrefix(rest, "[") {
			return id
		}
	}
	return ""
}
