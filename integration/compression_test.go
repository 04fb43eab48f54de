package integration

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
)

// --compression=zstd: the layers the build creates are zstd, in both the
// streamed push and BuildKit's own, the base image's layer keeps its gzip,
// and the pushed image verifies blob by blob.
func TestPushCompressionZstd(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Dockerfile": fmt.Sprintf("FROM %s\nRUN head -c 300000 /dev/urandom > /data && seq 1 20000 > /seq\n", env.Busybox),
	})
	for _, stream := range []string{"true", "false"} {
		t.Run("stream="+stream, func(t *testing.T) {
			ref := env.Registry.Host + "/zstd/app:stream-" + stream
			meta := filepath.Join(t.TempDir(), "m.json")
			code, _, stderr := strata(t, "build", "--builder", env.Builder.Addr(), "--progress", "plain", "--compression", "zstd",
				"--stream="+stream, "-t", ref, "--push", "--metadata-file", meta, dir)
			if code != 0 {
				t.Fatalf("exit %d\n%s", code, tail(stderr, 20))
			}
			r, img := remoteImage(t, ref)
			if d, _ := img.Digest(); d.String() != metadataString(t, readMetadata(t, meta), "containerimage.digest") {
				t.Errorf("pushed %s, the build reported another digest", d)
			}
			mf, err := img.Manifest()
			if err != nil {
				t.Fatal(err)
			}
			// Every blob, pulled back: its digest and size (go-containerregistry
			// checks the digest at the end of the read); the zstd layer
			// decompresses to the files the RUN wrote.
			for _, l := range mf.Layers {
				rl, err := remote.Layer(r.Context().Digest(l.Digest.String()))
				if err != nil {
					t.Fatal(err)
				}
				rc, err := rl.Compressed()
				if err != nil {
					t.Fatal(err)
				}
				dt, err := io.ReadAll(rc)
				rc.Close()
				if err != nil || int64(len(dt)) != l.Size {
					t.Fatalf("layer %s: %d bytes, %v; want %d", l.Digest, len(dt), err, l.Size)
				}
				if l.MediaType == types.OCILayerZStd {
					files := zstdTarFiles(t, dt)
					if !files["data"] || !files["seq"] {
						t.Errorf("the zstd layer holds %v, want data and seq", files)
					}
				}
			}
			if len(mf.Layers) != 2 {
				t.Fatalf("%d layers, want the base and the RUN layer", len(mf.Layers))
			}
			if got := mf.Layers[0].MediaType; got != types.OCILayer && got != types.DockerLayer {
				t.Errorf("the base layer became %s; it should keep its gzip", got)
			}
			if got := mf.Layers[1].MediaType; got != types.OCILayerZStd {
				t.Errorf("the RUN layer is %s, want %s", got, types.OCILayerZStd)
			}
		})
	}
	if code, _, stderr := strata(t, "build", "--compression", "lz4", dir); code != 2 || lastLine(stderr) == "" {
		t.Errorf("--compression=lz4: exit %d, want 2 with an error line\n%s", code, stderr)
	}
}

// zstdTarFiles lists the files of a zstd-compressed tar.
func zstdTarFiles(t *testing.T, dt []byte) map[string]bool {
	t.Helper()
	zr, err := zstd.NewReader(bytes.NewReader(dt))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	files := map[string]bool{}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatalf("the zstd layer is not a tar: %v", err)
		}
		files[h.Name] = true
	}
}
