package plan

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/strata-build/strata/cache"
)

var update = flag.Bool("update", false, "rewrite golden files")

// imageFromTestdata makes an index entry from a captured config, with
// made-up layer digests and sizes.
func imageFromTestdata(t testing.TB, ref, config string) *cache.Image {
	t.Helper()
	raw, err := os.ReadFile(config)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := v1.ParseConfigFile(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	steps, err := cache.NormalizeHistory(cf.History, len(cf.RootFS.DiffIDs))
	if err != nil {
		t.Fatal(err)
	}
	m := &cache.Image{Ref: ref, Digest: fakeDigest(ref), Platform: "linux/" + cf.Architecture, Steps: steps, InlineCache: true,
		Pushed: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Indexed: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	for i, d := range cf.RootFS.DiffIDs {
		m.Layers = append(m.Layers, cache.Layer{Digest: fakeDigest(fmt.Sprint(ref, i)), DiffID: d.String(), Size: int64(1000 * (i + 1))})
	}
	return m
}

func fakeDigest(s string) string {
	h := fmt.Sprintf("%x", []byte(s))
	for len(h) < 64 {
		h += h
	}
	return "sha256:" + h[:64]
}

// planIndex is the index the golden plans run against.
func planIndex(t testing.TB, copySources []string) *cache.Index {
	x := cache.NewIndex()
	cfg := "testdata/history/copy/config.json"
	full := imageFromTestdata(t, "localhost:5000/app:v1", cfg)
	x.Put(full)

	old := imageFromTestdata(t, "localhost:5000/app:v0", cfg) // built before the last steps were added
	old.Steps, old.Layers = old.Steps[:4], old.Layers[:4]
	x.Put(old)

	legacy := imageFromTestdata(t, "localhost:5000/app:legacy", cfg) // same steps, no inline cache
	legacy.InlineCache = false
	x.Put(legacy)

	otherBase := imageFromTestdata(t, "localhost:5000/app:oldbase", cfg) // an older base image
	otherBase.Layers[0].DiffID = fakeDigest("old busybox")
	x.Put(otherBase)

	recorded := imageFromTestdata(t, "localhost:5000/app:recorded", cfg) // records COPY sources: main.txt changed since
	for i, s := range copySources {
		recorded.Steps[2+i].Sources = s
	}
	recorded.Steps[2].Sources = "sha256:" + strings.Repeat("0", 64)
	x.Put(recorded)

	same := imageFromTestdata(t, "localhost:5000/app:same", cfg) // records COPY sources equal to the context
	for i, s := range copySources {
		same.Steps[2+i].Sources = s
	}
	same.Pushed = same.Pushed.Add(-time.Hour)
	x.Put(same)

	arm := imageFromTestdata(t, "localhost:5000/app:arm", cfg) // another platform
	arm.Platform = "linux/riscv64"
	x.Put(arm)
	return x
}

func TestPlanGolden(t *testing.T) {
	ctx := context.Background()
	dir := "testdata/history/copy"
	opt := PlanOptions{ContextDir: dir, BuildArgs: map[string]string{"BASE": "localhost:5000/busybox:latest"}, Resolver: busyboxResolver(t)}
	stages, err := DockerfileStages(ctx, StagesOptions{ContextDir: dir, BuildArgs: opt.BuildArgs, Resolver: opt.Resolver})
	if err != nil {
		t.Fatal(err)
	}
	var sources []string
	for _, s := range stages[len(stages)-1].ownSteps()[1:] {
		sources = append(sources, s.Sources)
	}
	opt.Index = planIndex(t, sources)
	for _, tc := range []struct {
		name string
		edit func(o *PlanOptions)
	}{
		{"copy", func(*PlanOptions) {}},
		{"copy-target-deps", func(o *PlanOptions) { o.Target = "deps" }},
		{"copy-riscv64", func(o *PlanOptions) { o.Platforms = []string{"linux/riscv64"} }},
		{"copy-empty-index", func(o *PlanOptions) { o.Index = cache.NewIndex() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := opt
			tc.edit(&o)
			plan, err := PlanBuild(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			var text, js bytes.Buffer
			if err := plan.WriteText(&text, 3); err != nil {
				t.Fatal(err)
			}
			if err := plan.WriteJSON(&js, 3); err != nil {
				t.Fatal(err)
			}
			golden(t, filepath.Join("testdata", "plans", tc.name+".txt"), text.Bytes())
			golden(t, filepath.Join("testdata", "plans", tc.name+".json"), js.Bytes())
		})
	}
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cache -run %s -update)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs; got:\n%s", path, got)
	}
}

func TestPlanCacheImports(t *testing.T) {
	ctx := context.Background()
	dir := "testdata/history/copy"
	args := map[string]string{"BASE": "localhost:5000/busybox:latest"}
	plan, err := PlanBuild(ctx, PlanOptions{ContextDir: dir, BuildArgs: args, Resolver: busyboxResolver(t), Index: planIndex(t, nil)})
	if err != nil {
		t.Fatal(err)
	}
	refs := plan.CacheImports(2)
	if len(refs) != 2 {
		t.Fatalf("imports %v", refs)
	}
	for _, r := range refs {
		if strings.Contains(r, "legacy") || strings.Contains(r, "oldbase") || !strings.Contains(r, "@sha256:") {
			t.Errorf("import %s: not pinned, or no inline cache, or another base", r)
		}
	}
	if got := plan.CacheImports(0); len(got) != 0 {
		t.Errorf("CacheImports(0) = %v", got)
	}
}

// countingResolver counts the base images it is asked for.
type countingResolver struct {
	staticResolver
	n int
}

func (c *countingResolver) ResolveBase(ctx context.Context, ref string, p v1.Platform) (string, []byte, error) {
	c.n++
	return c.staticResolver.ResolveBase(ctx, ref, p)
}

func TestPlannerResolvesEachBaseOnce(t *testing.T) {
	r := &countingResolver{staticResolver: busyboxResolver(t)}
	var p Planner
	opt := PlanOptions{ContextDir: "testdata/history/copy", BuildArgs: map[string]string{"BASE": "localhost:5000/busybox:latest"}, Resolver: r,
		Platforms: []string{"linux/amd64", "linux/arm64"}}
	for range 2 {
		if _, err := p.Plan(context.Background(), opt); err != nil {
			t.Fatal(err)
		}
	}
	if r.n != 2 {
		t.Errorf("resolved %d times, want once per platform", r.n)
	}
}

// An image under several tags counts once: its tags do not add up to a
// score that puts it before a better image.
func TestImportsCountAnImageOnce(t *testing.T) {
	cand := func(ref string, matched int, likely int64) Candidate {
		return Candidate{Ref: ref, CacheRef: ref + "@sha256:1", InlineCache: true, Matched: matched, Exact: 1,
			Match: append([]string{MatchExact}, slices.Repeat([]string{MatchText}, matched-1)...), BytesLikely: likely}
	}
	plan := &Plan{Stages: []StagePlan{{Stage: "0", Steps: make([]string, 4), Candidates: []Candidate{
		cand("r/wrong", 2, 40), cand("r/wrong", 2, 40), cand("r/wrong", 2, 40), cand("r/right", 2, 50), cand("r/other", 2, 10),
	}}}}
	got := plan.CacheImports(3)
	if want := []string{"r/right@sha256:1", "r/wrong@sha256:1", "r/other@sha256:1"}; !slices.Equal(got, want) {
		t.Errorf("imports %v, want %v", got, want)
	}
}
