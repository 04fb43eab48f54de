package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"

	"github.com/strata-build/strata/integration/testenv"
)

// heavySteps is the streamed-push workload: heavy steps, each a few seconds
// of work producing MB megabytes, half random (incompressible) and half
// compressible, then a small step.
const heavySteps = `FROM %[1]s
RUN head -c %[2]d000000 /dev/urandom > /r1 && yes strata-one | head -c %[2]d000000 > /z1 && for i in $(seq %[3]d); do sha256sum /r1 /z1 >/dev/null; done
RUN head -c %[2]d000000 /dev/urandom > /r2 && yes strata-two | head -c %[2]d000000 > /z2 && for i in $(seq %[3]d); do sha256sum /r2 /z2 >/dev/null; done
RUN head -c %[2]d000000 /dev/urandom > /r3 && yes strata-three | head -c %[2]d000000 > /z3 && for i in $(seq %[3]d); do sha256sum /r3 /z3 >/dev/null; done
RUN head -c %[2]d000000 /dev/urandom > /r4 && yes strata-four | head -c %[2]d000000 > /z4 && for i in $(seq %[3]d); do sha256sum /r4 /z4 >/dev/null; done
RUN echo done > /done
`

// pushScenario compares BuildKit's push after the build (buildctl
// --output type=image,push=true) with strata's streamed push, beside the
// build alone, on the same fresh builders and registry.
func pushScenario(ctx context.Context, b *bed, cfg config, link string, proxy *testenv.Proxy) ([]Result, error) {
	ctxDir := filepath.Join(b.dir, "push-context")
	if err := os.MkdirAll(ctxDir, 0o755); err != nil {
		return nil, err
	}
	// The base image comes through the proxy too, as from a remote registry.
	df := fmt.Sprintf(heavySteps, proxy.Host+"/busybox:latest", cfg.StepMB/2, cfg.Work)
	if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte(df), 0o644); err != nil {
		return nil, err
	}
	bin := b.env.BinDir
	// With -compression, every contender compresses new layers that way.
	outAttrs, strataFlags, suffix := "", []string{}, ""
	if cfg.Compression != "" {
		outAttrs = ",compression=" + cfg.Compression + ",oci-mediatypes=true"
		strataFlags = []string{"--compression", cfg.Compression}
		suffix = " (" + cfg.Compression + ")"
	}
	contenders := []struct {
		name string
		args func(addr, ref string) (string, []string)
	}{
		{"build only (no push)", func(addr, ref string) (string, []string) {
			return filepath.Join(bin, "buildctl"), []string{"--addr", addr, "build", "--progress", "rawjson", "--frontend", "dockerfile.v0",
				"--local", "context=" + ctxDir, "--local", "dockerfile=" + ctxDir}
		}},
		{"buildctl push=true" + suffix, func(addr, ref string) (string, []string) {
			return filepath.Join(bin, "buildctl"), []string{"--addr", addr, "build", "--progress", "rawjson", "--frontend", "dockerfile.v0",
				"--local", "context=" + ctxDir, "--local", "dockerfile=" + ctxDir,
				"--output", "type=image,name=" + ref + ",push=true" + outAttrs}
		}},
		{"strata build --push" + suffix, func(addr, ref string) (string, []string) {
			return filepath.Join(bin, "strata"), append([]string{"build", "--builder", addr, "--progress", "rawjson", "--no-auto-cache", "-t", ref, "--push",
				"--metadata-file", filepath.Join(b.dir, "strata-metadata.json")}, append(strataFlags, ctxDir)...)
		}},
	}
	if cfg.KeepTimes {
		contenders = append(contenders, struct {
			name string
			args func(addr, ref string) (string, []string)
		}{"strata build --push --reproducible=false" + suffix, func(addr, ref string) (string, []string) {
			return filepath.Join(bin, "strata"), append([]string{"build", "--builder", addr, "--progress", "rawjson", "--no-auto-cache", "--reproducible=false", "-t", ref, "--push"},
				append(strataFlags, ctxDir)...)
		}})
	}
	runs := make([][]Run, len(contenders))
	for i := range cfg.Runs {
		// Contenders take turns within each round, so drift on the machine
		// spreads over all of them.
		for c, ct := range contenders {
			ref := fmt.Sprintf("%s/bench/push-%d-%d-%s:latest", proxy.Host, c, i, slug(link))
			r, err := b.measure(ctx, proxy, func(addr string) (string, []string) { return ct.args(addr, ref) })
			if err != nil {
				return nil, err
			}
			runs[c] = append(runs[c], r)
			logf("push/%s %-22s run %d: %.1fs (tail %.1fs), %d blob uploads, %.1f MB up", link, ct.name, i+1, r.Wall, r.Tail, r.BlobUploads, float64(r.BytesUp)/1e6)
			if ct.name == "strata build --push"+suffix {
				logLayers(filepath.Join(b.dir, "strata-metadata.json"))
				secs, mb, err := lastLayerAlone(ctx, b.env.Registry.Host, proxy, ref, fmt.Sprintf("%s-%d", slug(link), i))
				if err != nil {
					return nil, err
				}
				runs[c][len(runs[c])-1].LastLayerAlone, runs[c][len(runs[c])-1].LastLayerAloneMB = secs, mb
				logf("    its last layer over 1 MB (%.1f MB) and a manifest alone: %.2fs", mb, secs)
			}
		}
	}
	names := make([]string, len(contenders))
	for c, ct := range contenders {
		names[c] = ct.name
	}
	return compare("streamed-push", link, names, runs, 1), nil
}

