package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/moby/buildkit/frontend/dockerui"
	digest "github.com/opencontainers/go-digest"

	"github.com/strata-build/strata/buildcontext"
	"github.com/strata-build/strata/lint"
)

// corpusSize is the number of generated Dockerfiles one benchmark op lints.
const corpusSize = 10_000

// BenchmarkLintCorpus lints the generated corpus with strata (Dockerfile-only
// rules and BuildKit's checks, as strata lint runs them without a context)
// and, in the same run, with BuildKit's own dockerfile2llb.DockerfileLint.
// Compare the files/s metrics; run with -cpu 1 for one core.
func BenchmarkLintCorpus(b *testing.B) {
	corpus := lintCorpus(corpusSize, 1)
	b.Run("strata", func(b *testing.B) {
		for b.Loop() {
			for i, dt := range corpus {
				if _, err := lint.Lint(fmt.Sprintf("Dockerfile.%d", i), dt, lint.Options{}); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(b.N*len(corpus))/b.Elapsed().Seconds(), "files/s")
	})
	b.Run("strata-only-rules", func(b *testing.B) {
		off := false
		cfg := lint.DefaultConfig()
		cfg.BuildKitChecks = &off
		for b.Loop() {
			for i, dt := range corpus {
				if _, err := lint.Lint(fmt.Sprintf("Dockerfile.%d", i), dt, lint.Options{Config: cfg}); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(b.N*len(corpus))/b.Elapsed().Seconds(), "files/s")
	})
	b.Run("buildkit-DockerfileLint", func(b *testing.B) {
		ctx := context.Background()
		for b.Loop() {
			for _, dt := range corpus {
				sm := llb.NewSourceMap(nil, "Dockerfile", "Dockerfile", dt)
				sm.Definition = &llb.Definition{}
				res, err := dockerfile2llb.DockerfileLint(ctx, dt, dockerfile2llb.ConvertOpt{
					Config:       dockerui.Config{},
					MetaResolver: offlineResolver{},
					SourceMap:    sm,
				})
				if err != nil || res.Error != nil {
					b.Fatalf("%v %v", err, res.Error)
				}
			}
		}
		b.ReportMetric(float64(b.N*len(corpus))/b.Elapsed().Seconds(), "files/s")
	})
}

// offlineResolver answers base-image lookups with an empty linux/amd64
// config, so BuildKit's lint runs without a registry.
type offlineResolver struct{}

func (offlineResolver) ResolveImageConfig(_ context.Context, ref string, _ sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	return ref, digest.FromString(ref), []byte(`{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers"}}`), nil
}

// BenchmarkContextWalk walks a context of 100,000 files with a .dockerignore
// (what lint does once per context) and reports files/s.
func BenchmarkContextWalk(b *testing.B) {
	dir := b.TempDir()
	const dirs, perDir = 1000, 100
	for d := range dirs {
		sub := filepath.Join(dir, fmt.Sprintf("pkg%03d", d))
		if d%10 == 0 {
			sub = filepath.Join(dir, "node_modules", fmt.Sprintf("m%03d", d))
		}
		if err := os.MkdirAll(sub, 0o755); err != nil {
			b.Fatal(err)
		}
		for f := range perDir {
			if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%03d.go", f)), []byte("package x\n"), 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	ignore := "node_modules\n**/*.log\n!pkg001/keep.log\n# comment\n//pkg999\n"
	if err := os.WriteFile(filepath.Join(dir, ".dockerignore"), []byte(ignore), 0o644); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		c, err := buildcontext.Open(dir, "")
		if err != nil {
			b.Fatal(err)
		}
		files, err := c.Files()
		if err != nil {
			b.Fatal(err)
		}
		if len(files) < 80_000 {
			b.Fatalf("only %d files", len(files))
		}
	}
	b.ReportMetric(float64(b.N*dirs*perDir)/b.Elapsed().Seconds(), "files/s")
}
