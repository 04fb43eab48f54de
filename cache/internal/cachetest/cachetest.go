// Package cachetest holds the fixtures the tests of the cache packages
// share: images pushed to an in-process registry as raw bytes, layer
// tars, build contexts and index entries.
package cachetest

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
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/strata-build/strata/cache"
)

// RawManifest is a manifest pushed as bytes.
type RawManifest struct {
	MT   types.MediaType
	Body []byte
}

func (r RawManifest) RawManifest() ([]byte, error)        { return r.Body, nil }
func (r RawManifest) MediaType() (types.MediaType, error) { return r.MT, nil }
func (r RawManifest) Digest() (v1.Hash, error) {
	h, _, err := v1.SHA256(bytes.NewReader(r.Body))
	return h, err
}
func (r RawManifest) Size() (int64, error) { return int64(len(r.Body)), nil }

// Descriptor describes the manifest for an image index, for platform p.
func (r RawManifest) Descriptor(p *v1.Platform) v1.Descriptor {
	d, _ := r.Digest()
	return v1.Descriptor{MediaType: r.MT, Digest: d, Size: int64(len(r.Body)), Platform: p}
}

// Config is an image config with history, optionally with inline cache.
func Config(arch string, inline bool, history []v1.History, layers [][]byte) []byte {
	cfg := map[string]any{"architecture": arch, "os": "linux", "created": "2026-01-01T00:00:00Z", "history": history}
	var diffs []string
	for _, l := range layers {
		diffs = append(diffs, fmt.Sprintf("sha256:%x", sha256.Sum256(l)))
	}
	cfg["rootfs"] = map[string]any{"type": "layers", "diff_ids": diffs}
	if inline {
		cfg["moby.buildkit.cache.v0"] = "e30="
	}
	b, _ := json.Marshal(cfg)
	return b
}

// PushRaw pushes a config, uncompressed layers and a manifest made of them,
// and returns the manifest.
func PushRaw(t testing.TB, ref string, configMT types.MediaType, config []byte, layers [][]byte) RawManifest {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	cl := static.NewLayer(config, configMT)
	if err := remote.WriteLayer(r.Context(), cl); err != nil {
		t.Fatal(err)
	}
	cd, _ := cl.Digest()
	mf := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, Config: v1.Descriptor{MediaType: configMT, Digest: cd, Size: int64(len(config))}}
	for _, b := range layers {
		l := static.NewLayer(b, types.OCIUncompressedLayer)
		if err := remote.WriteLayer(r.Context(), l); err != nil {
			t.Fatal(err)
		}
		d, _ := l.Digest()
		mf.Layers = append(mf.Layers, v1.Descriptor{MediaType: types.OCIUncompressedLayer, Digest: d, Size: int64(len(b))})
	}
	body, _ := json.Marshal(mf)
	m := RawManifest{MT: types.OCIManifestSchema1, Body: body}
	if err := remote.Put(r, m); err != nil {
		t.Fatal(err)
	}
	return m
}

// History is a base layer's entry followed by BuildKit's entries for steps.
func History(steps ...string) []v1.History {
	h := []v1.History{{CreatedBy: "base root filesystem"}}
	for _, s := range steps {
		h = append(h, v1.History{CreatedBy: s + " # buildkit", Comment: "buildkit.dockerfile.v0"})
	}
	return h
}

// Layers returns n distinct small layers.
func Layers(n int, salt string) [][]byte {
	var out [][]byte
	for i := range n {
		out = append(out, []byte(fmt.Sprint(salt, i)))
	}
	return out
}

// FaultyRegistry wraps the in-process registry with failures for some paths.
func FaultyRegistry(t testing.TB) (host string) {
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.Contains(r.URL.Path, "/manifests/boom") && r.Method != http.MethodPut:
			http.Error(w, "boom", http.StatusInternalServerError)
		case strings.HasPrefix(r.URL.Path, "/v2/secret/"):
			w.WriteHeader(http.StatusUnauthorized)
		default:
			reg.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// LayerTar is a layer as BuildKit writes a COPY: parent directories, then
// the files under their destination paths.
func LayerTar(t testing.TB, files map[string]string) []byte {
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

// WriteContext writes files (path: content) under dir.
func WriteContext(t testing.TB, dir string, files map[string]string) {
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

// T0 is the time fixture images are pushed and indexed at.
var T0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// Image is an index entry of ref and platform with one layer per token.
func Image(ref, platform string, tokens ...string) *cache.Image {
	m := &cache.Image{Ref: ref, Digest: FakeDigest(ref + platform), Platform: platform, InlineCache: true, Pushed: T0, Indexed: T0}
	for i, tok := range tokens {
		text := tok
		if j := strings.LastIndex(tok, "\x1f"); j >= 0 {
			text = tok[j+1:]
		}
		m.Steps = append(m.Steps, cache.Step{Token: tok, Text: text})
		m.Layers = append(m.Layers, cache.Layer{Digest: FakeDigest(fmt.Sprint(ref, i)), DiffID: FakeDigest(fmt.Sprint("diff", tok)), Size: int64(10 * (i + 1))})
	}
	return m
}

// FakeDigest is a digest-shaped string made from s.
func FakeDigest(s string) string {
	h := fmt.Sprintf("%x", []byte(s))
	for len(h) < 64 {
		h += h
	}
	return "sha256:" + h[:64]
}