// logLayers prints when each layer was exported and when it was in the registry.
func logLayers(metaFile string) {
	dt, err := os.ReadFile(metaFile)
	if err != nil {
		return
	}
	var m struct {
		Strata struct {
			Timings struct{ Solve float64 }
			Push    struct {
				Layers []struct {
					Digest   string
					Size     int64   `json:"compressedSize"`
					Built    float64 `json:"built"`
					Pushed   float64 `json:"pushed"`
					Uploaded int64   `json:"uploadedBytes"`
				}
			}
		}
	}
	if json.Unmarshal(dt, &m) != nil {
		return
	}
	logf("    solve ended at %.1fs", m.Strata.Timings.Solve)
	for _, l := range m.Strata.Push.Layers {
		logf("    layer %.19s %6.1f MB exported %5.1fs in registry %5.1fs", l.Digest, float64(l.Size)/1e6, l.Built, l.Pushed)
	}
}

// lastLayerAlone pushes the last layer of over 1 MB of the image ref (read
// from the registry directly), with a config and a manifest of its own, to
// a new repository through proxy, and returns how long that took and the
// layer's size in MB: what any push has left to do at best once the last
// step has made its layer.
func lastLayerAlone(ctx context.Context, registry string, proxy *testenv.Proxy, ref, suffix string) (float64, float64, error) {
	src, err := name.ParseReference(strings.Replace(ref, proxy.Host, registry, 1), name.Insecure)
	if err != nil {
		return 0, 0, err
	}
	img, err := remote.Image(src, remote.WithContext(ctx))
	if err != nil {
		return 0, 0, err
	}
	layers, err := img.Layers()
	if err != nil {
		return 0, 0, err
	}
	var last v1.Layer
	for i := len(layers) - 1; i >= 0 && last == nil; i-- {
		if n, err := layers[i].Size(); err == nil && n > 1<<20 {
			last = layers[i]
		}
	}
	if last == nil {
		return 0, 0, fmt.Errorf("%s has no layer over 1 MB", ref)
	}
	mt, err := last.MediaType()
	if err != nil {
		return 0, 0, err
	}
	rc, err := last.Compressed()
	if err != nil {
		return 0, 0, err
	}
	var buf bytes.Buffer
	_, err = io.Copy(&buf, rc)
	rc.Close()
	if err != nil {
		return 0, 0, err
	}
	alone, err := mutate.AppendLayers(empty.Image, static.NewLayer(buf.Bytes(), mt))
	if err != nil {
		return 0, 0, err
	}
	dst, err := name.ParseReference(proxy.Host+"/bench/last-layer-alone-"+suffix+":latest", name.Insecure)
	if err != nil {
		return 0, 0, err
	}
	start := time.Now()
	if err := remote.Write(dst, alone, remote.WithContext(ctx)); err != nil {
		return 0, 0, fmt.Errorf("pushing the last layer alone: %w", err)
	}
	return time.Since(start).Seconds(), float64(buf.Len()) / 1e6, nil
}
