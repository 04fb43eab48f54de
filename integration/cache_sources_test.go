package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-build/strata/cache"
	"github.com/strata-build/strata/cache/crawl"
	"github.com/strata-build/strata/cache/store"
)

// TestCacheRecordedSourcesMatchExactly checks that strata build --push
// records the COPY sources digest in the pushed image's history (keeping
// BuildKit's inline cache metadata), that the plan then matches the COPY
// exactly while the content is the same, and that it reports it changed,
// with the steps after it rebuilt, once it is not.
func TestCacheRecordedSourcesMatchExactly(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": fmt.Sprintf(planDockerfile, env.Busybox), "data.txt": "v1\n"})
	ref := env.Registry.Host + "/cache/recorded:v1"
	meta := t.TempDir() + "/m.json"
	if code, _, stderr := strata(t, "build", "--builder", env.Builder.Addr(), "--progress", "quiet", "--no-auto-cache", "-t", ref, "--push", "--metadata-file", meta, dir); code != 0 {
		t.Fatalf("build: exit %d: %s", code, stderr)
	}
	img := verifyImage(t, ref, metadataString(t, readMetadata(t, meta), "containerimage.digest"))
	raw, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Count(raw, []byte(cache.SourcesMarker)) != 1 || !bytes.Contains(raw, []byte(crawl.InlineCacheKey)) {
		t.Fatalf("pushed config does not record one COPY's sources beside the inline cache:\n%s", raw)
	}

	index := t.TempDir() + "/i.idx"
	if code, _, stderr := strata(t, "index", "add", "--index-file", index, ref); code != 0 {
		t.Fatalf("index add: %s", stderr)
	}
	c := runPlan(t, dir, index).Stages[0].Candidates
	if len(c) != 1 || strings.Join(c[0].Match, ",") != "exact,exact,exact" || c[0].Exact != 3 || !c[0].InlineCache {
		t.Fatalf("unchanged context: %+v", c)
	}
	writeFiles(t, dir, map[string]string{"data.txt": "v2\n"})
	c = runPlan(t, dir, index).Stages[0].Candidates
	if len(c) != 1 || strings.Join(c[0].Match, ",") != "exact,changed,rebuild" || c[0].Exact != 1 {
		t.Fatalf("changed context: %+v", c)
	}

}

// recordedAsIndexAdd checks that what strata build --push recorded for ref
// in the index file indexFile (from the bytes it pushed) is what `strata
// index add` reads back from the registry, every platform.
func recordedAsIndexAdd(t *testing.T, indexFile, ref string) {
	t.Helper()
	other := filepath.Join(t.TempDir(), "added.idx")
	if code, _, stderr := strata(t, "index", "add", "--index-file", other, ref); code != 0 {
		t.Fatalf("index add %s: exit %d: %s", ref, code, stderr)
	}
	entries := func(path string) string {
		t.Helper()
		x, _, err := store.LoadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var out []cache.Image
		for _, m := range x.Images() {
			if m.Ref == ref {
				cp := *m
				cp.Indexed = time.Time{}
				if time.Since(cp.Pushed) < time.Hour {
					// The config's created time is pinned (the
					// epoch): pushed is when it was indexed.
					cp.Pushed = time.Time{}
				}
				out = append(out, cp)
			}
		}
		dt, _ := json.MarshalIndent(out, "", " ")
		return string(dt)
	}
	recorded, added := entries(indexFile), entries(other)
	if recorded == "null" || recorded != added {
		t.Errorf("the build recorded %s as\n%s\nindex add reads it as\n%s", ref, recorded, added)
	}
}
