package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/strata-build/strata/build"
	"github.com/strata-build/strata/cache/store"
	"github.com/strata-build/strata/errs"
	"github.com/strata-build/strata/integration/testenv"
)

// heavyDockerfile has three steps that each take a while and write random
// (incompressible, never reproducible) data: if any step ran twice, its
// streamed layer would not be the final image's, and the bytes pushed would
// exceed the image's size.
const heavyDockerfile = `FROM %s
RUN head -c 3000000 /dev/urandom > /one && sleep 1
RUN head -c 3000000 /dev/urandom > /two && sleep 1
RUN head -c 3000000 /dev/urandom > /three && sleep 1
RUN echo done > /four
`

func TestStreamedPush(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": fmt.Sprintf(heavyDockerfile, env.Busybox)})
	// A repository with no tags yet: layers go up while they are compressed.
	ref := fmt.Sprintf("%s/stream/app-%d:v1", env.Registry.Host, time.Now().UnixNano())
	meta := filepath.Join(t.TempDir(), "m.json")
	// --no-cache: other tests build the same Dockerfile on this builder.
	code, _, stderr := strata(t, "build", "--builder", env.Builder.Addr(), "--progress", "plain", "--no-cache", "-t", ref, "--push", "--metadata-file", meta, dir)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, tail(stderr, 30))
	}
	m := readMetadata(t, meta)
	img := verifyImage(t, ref, metadataString(t, m, "containerimage.digest"))

	var st struct {
		Timings struct{ Solve float64 }
		Push    build.PushStats
	}
	if err := json.Unmarshal(m["strata"], &st); err != nil {
		t.Fatal(err)
	}
	if !st.Push.Streamed {
		t.Fatal("the push was not streamed")
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 5 || len(st.Push.Layers) != 5 {
		t.Fatalf("image has %d layers, metadata lists %d; want 5", len(layers), len(st.Push.Layers))
	}
	// Every blob of the image but the base layer (mounted from the busybox
	// repository) was sent exactly once, and nothing else was sent.
	if want := newBlobBytes(t, img); st.Push.BytesPushed != want {
		t.Errorf("bytes pushed = %d, want %d (each new blob once)", st.Push.BytesPushed, want)
	}
	if st.Push.Layers[0].Uploaded != 0 {
		t.Errorf("the base layer was uploaded (%d bytes) instead of mounted", st.Push.Layers[0].Uploaded)
	}
	for _, l := range st.Push.Layers[1:] {
		if l.Uploaded != l.Size {
			t.Errorf("layer %s: %d bytes uploaded, want its %d", l.Digest, l.Uploaded, l.Size)
		}
		// Layers too small to be checked against the registry first
		// are converted once they have arrived.
		if !l.Early && l.Bytes >= 64<<10 {
			t.Errorf("layer %s was not uploaded while it was compressed: %+v", l.Digest, l)
		}
	}
	for _, l := range st.Push.Layers {
		if l.Pushed <= 0 {
			t.Errorf("layer %s: no time for when the registry had it (%+v)", l.Digest, l)
		}
	}
	// The first heavy layer was in the registry before the build ended.
	first := st.Push.Layers[1]
	if first.Pushed <= 0 || first.Pushed >= st.Timings.Solve {
		t.Errorf("first layer pushed at %.2fs, build ended at %.2fs: no overlap", first.Pushed, st.Timings.Solve)
	}
	for i, l := range layers {
		d, _ := l.Digest()
		if st.Push.Layers[i].Digest.String() != d.String() {
			t.Errorf("metadata layer %d is %s, image layer is %s", i, st.Push.Layers[i].Digest, d)
		}
	}
}

// A streamed push reads <Dockerfile>.dockerignore as BuildKit does, in the
// prefix solves too: otherwise their COPY layer would not be the final
// image's, and strata would upload a blob no manifest references.
func TestStreamedPushDockerfileDockerignore(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"app.Dockerfile":              fmt.Sprintf("FROM %s\nCOPY . /src\nRUN ls /src > /listing && sleep 1\nRUN echo done > /done\n", env.Busybox),
		"app.Dockerfile.dockerignore": "secret.txt\n",
		".dockerignore":               "keep.txt\n", // not read: the Dockerfile's own ignore file wins
		"keep.txt":                    "keep\n",
		"secret.txt":                  "secret\n",
	})
	ref := env.Registry.Host + "/stream/ignore:v1"
	meta := filepath.Join(t.TempDir(), "m.json")
	code, _, stderr := strata(t, "build", "--builder", env.Builder.Addr(), "--progress", "plain", "-f", filepath.Join(dir, "app.Dockerfile"),
		"-t", ref, "--push", "--metadata-file", meta, dir)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, tail(stderr, 30))
	}
	m := readMetadata(t, meta)
	img := verifyImage(t, ref, metadataString(t, m, "containerimage.digest"))
	st := strataMetadata(t, m)
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if want := newBlobBytes(t, img); st.Push.BytesPushed != want {
		t.Errorf("bytes pushed = %d, want %d: a prefix built a layer the image does not have", st.Push.BytesPushed, want)
	}
	files := layerFiles(t, layers[1])
	if files["src/keep.txt"] == "" || files["src/secret.txt"] != "" || files["src/app.Dockerfile.dockerignore"] == "" {
		t.Errorf("COPY layer holds %v: want keep.txt and the ignore file, not secret.txt", files)
	}
}

