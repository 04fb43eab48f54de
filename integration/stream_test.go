package integration

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/strata-build/strata/build"
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
