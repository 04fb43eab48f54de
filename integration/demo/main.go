// Command demo runs strata's main job end to end on a fresh machine: it
// starts a local registry seeded with a busybox base image, builds and pushes
// an example app with `strata build --push` on strata's own buildkitd (started
// on first use), changes one source file, rebuilds, and prints what was
// cached and pushed. `make demo` runs it.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/strata-build/strata/integration/testenv"
)

const dockerfile = `FROM %s
# System packages and dependencies come before the source, so a source
# change reuses them.
RUN mkdir -p /opt/deps && for i in 1 2 3 4 5 6 7 8; do yes "dep$i" | head -c 4000000 > /opt/deps/lib$i.so; done
WORKDIR /app
COPY go.mod ./
RUN echo "resolving modules from go.mod" && sha256sum go.mod > /opt/deps/modules.sum
COPY src/ ./src/
RUN cat src/*.txt > app.out && wc -c app.out
CMD ["cat", "/app/app.out"]
`

func main() {
	keep := flag.Bool("keep", false, "keep the registry running until interrupted")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *keep); err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, keep bool) error {
	bin, err := testenv.EnsureTools(ctx)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "strata-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	step("starting a local registry (distribution v3, filesystem storage)")
	reg, err := testenv.StartRegistry(ctx, bin, filepath.Join(work, "registry"))
	if err != nil {
		return err
	}
	defer reg.Stop()
	base := reg.Host + "/busybox:latest"
	if _, err := testenv.PushBusybox(ctx, base); err != nil {
		return err
	}
	fmt.Printf("    registry %s (pid %d), base image %s\n", reg.Host, reg.PID(), base)

	app := filepath.Join(work, "app")
	files := map[string]string{
		"Dockerfile":    fmt.Sprintf(dockerfile, base),
		".dockerignore": ".git\n*.log\n",
		"go.mod":        "module example.com/app\n\ngo 1.26\n",
		"src/main.txt":  "hello, version 1\n",
		"src/util.txt":  "utilities\n",
	}
	for p, c := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(app, p)), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(app, p), []byte(c), 0o644); err != nil {
			return err
		}
	}

	// The demo's registry lives only as long as the demo: keep its images
	// out of the user's own cache index.
	os.Setenv("STRATA_INDEX_FILE", filepath.Join(work, "index.idx"))
	strata := filepath.Join(bin, "strata")
	ref := reg.Host + "/demo/app"
	step("strata build --push (v1): strata starts its own buildkitd if none runs")
	m1, err := build(ctx, strata, app, ref+":v1", filepath.Join(work, "v1.json"))
	if err != nil {
		return err
	}
	step("changing one source file")
	if err := os.WriteFile(filepath.Join(app, "src/main.txt"), []byte("hello, version 2\n"), 0o644); err != nil {
		return err
	}
	step("strata build --push (v2)")
	m2, err := build(ctx, strata, app, ref+":v2", filepath.Join(work, "v2.json"))
	if err != nil {
		return err
	}

	step("verifying the pushed images (every blob pulled back and its digest checked)")
	for _, m := range []*metadata{m1, m2} {
		r, err := name.ParseReference(m.Name, name.Insecure)
		if err != nil {
			return err
		}
		img, err := remote.Image(r, remote.WithContext(ctx))
		if err != nil {
			return err
		}
		if err := validate.Image(img); err != nil {
			return fmt.Errorf("%s: %w", m.Name, err)
		}
		fmt.Printf("    %s@%s ok\n", m.Name, m.Digest)
	}

	fmt.Printf("\n%-4s %8s %8s %10s\n", "", "steps", "cached", "seconds")
	for _, m := range []*metadata{m1, m2} {
		fmt.Printf("%-4s %8d %8d %10.1f\n", m.tag, m.Strata.Steps.Total, m.Strata.Steps.Cached, m.Strata.Timings.Total)
	}
	fmt.Printf("\nv2 reused %d of %d steps after a one-file change. The builder keeps running for the next build;\nstop it with: %s builder stop\n",
		m2.Strata.Steps.Cached, m2.Strata.Steps.Total, strata)
	if keep {
		fmt.Printf("registry %s runs until Ctrl-C\n", reg.Host)
		<-ctx.Done()
	}
	return nil
}

type metadata struct {
	tag    string
	Name   string `json:"image.name"`
	Digest string `json:"containerimage.digest"`
	Strata struct {
		Timings struct{ Total float64 }
		Steps   struct{ Total, Cached int }
	} `json:"strata"`
}

func build(ctx context.Context, strata, dir, ref, metaFile string) (*metadata, error) {
	start := time.Now()
	cmd := exec.CommandContext(ctx, strata, "build", "--progress", "plain", "-t", ref, "--push", "--metadata-file", metaFile, dir)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("strata build %s: %w", ref, err)
	}
	dt, err := os.ReadFile(metaFile)
	if err != nil {
		return nil, err
	}
	m := &metadata{tag: ref[len(ref)-2:]}
	if err := json.Unmarshal(dt, m); err != nil {
		return nil, err
	}
	fmt.Printf("    built and pushed %s in %.1fs\n", ref, time.Since(start).Seconds())
	return m, nil
}

func step(s string) { fmt.Printf("\n==> %s\n", s) }
