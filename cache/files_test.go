package cache

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/strata-build/strata/buildcontext"
)

// layerTar is a layer as BuildKit writes a COPY: parent directories, then
// the files under their destination paths.
func layerTar(t testing.TB, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "app/", Mode: 0o755}); err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "app/" + name, Mode: 0o600, Size: int64(len(data)), ModTime: time.Unix(1, 0), Uid: 1000}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestFilesDigestMatchesTheContext(t *testing.T) {
	dir := t.TempDir()
	writeContext(t, dir, map[string]string{"Dockerfile": "FROM scratch\n", "package.json": "{}", "package-lock.json": "lock v1", "src/a.js": "a", ".dockerignore": "src/ignored\n", "src/ignored": "x"})
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
		d, err := FilesDigest(bytes.NewReader(layerTar(t, files)))
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	same := layer(map[string]string{"package.json": "{}", "package-lock.json": "lock v1"})
	if got := ctxDigest("package*.json"); got != same || !strings.HasPrefix(got, FilesPrefix) {
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

func writeContext(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// Three images built by another tool tie on text; the crawler reads their
// small COPY layers, and the image whose lockfile is the context's ranks
// first, although it is the oldest. A large COPY layer is compared by text
// and said so once.
func TestImageWithTheSameLockfileWins(t *testing.T) {
	host := faultyRegistry(t)
	dir := t.TempDir()
	df := "FROM localhost:5000/busybox:latest\nWORKDIR /app\nCOPY package-lock.json ./\nRUN npm ci\nCOPY . .\n"
	writeContext(t, dir, map[string]string{"Dockerfile": df, "package-lock.json": "lock B", "index.js": "v9"})
	bb := busyboxResolver(t)
	var baseCfg v1.ConfigFile
	if err := json.Unmarshal(bb.config, &baseCfg); err != nil {
		t.Fatal(err)
	}
	history := append(baseCfg.History, v1.History{CreatedBy: "WORKDIR /app", Comment: "buildkit.dockerfile.v0"})
	for _, s := range []string{"COPY package-lock.json ./", "RUN /bin/sh -c npm ci", "COPY . ."} {
		history = append(history, v1.History{CreatedBy: s + " # buildkit", Comment: "buildkit.dockerfile.v0"})
	}
	big := strings.Repeat("x", MaxFilesLayer+10)
	for i, lock := range []string{"lock A", "lock B", "lock C"} {
		layers := [][]byte{[]byte("base"), []byte("workdir"), layerTar(t, map[string]string{"package-lock.json": lock}), []byte("deps " + lock), layerTar(t, map[string]string{"index.js": big + lock})}
		cfg := testConfig("amd64", true, history, layers)
		// The matching image is the oldest.
		cfg = bytes.Replace(cfg, []byte("2026-01-01T00:00:00Z"), []byte(fmt.Sprintf("2026-01-0%dT00:00:00Z", 3-i%2*2)), 1)
		pushRaw(t, fmt.Sprintf("%s/team%c/app:latest", host, 'a'+i), types.OCIConfigJSON, cfg, layers)
	}
	x := NewIndex()
	res, err := Refresh(t.Context(), x, RefreshOptions{Registry: host, Repos: []string{"teama/app", "teamb/app", "teamc/app"}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.TextOnly, "3 are over") {
		t.Errorf("TextOnly = %q, want the three large COPY layers counted", res.TextOnly)
	}
	planned := NewIndex()
	for _, m := range x.Images() {
		if len(m.Steps) != 5 || !strings.HasPrefix(m.Steps[2].Sources, FilesPrefix) || m.Steps[4].Sources != "" {
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

// A registry that refuses to serve a COPY layer leaves the step a text
// match, said once for all the layers it refused.
func TestRefusedLayerReadsFallBackToText(t *testing.T) {
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	var refuse sync.Map
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := refuse.Load(path.Base(r.URL.Path)); ok && r.Method == http.MethodGet {
			http.Error(w, "denied", http.StatusForbidden)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	history := []v1.History{{CreatedBy: "base"}, {CreatedBy: "COPY lock ./ # buildkit"}}
	for i := range 2 {
		layers := [][]byte{[]byte("base"), layerTar(t, map[string]string{"lock": fmt.Sprint("lock", i)})}
		refuse.Store(fmt.Sprintf("sha256:%x", sha256.Sum256(layers[1])), true)
		pushRaw(t, fmt.Sprintf("%s/r%d/app:latest", host, i), types.OCIConfigJSON, testConfig("amd64", true, history, layers), layers)
	}
	x := NewIndex()
	res, err := Refresh(t.Context(), x, RefreshOptions{Registry: host, Repos: []string{"r0/app", "r1/app"}})
	if err != nil {
		t.Fatal(err)
	}
	if x.Len() != 2 || res.Skipped != 0 {
		t.Fatalf("%d images indexed, %d skipped; want both indexed", x.Len(), res.Skipped)
	}
	for _, m := range x.Images() {
		if m.Steps[1].Sources != "" {
			t.Errorf("%s: COPY sources %q from a layer the registry refused", m.Ref, m.Steps[1].Sources)
		}
	}
	if !strings.Contains(res.TextOnly, "2 could not be read") || strings.Count(res.TextOnly, "\n") != 0 {
		t.Errorf("TextOnly = %q, want one line counting the two refused layers", res.TextOnly)
	}
}
