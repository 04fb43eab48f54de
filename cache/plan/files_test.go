package plan

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/strata-build/strata/buildcontext"
	"github.com/strata-build/strata/cache"
	"github.com/strata-build/strata/cache/crawl"
	"github.com/strata-build/strata/cache/internal/cachetest"
)

func TestFilesDigestMatchesTheContext(t *testing.T) {
	dir := t.TempDir()
	cachetest.WriteContext(t, dir, map[string]string{"Dockerfile": "FROM scratch\n", "package.json": "{}", "package-lock.json": "lock v1", "src/a.js": "a", ".dockerignore": "src/ignored\n", "src/ignored": "x"})
	bc, err := buildcontext.Open(dir, filepath.Join(dir, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	ctxDigest := func(srcs ...string) string {
		d, err := contextFilesDigest(bc, srcs, nil)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	layer := func(files map[string]string) string {
		d, err := crawl.FilesDigest(bytes.NewReader(cachetest.LayerTar(t, files)))
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	same := layer(map[string]string{"package.json": "{}", "package-lock.json": "lock v1"})
	if got := ctxDigest("package*.json"); got != same || !strings.HasPrefix(got, cache.FilesPrefix) {
		t.Errorf("context %s, layer %s: want equal", got, same)
	}
	if got := ctxDigest("package.json", "package-lock.json"); got != same {
		t.Errorf("two sources: %s, want %s", got, same)
	}
	if other := layer(map[string]string{"package.json": "{}", "package-lock.json": "lock v2"}); other == same {
		t.Error("a different lockfile gives the same digest")
	}
	// The ignored file is not copied, so it is not counted.
	if got, want := ctxDigest("src"), layer(map[string]string{"a.js": "a"}); got != want {
		t.Errorf("src/: %s, want %s", got, want)
	}
	heredoc, err := contextFilesDigest(bc, nil, []instructions.SourceContent{{Path: "x", Data: "hello\n"}})
	if err != nil || heredoc != layer(map[string]string{"x": "hello\n"}) {
		t.Errorf("heredoc %s (%v) does not match its layer", heredoc, err)
	}
}

// Three images built by another tool tie on text; the crawler reads their
// small COPY layers, and the image whose lockfile is the context's ranks
// first, although it is the oldest. A large COPY layer is compared by text
// and said so once.
func TestImageWithTheSameLockfileWins(t *testing.T) {
	host := cachetest.FaultyRegistry(t)
	dir := t.TempDir()
	df := "FROM localhost:5000/busybox:latest\nWORKDIR /app\nCOPY package-lock.json ./\nRUN npm ci\nCOPY . .\n"
	cachetest.WriteContext(t, dir, map[string]string{"Dockerfile": df, "package-lock.json": "lock B", "index.js": "v9"})
	bb := busyboxResolver(t)
	var baseCfg v1.ConfigFile
	if err := json.Unmarshal(bb.config, &baseCfg); err != nil {
		t.Fatal(err)
	}
	history := append(baseCfg.History, v1.History{CreatedBy: "WORKDIR /app", Comment: "buildkit.dockerfile.v0"})
	for _, s := range []string{"COPY package-lock.json ./", "RUN /bin/sh -c npm ci", "COPY . ."} {
		history = append(history, v1.History{CreatedBy: s + " # buildkit", Comment: "buildkit.dockerfile.v0"})
	}
	big := strings.Repeat("x", crawl.MaxFilesLayer+10)
	for i, lock := range []string{"lock A", "lock B", "lock C"} {
		layers := [][]byte{[]byte("base"), []byte("workdir"), cachetest.LayerTar(t, map[string]string{"package-lock.json": lock}), []byte("deps " + lock), cachetest.LayerTar(t, map[string]string{"index.js": big + lock})}
		cfg := cachetest.Config("amd64", true, history, layers)
		// The matching image is the oldest.
		cfg = bytes.Replace(cfg, []byte("2026-01-01T00:00:00Z"), []byte(fmt.Sprintf("2026-01-0%dT00:00:00Z", 3-i%2*2)), 1)
		cachetest.PushRaw(t, fmt.Sprintf("%s/team%c/app:latest", host, 'a'+i), types.OCIConfigJSON, cfg, layers)
	}
	x := cache.NewIndex()
	res, err := crawl.Refresh(t.Context(), x, crawl.RefreshOptions{Registry: host, Repos: []string{"teama/app", "teamb/app", "teamc/app"}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.TextOnly, "3 are over") {
		t.Errorf("TextOnly = %q, want the three large COPY layers counted", res.TextOnly)
	}
	planned := cache.NewIndex()
	for _, m := range x.Images() {
		if len(m.Steps) != 5 || !strings.HasPrefix(m.Steps[2].Sources, cache.FilesPrefix) || m.Steps[4].Sources != "" {
			t.Fatalf("%s: steps %+v; want the small COPY layer's files digest and nothing for the large one", m.Ref, m.Steps)
		}
		// The images are built on the test's busybox.
		m.Layers[0].DiffID = baseCfg.RootFS.DiffIDs[0].String()
		planned.Put(m)
	}
	plan, err := PlanBuild(t.Context(), PlanOptions{ContextDir: dir, Index: planned, Resolver: bb, Platforms: []string{"linux/amd64"}})
	if err != nil {
		t.Fatal(err)
	}
	im := plan.Imports(3)
	if len(im) == 0 || !strings.Contains(im[0].Ref, "/teamb/app@") {
		t.Fatalf("imports %+v, want teamb's image (the same lockfile) first", im)
	}
	for _, c := range plan.Stages[len(plan.Stages)-1].Candidates {
		want := []string{MatchExact, MatchChanged, MatchRebuild, MatchRebuild}
		if strings.Contains(c.Ref, "/teamb/") {
			want = []string{MatchExact, MatchExact, MatchExact, MatchText}
		}
		if !slices.Equal(c.Match, want) {
			t.Errorf("%s: match %v, want %v", c.Ref, c.Match, want)
		}
	}
}
