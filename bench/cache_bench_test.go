package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"

	"github.com/strata-build/strata/cache"
	"github.com/strata-build/strata/cache/crawl"
	"github.com/strata-build/strata/cache/plan"
	"github.com/strata-build/strata/cache/store"
	"github.com/strata-build/strata/integration/testenv"
)

// The cache index benchmarks. Each reports its figure and a ratio against
// a baseline measured in the same run:
//
//	BenchmarkCacheLoad100k     load 100,000 images (decode + trie) vs. reading the file
//	BenchmarkCachePlan10k      plan a Dockerfile against 10,000 images vs. loading them
//	BenchmarkCacheRefresh1000  crawl 1,000 new tags vs. a refresh with nothing new
//	                           (real distribution registry; skipped with -short)
//
// go test ./bench -run XXX -bench Cache -benchtime 3x

const benchDockerfile = `FROM localhost:5000/base:latest
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN go build -ldflags "-X main.version=$VERSION" -o /app ./cmd/app
`

// baseConfig is the base image every synthetic image is built on.
var baseConfig = []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:` + strings.Repeat("b", 64) + `"]},"history":[{"created_by":"base root filesystem"}]}`)

type staticResolver struct{}

func (staticResolver) ResolveBase(context.Context, string, v1.Platform) (string, []byte, error) {
	return "sha256:" + strings.Repeat("a", 64), baseConfig, nil
}

func digestOf(parts ...any) string {
	s := fmt.Sprint(parts...)
	h := fmt.Sprintf("%x", s)
	for len(h) < 64 {
		h += "0"
	}
	if len(h) > 64 {
		h = fmt.Sprintf("%064x", fnv(s))
	}
	return "sha256:" + h
}

