package build

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/strata-build/strata/cache"
	"github.com/strata-build/strata/cache/plan"
	"github.com/strata-build/strata/cache/store"
	"github.com/strata-build/strata/frontend"
)

// The prefixes skipped are those the chosen imports are expected to give
// exactly; a better candidate that was not chosen does not count.
func TestCachedThrough(t *testing.T) {
	pl := &plan.Plan{Stages: []plan.StagePlan{
		{Stage: "deps", Lines: []int{2}, Candidates: []plan.Candidate{{CacheRef: "r/deps@sha256:1", Exact: 1}}},
		{Stage: "app", Lines: []int{6, 7, 8, 9}, Candidates: []plan.Candidate{
			{CacheRef: "r/other@sha256:2", Exact: 4},
			{CacheRef: "r/app@sha256:1", Exact: 2},
		}},
	}}
	for _, tc := range []struct {
		imports []string
		want    int
	}{
		{[]string{"r/app@sha256:1"}, 7},
		{[]string{"r/app@sha256:1", "r/other@sha256:2"}, 9},
		{[]string{"r/deps@sha256:1"}, 0}, // another stage's source
		{nil, 0},
	} {
		var ims []AutoImport
		for _, r := range tc.imports {
			ims = append(ims, AutoImport{Ref: r})
		}
		if got := cachedThrough(pl, ims); got != tc.want {
			t.Errorf("imports %v: cached through line %d, want %d", tc.imports, got, tc.want)
		}
	}
}

// Choose reads the options it is given and writes none of them: what it
// chose comes back in the Choice, which Apply puts in a copy.
func TestChooseReturnsItsChoice(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{"Dockerfile": "FROM scratch\nCOPY f /f\n", "f": "x"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	st := &store.FileStore{Path: filepath.Join(t.TempDir(), "index")}
	ac := &AutoCache{Store: st, Max: 3}
	opt := Options{ContextDir: dir, CacheFrom: make([]string, 1, 4)}
	// With nothing to choose from, the context walked beside the tags'
	// read still comes back, for the build to share.
	if c := ac.Choose(context.Background(), opt); c.Source == "" || c.Imports != nil || c.Context == nil {
		t.Errorf("empty index: chose %+v", c)
	}
	changes := cache.NewIndex()
	changes.Put(&cache.Image{Ref: "localhost:5000/other:v1", Digest: "sha256:" + strings.Repeat("1", 64), Platform: "linux/amd64", Indexed: time.Now()})
	if _, err := st.Update(context.Background(), changes); err != nil {
		t.Fatal(err)
	}
	var notes []string
	ac.Note = func(s string) { notes = append(notes, s) }
	c := ac.Choose(context.Background(), opt)
	if c.Context == nil || c.Context.Dir() == "" || !strings.Contains(c.Source, "(1 images)") || len(notes) != 1 {
		t.Errorf("chose %+v, noted %q", c, notes)
	}
	if opt.BuildContext != nil || opt.PlannedStage != nil || opt.parsed != nil {
		t.Errorf("Choose wrote the options: %+v", opt)
	}
	if c.Dockerfile == nil {
		t.Error("the choice does not carry the Dockerfile the plan parsed")
	}

	c.Imports = []AutoImport{{Ref: "r/a@sha256:1"}}
	c.CachedThrough = 2
	got := c.Apply(opt)
	if !slices.Equal(got.CacheFrom, []string{"", "r/a@sha256:1"}) || got.CachedThrough != 2 || got.BuildContext != c.Context || got.PlannedStage != c.Stage || got.parsed != c.Dockerfile {
		t.Errorf("Apply = %+v", got)
	}
	if opt.CacheFrom[:2][1] != "" {
		t.Error("Apply appended into the caller's CacheFrom")
	}
	if got := (Choice{}).Apply(Options{BuildContext: c.Context}); got.BuildContext != c.Context {
		t.Error("an empty choice dropped the caller's build context")
	}
}

func TestCacheExports(t *testing.T) {
	exports := []string{"r.example/app:a-cache", "r.example/app:cache", "r.example/app:buildcache", "r.example/app:z"}
	got := cacheExports(exports, nil)
	var refs []string
	for _, im := range got {
		refs = append(refs, im.Ref)
		if !strings.Contains(im.Reason, "registry cache export") {
			t.Errorf("%s: reason %q", im.Ref, im.Reason)
		}
	}
	if want := []string{"r.example/app:buildcache", "r.example/app:cache"}; !slices.Equal(refs, want) {
		t.Errorf("imports %v, want %v", refs, want)
	}
	if got := cacheExports(nil, nil); len(got) != 0 {
		t.Errorf("no exports: %v", got)
	}
	// One the build names in --cache-from is not imported twice.
	got = cacheExports(exports, []string{"type=registry,ref=r.example/app:buildcache"})
	if len(got) != 2 || got[0].Ref != "r.example/app:cache" || got[1].Ref != "r.example/app:a-cache" {
		t.Errorf("with --cache-from buildcache: %v", got)
	}
}

// directResolver resolves from the registry, in tests: it records what
// it is asked.
type directResolver struct{ asked []string }

func (d *directResolver) ResolveBase(_ context.Context, ref string, p v1.Platform) (string, []byte, error) {
	d.asked = append(d.asked, ref+" "+p.String())
	return "sha256:direct", []byte(`{}`), nil
}

// The choice resolves base images through the build's frontend; with
// none to ask it resolves them itself, for the same platform.
func TestSharedResolverWithoutAFrontend(t *testing.T) {
	r := frontend.NewResolves()
	r.NoGateway()
	direct := &directResolver{}
	s := &sharedResolver{r: r, mode: "default", direct: direct}
	d, _, err := s.ResolveBase(context.Background(), "busybox", v1.Platform{OS: "linux", Architecture: "arm64"})
	if err != nil || d != "sha256:direct" || !slices.Equal(direct.asked, []string{"busybox linux/arm64"}) {
		t.Errorf("ResolveBase = %s, %v; asked the registry %q", d, err, direct.asked)
	}
}