// layerFiles lists the paths in a layer.
func layerFiles(t *testing.T, l v1.Layer) map[string]string {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	return readTarEntries(t, "layer", rc)
}

// newBlobBytes is the size of the blobs a push of img sends when the
// registry has only its base layer: every other layer and the config.
func newBlobBytes(t *testing.T, img v1.Image) int64 {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, l := range layers[1:] {
		size, err := l.Size()
		if err != nil {
			t.Fatal(err)
		}
		n += size
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return n + int64(len(cfg))
}

// Several platforms: one streamed push per platform, side by side, each
// manifest by digest, then an index over them under the tag. A layer the
// platforms build alike (the COPY layers, the RUN that writes the same
// file) is uploaded once. A new commit on a fresh runner reuses each
// platform's steps before the changed COPY, and none of the layers it
// reuses is read again: the push rewrites no layer's timestamps.
func TestStreamedPushSeveralPlatforms(t *testing.T) {
	// linux/386 runs on this machine's amd64 kernel, with no emulation.
	plats := []string{"linux/amd64", "linux/386"}
	t0 := time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)
	dir := gitApp(t, commitsDockerfile(), t0)
	// Through a proxy that counts each blob's uploads.
	proxy, err := testenv.StartProxy(env.Registry.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	repo := fmt.Sprintf("%s/platforms/app-%d", proxy.Host, time.Now().UnixNano())
	meta := filepath.Join(t.TempDir(), "m.json")
	build := func(runner, tag string) (strataMeta, v1.ImageIndex, string) {
		t.Helper()
		addr := freshRunner(t, runner)
		code, _, stderr := strata(t, "build", "--builder", addr, "--progress", "plain", "--platform", strings.Join(plats, ","),
			"-t", repo+":"+tag, "--push", "--metadata-file", meta, dir)
		if code != 0 {
			t.Fatalf("%s: exit %d\n%s", tag, code, tail(stderr, 30))
		}
		if strings.Contains(stderr, "rewriting layers") {
			t.Errorf("%s: BuildKit rewrote layers:\n%s", tag, tail(stderr, 30))
		}
		m := readMetadata(t, meta)
		st := strataMetadata(t, m)
		if !st.Push.Streamed {
			t.Errorf("%s: the push was not streamed: %s", tag, m["strata"])
		}
		r, err := name.ParseReference(repo+":"+tag, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		idx, err := remote.Index(r)
		if err != nil {
			t.Fatalf("%s is not an index: %v", tag, err)
		}
		if err := validate.Index(idx); err != nil {
			t.Fatalf("%s does not validate: %v", tag, err)
		}
		d, _ := idx.Digest()
		if got := metadataString(t, m, "containerimage.digest"); got != d.String() {
			t.Errorf("%s: metadata digest %s, the index is %s", tag, got, d)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		if len(im.Manifests) != len(plats) {
			t.Fatalf("%s: index lists %d images, want %d", tag, len(im.Manifests), len(plats))
		}
		for i, desc := range im.Manifests {
			if desc.Platform == nil || desc.Platform.OS+"/"+desc.Platform.Architecture != plats[i] {
				t.Errorf("%s: image %d is for %v, want %s", tag, i, desc.Platform, plats[i])
			}
		}
		return st, idx, stderr
	}
	layersOf := func(idx v1.ImageIndex, i int) []v1.Hash {
		t.Helper()
		im, _ := idx.IndexManifest()
		img, err := idx.Image(im.Manifests[i].Digest)
		if err != nil {
			t.Fatal(err)
		}
		return layerDigests(t, img)
	}

	st1, idx1, _ := build("platforms-v1", "v1")
	shared := 0
	for j, l := range layersOf(idx1, 0) {
		if l1 := layersOf(idx1, 1); j < len(l1) && l1[j] == l {
			shared++
		}
	}
	// The base image's layer, RUN tools, WORKDIR and both COPYs.
	if shared < 5 {
		t.Errorf("v1: the platforms' images share %d layers, want 5 or more", shared)
	}
	if n := proxy.MaxUploadsPerBlob(); n != 1 {
		t.Errorf("v1: a blob was uploaded %d times, want once", n)
	}
	listed := map[string]bool{}
	for _, l := range st1.Push.Layers {
		if listed[l.Digest.String()] {
			t.Errorf("v1: the metadata lists layer %s twice", l.Digest)
		}
		listed[l.Digest.String()] = true
	}
	recordedAsIndexAdd(t, os.Getenv(store.IndexFileEnv), repo+":v1")
	changeSource(t, dir, t0.Add(time.Hour))
	proxy.ResetUploads()
	st, idx2, stderr := build("platforms-v2", "v2")
	if n := proxy.MaxUploadsPerBlob(); n > 1 {
		t.Errorf("v2: a blob was uploaded %d times, want once", n)
	}
	// Per platform: RUN tools, WORKDIR, COPY deps.lock and RUN deps cached.
	if st.Steps.Total != 12 || st.Steps.Cached != 8 {
		t.Errorf("v2 on a fresh runner: steps %+v, want 8 of 12 cached\n%s", st.Steps, tail(stderr, 60))
	}
	for i := range plats {
		l1, l2 := layersOf(idx1, i), layersOf(idx2, i)
		if len(l1) != 7 || len(l2) != 7 {
			t.Fatalf("%s: v1 has %d layers, v2 %d; want 7", plats[i], len(l1), len(l2))
		}
		for j := range 7 {
			if same := l1[j] == l2[j]; same != (j < 5) {
				t.Errorf("%s layer %d: v1 %s, v2 %s; want the layers before COPY src/ shared and the rest new", plats[i], j, l1[j], l2[j])
			}
		}
	}
}

// A multi-platform push of a target that copies from another stage
// exports one registry cache (REPO:buildcache, by default) with every
// platform's records: each platform's build, on its own, would export its
// records only, over the other's. The next commit on a fresh runner then
// reuses the build stage of every platform.
func TestStreamedPushSeveralPlatformsExportsEveryPlatformsCache(t *testing.T) {
	plats := "linux/amd64,linux/386"
	t0 := time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)
	dir := gitApp(t, fmt.Sprintf(`FROM %[1]s AS build
ARG TARGETPLATFORM
RUN echo "built for $TARGETPLATFORM" > /out && head -c 100000 /dev/urandom >> /out
FROM %[1]s
COPY --from=build /out /out
COPY src/ /src/
`, env.Busybox), t0)
	repo := fmt.Sprintf("%s/platforms/cache-%d", env.Registry.Host, time.Now().UnixNano())
	meta := filepath.Join(t.TempDir(), "m.json")
	build := func(runner, tag string, flags ...string) strataMeta {
		t.Helper()
		addr := freshRunner(t, runner)
		args := append([]string{"build", "--builder", addr, "--progress", "plain", "--platform", plats,
			"-t", repo + ":" + tag, "--push", "--metadata-file", meta}, flags...)
		code, _, stderr := strata(t, append(args, dir)...)
		if code != 0 {
			t.Fatalf("%s: exit %d\n%s", tag, code, tail(stderr, 30))
		}
		if !strings.Contains(stderr, "exporting the cache of every platform to "+repo+":buildcache") {
			t.Errorf("%s: no cache export of every platform:\n%s", tag, tail(stderr, 30))
		}
		return strataMetadata(t, readMetadata(t, meta))
	}
	// --no-cache on a fresh runner changes nothing for the platforms'
	// builds; the cache export's solve must reuse what they made rather
	// than run the random step again, or the cache would not be v1's.
	build("platforms-cache-v1", "v1", "--no-cache")
	changeSource(t, dir, t0.Add(time.Hour))
	st := build("platforms-cache-v2", "v2")
	// Per platform: the build stage's RUN and the COPY --from cached, the
	// COPY of the changed source not.
	if st.Steps.Total != 6 || st.Steps.Cached != 4 {
		t.Errorf("v2 on a fresh runner: steps %+v, want 4 of 6 cached", st.Steps)
	}
	_, img1 := remoteImage(t, repo+":v1")
	_, img2 := remoteImage(t, repo+":v2")
	if out1, out2 := imageFiles(t, img1, "out")["out"], imageFiles(t, img2, "out")["out"]; out1 == "" || out1 != out2 {
		t.Errorf("v2's /out (%d bytes) is not v1's (%d bytes): the cache holds another run of the step", len(out2), len(out1))
	}
}

// A multi-platform push whose cache export fails moves no tag, as a
// one-platform build whose solve (and the cache export in it) fails: the
// cache goes out before the index goes under the tags.
func TestStreamedPushSeveralPlatformsFailedCacheExportMovesNoTag(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": fmt.Sprintf("FROM %s\nARG TARGETPLATFORM\nRUN echo \"$TARGETPLATFORM\" > /p\n", env.Busybox)})
	ref := fmt.Sprintf("%s/platforms/cache-fails-%d:v1", env.Registry.Host, time.Now().UnixNano())
	// Nothing listens on port 1 of the loopback: the export cannot reach it.
	code, _, stderr := strata(t, "build", "--builder", env.Builder.Addr(), "--progress", "plain",
		"--platform", "linux/amd64,linux/386", "-t", ref, "--push",
		"--cache-to", "type=registry,ref=127.0.0.1:1/nowhere/app:cache", dir)
	if code != errs.ExitRegistry {
		t.Fatalf("exit %d with a cache export to an unreachable registry, want %d\n%s", code, errs.ExitRegistry, tail(stderr, 20))
	}
	if last := lastLine(stderr); !strings.HasPrefix(last, "strata: ") || !strings.Contains(last, "--cache-to") {
		t.Errorf("error line %q does not say to check the --cache-to registry", last)
	}
	r, _ := name.ParseReference(ref, name.Insecure)
	if _, err := remote.Head(r); err == nil {
		t.Fatal("the tag exists although the cache export failed")
	}
}
