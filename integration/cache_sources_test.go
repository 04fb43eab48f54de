package integration

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/strata-build/strata/cache"
	"github.com/strata-build/strata/cache/crawl"
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