func fnv(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// syntheticIndex makes repos×tags images shaped like real CI output: every
// repository shares the base and WORKDIR, its tags share the dependency
// steps, and each tag has its own build step. Repository 0 is built from
// benchDockerfile, so a plan of it finds its tags.
func syntheticIndex(tb testing.TB, dir string, repos, tags int) *cache.Index {
	tb.Helper()
	writeContext(tb, dir)
	stages, err := plan.DockerfileStages(context.Background(), plan.StagesOptions{ContextDir: dir, Resolver: staticResolver{}})
	if err != nil {
		tb.Fatal(err)
	}
	steps := stages[len(stages)-1].Steps
	x := cache.NewIndex()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for r := range repos {
		for t := range tags {
			m := &cache.Image{
				Ref: fmt.Sprintf("registry.example.com/team%d/app%d:build-%d", r%20, r, t), Digest: digestOf("m", r, t),
				Platform: "linux/amd64", InlineCache: true, Pushed: now.Add(time.Duration(t) * time.Minute), Indexed: now,
			}
			for i, s := range steps {
				switch {
				case i == 3 && r != 0: // each repository has its own dependencies
					s.Token, s.Text = fmt.Sprintf("RUN /bin/sh -c go mod download # app%d", r), fmt.Sprintf("RUN /bin/sh -c go mod download # app%d", r)
				case i == len(steps)-1: // each tag its own version
					s.Token = strings.Replace(s.Token, "VERSION=dev", fmt.Sprintf("VERSION=1.%d.%d", r, t), 1)
					s.Text = strings.Replace(s.Text, "VERSION=dev", fmt.Sprintf("VERSION=1.%d.%d", r, t), 1)
				}
				m.Steps = append(m.Steps, s)
				diff := digestOf("d", r, i)
				if i == 0 {
					diff = "sha256:" + strings.Repeat("b", 64)
				}
				if i >= 4 {
					diff = digestOf("d", r, t, i)
				}
				m.Layers = append(m.Layers, cache.Layer{Digest: digestOf("l", diff), DiffID: diff, Size: int64(1000 * (i + 1))})
			}
			x.Put(m)
		}
	}
	return x
}

func writeContext(tb testing.TB, dir string) {
	for name, content := range map[string]string{"Dockerfile": benchDockerfile, "go.mod": "module app\n", "go.sum": "", "main.go": "package main\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}

func saveIndex(tb testing.TB, x *cache.Index, path string) int64 {
	tb.Helper()
	if err := store.ReplaceFile(path, x); err != nil {
		tb.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		tb.Fatal(err)
	}
	return st.Size()
}

func loadIndex(tb testing.TB, path string) *cache.Index {
	x, warn, err := store.LoadFile(path)
	if err != nil || warn != nil {
		tb.Fatal(err, warn)
	}
	x.Longest("linux/amd64", nil) // build the trie: loaded means ready to query
	return x
}

func BenchmarkCacheLoad100k(b *testing.B) {
	dir := b.TempDir()
	path := filepath.Join(dir, "index.idx")
	size := saveIndex(b, syntheticIndex(b, dir, 1000, 100), path)
	var load, read time.Duration
	b.ResetTimer()
	for range b.N {
		t := time.Now()
		if _, err := os.ReadFile(path); err != nil {
			b.Fatal(err)
		}
		read += time.Since(t)
		t = time.Now()
		if x := loadIndex(b, path); x.Len() != 100000 {
			b.Fatalf("%d images", x.Len())
		}
		load += time.Since(t)
	}
	b.ReportMetric(float64(size)/1e6, "file-MB")
	b.ReportMetric(float64(load.Milliseconds())/float64(b.N), "load-ms")
	b.ReportMetric(float64(load)/float64(read), "load/readfile")
	b.ReportMetric(float64(load)/float64(b.N)/float64(time.Second), "load/1s-target")
}

func BenchmarkCachePlan10k(b *testing.B) {
	dir := b.TempDir()
	path := filepath.Join(dir, "index.idx")
	saveIndex(b, syntheticIndex(b, dir, 100, 100), path)
	ctx := context.Background()
	var planning, load time.Duration
	b.ResetTimer()
	for range b.N {
		t := time.Now()
		x := loadIndex(b, path)
		load += time.Since(t)
		t = time.Now()
		p, err := plan.PlanBuild(ctx, plan.PlanOptions{ContextDir: dir, Index: x, Resolver: staticResolver{}})
		if err != nil {
			b.Fatal(err)
		}
		planning += time.Since(t)
		if refs := p.CacheImports(3); len(refs) != 3 {
			b.Fatalf("imports %v", refs)
		}
	}
	b.ReportMetric(float64(planning.Microseconds())/1000/float64(b.N), "plan-ms")
	b.ReportMetric(float64(planning)/float64(load), "plan/load")
	b.ReportMetric(float64(planning)/float64(b.N)/float64(50*time.Millisecond), "plan/50ms-target")
}

func BenchmarkCacheRefresh1000(b *testing.B) {
	if testing.Short() {
		b.Skip("needs the registry binary")
	}
	ctx := context.Background()
	bin, err := testenv.EnsureTools(ctx)
	if err != nil {
		b.Fatal(err)
	}
	reg, err := testenv.StartRegistry(ctx, bin, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer reg.Stop()
	const repos, tags = 50, 20
	base, err := random.Layer(512, types.OCILayer)
	if err != nil {
		b.Fatal(err)
	}
	g, _ := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for r := range repos {
		for t := range tags {
			g.Go(func() error {
				top, err := random.Layer(256, types.OCILayer)
				if err != nil {
					return err
				}
				img, err := mutate.Append(empty.Image,
					mutate.Addendum{Layer: base, History: v1.History{CreatedBy: "base root filesystem"}},
					mutate.Addendum{Layer: top, History: v1.History{CreatedBy: fmt.Sprintf("RUN /bin/sh -c make VERSION=%d # buildkit", t)}})
				if err != nil {
					return err
				}
				_, err = testenv.PushImage(ctx, fmt.Sprintf("%s/bench/app%d:v%d", reg.Host, r, t), img)
				return err
			})
		}
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	var full, incremental time.Duration
	b.ResetTimer()
	for range b.N {
		x := cache.NewIndex()
		t := time.Now()
		res, err := crawl.Refresh(ctx, x, crawl.RefreshOptions{Registry: reg.Host})
		if err != nil || x.Len() != repos*tags || res.Fetched != repos*tags {
			b.Fatalf("refresh: %d images, %+v, %v", x.Len(), res, err)
		}
		full += time.Since(t)
		t = time.Now()
		res, err = crawl.Refresh(ctx, x, crawl.RefreshOptions{Registry: reg.Host})
		if err != nil || res.Fetched != 0 || res.Reused != repos*tags {
			b.Fatalf("incremental refresh: %+v, %v", res, err)
		}
		incremental += time.Since(t)
	}
	b.ReportMetric(full.Seconds()/float64(b.N), "refresh-s")
	b.ReportMetric(incremental.Seconds()/float64(b.N), "incremental-s")
	b.ReportMetric(float64(full)/float64(incremental), "refresh/incremental")
	b.ReportMetric(full.Seconds()/float64(b.N)/30, "refresh/30s-target")
}

func BenchmarkCacheSave100k(b *testing.B) {
	dir := b.TempDir()
	x := syntheticIndex(b, dir, 1000, 100)
	path := filepath.Join(dir, "index.idx")
	var save, load time.Duration
	b.ResetTimer()
	for range b.N {
		t := time.Now()
		saveIndex(b, x, path)
		save += time.Since(t)
		t = time.Now()
		loadIndex(b, path)
		load += time.Since(t)
	}
	b.ReportMetric(float64(save.Milliseconds())/float64(b.N), "save-ms")
	b.ReportMetric(float64(save)/float64(load), "save/load")
}

// BenchmarkCachePlanShallow100k plans against 100,000 images that all share
// only the first steps with the Dockerfile, so every one is a candidate to
// rank: the planner's worst case.
func BenchmarkCachePlanShallow100k(b *testing.B) {
	dir := b.TempDir()
	x := syntheticIndex(b, dir, 1000, 100)
	// Plan a variant of the Dockerfile that no repository has past COPY go.mod.
	df := strings.Replace(benchDockerfile, "RUN go mod download", "RUN go mod download -x", 1)
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	x.Longest("linux/amd64", nil)
	b.ResetTimer()
	var planning time.Duration
	for range b.N {
		t := time.Now()
		p, err := plan.PlanBuild(ctx, plan.PlanOptions{ContextDir: dir, Index: x, Resolver: staticResolver{}})
		if err != nil {
			b.Fatal(err)
		}
		planning += time.Since(t)
		if c := p.Stages[0].Candidates; len(c) != 5 || c[0].Matched != 2 {
			b.Fatalf("candidates %+v", c)
		}
	}
	b.ReportMetric(float64(planning.Microseconds())/1000/float64(b.N), "plan-ms")
}
