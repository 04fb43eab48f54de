package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-build/strata/cache"
)

// TestCacheRecordedSourcesMatchExactly records COPY sources digests in a
// pushed image's history (as the build side is to do), and checks that the
// plan then matches the COPY exactly while the content is the same, and
// reports it changed, with the steps after it rebuilt, once it is not.
func TestCacheRecordedSourcesMatchExactly(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": fmt.Sprintf(planDockerfile, env.Busybox), "data.txt": "v1\n"})
	ref := env.Registry.Host + "/cache/recorded:v1"
	if code, _, stderr := strata(t, "build", "--builder", env.Builder.Addr(), "--progress", "quiet", "-t", ref, "--push", dir); code != 0 {
		t.Fatalf("build: exit %d: %s", code, stderr)
	}
	stages, err := cache.DockerfileStages(ctx, cache.StagesOptions{ContextDir: dir, Resolver: cache.NewRegistryResolver()})
	if err != nil {
		t.Fatal(err)
	}
	recordSources(t, ref, &stages[0])

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

// recordSources rewrites ref's config with the stage's sources digests in
// its history comments, keeping every other byte of the config (BuildKit's
// inline cache metadata included), and pushes it under the same tag.
func recordSources(t *testing.T, ref string, st *cache.Stage) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := img.RawConfigFile()
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	var hist []ocispecs.History
	if err := json.Unmarshal(cfg["history"], &hist); err != nil {
		t.Fatal(err)
	}
	if n := cache.RecordSources(hist, st); n != 1 {
		t.Fatalf("recorded %d sources", n)
	}
	cfg["history"], _ = json.Marshal(hist)
	newRaw, _ := json.Marshal(cfg)
	cl := static.NewLayer(newRaw, types.OCIConfigJSON)
	if err := remote.WriteLayer(r.Context(), cl); err != nil {
		t.Fatal(err)
	}
	mf, _ := img.Manifest()
	mf = mf.DeepCopy()
	d, _ := cl.Digest()
	mf.Config = v1.Descriptor{MediaType: mf.Config.MediaType, Digest: d, Size: int64(len(newRaw))}
	body, _ := json.Marshal(mf)
	mt, _ := img.MediaType()
	if err := remote.Put(r, rawImage{mt: mt, body: body}); err != nil {
		t.Fatal(err)
	}
	if got, _ := remote.Image(r); got != nil {
		if raw, _ := got.RawConfigFile(); !bytes.Contains(raw, []byte(cache.SourcesMarker)) || !bytes.Contains(raw, []byte(cache.InlineCacheKey)) {
			t.Fatalf("rewritten config lacks sources or inline cache")
		}
	}
}

type rawImage struct {
	mt   types.MediaType
	body []byte
}

func (r rawImage) RawManifest() ([]byte, error)        { return r.body, nil }
func (r rawImage) MediaType() (types.MediaType, error) { return r.mt, nil }
