package crawl

import (
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/strata-build/strata/cache"
	"github.com/strata-build/strata/cache/internal/cachetest"
)

// An image indexed from the bytes strata pushed is the entry read back
// from the registry would be, for one image and for an index of two; an
// image whose small COPY layer records no sources needs its layers.
func TestAddPushedAsAddImage(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	recorded := cachetest.History("WORKDIR /app", "COPY lock ./", "RUN make")
	recorded[2].Comment = cache.SourcesComment(recorded[2].Comment, "sha256:"+strings.Repeat("a", 64))
	layers := cachetest.Layers(4, "p")
	amd := cachetest.PushRaw(t, host+"/app/one:v1", types.OCIConfigJSON, cachetest.Config("amd64", true, recorded, layers), layers)
	arm := cachetest.PushRaw(t, host+"/app/multi:arm", types.OCIConfigJSON, cachetest.Config("arm64", true, recorded, layers), layers)
	idx := cachetest.RawManifest{MT: types.OCIImageIndex}
	im := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{
		amd.Descriptor(&v1.Platform{OS: "linux", Architecture: "amd64"}), arm.Descriptor(&v1.Platform{OS: "linux", Architecture: "arm64"}),
	}}
	var err error
	if idx.Body, err = json.Marshal(im); err != nil {
		t.Fatal(err)
	}
	putRaw(t, host+"/app/multi:amd", amd)
	putRaw(t, host+"/app/multi:v1", idx)
	bare := cachetest.History("COPY lock ./")
	bareLayers := [][]byte{[]byte("base"), cachetest.LayerTar(t, map[string]string{"lock": "1"})}
	cachetest.PushRaw(t, host+"/app/bare:v1", types.OCIConfigJSON, cachetest.Config("amd64", true, bare, bareLayers), bareLayers)

	for _, ref := range []string{host + "/app/one:v1", host + "/app/multi:v1"} {
		want := cache.NewIndex()
		if _, err := AddImage(t.Context(), want, ref); err != nil {
			t.Fatal(err)
		}
		got := cache.NewIndex()
		if _, err := AddPushed(got, ref, pushedOf(t, ref)); err != nil {
			t.Fatalf("AddPushed(%s): %v", ref, err)
		}
		if want.Len() == 0 {
			t.Fatalf("%s: nothing indexed", ref)
		}
		w, g := indexed(want), indexed(got)
		if !reflect.DeepEqual(w, g) {
			t.Errorf("%s: AddPushed gave\n%s\nAddImage\n%s", ref, g, w)
		}
	}
	ref := host + "/app/bare:v1"
	if _, err := AddPushed(cache.NewIndex(), ref, pushedOf(t, ref)); !errors.Is(err, ErrLayersNeeded) {
		t.Errorf("AddPushed of an image whose COPY records no sources = %v, want ErrLayersNeeded", err)
	}
}

// pushedOf is ref's manifest (or index), the manifests under it and their
// configs, as strata holds them after its push.
func pushedOf(t *testing.T, ref string) Pushed {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	d, err := remote.Get(r)
	if err != nil {
		t.Fatal(err)
	}
	p := Pushed{Manifest: d.Digest.String(), Blobs: map[string][]byte{d.Digest.String(): d.Manifest}}
	addImage := func(img v1.Image) {
		dg, _ := img.Digest()
		mf, _ := img.RawManifest()
		cf, _ := img.RawConfigFile()
		cd, _ := img.ConfigName()
		p.Blobs[dg.String()], p.Blobs[cd.String()] = mf, cf
	}
	if d.MediaType.IsIndex() {
		idx, err := d.ImageIndex()
		if err != nil {
			t.Fatal(err)
		}
		im, _ := idx.IndexManifest()
		for _, m := range im.Manifests {
			img, err := idx.Image(m.Digest)
			if err != nil {
				t.Fatal(err)
			}
			addImage(img)
		}
		return p
	}
	img, err := d.Image()
	if err != nil {
		t.Fatal(err)
	}
	addImage(img)
	return p
}

func putRaw(t *testing.T, ref string, m cachetest.RawManifest) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Put(r, m); err != nil {
		t.Fatal(err)
	}
}

// indexed is x's entries as JSON, with the time of indexing left out (the
// configs' created times are real: they are the entries' push times).
func indexed(x *cache.Index) string {
	var out []cache.Image
	for _, m := range x.Images() {
		cp := *m
		cp.Indexed = time.Time{}
		out = append(out, cp)
	}
	dt, _ := json.MarshalIndent(out, "", " ")
	return string(dt)
}

// A manifest or index that names no mediaType (OCI allows it) is told by
// its fields.
func TestMediaTypeOf(t *testing.T) {
	for raw, want := range map[string]types.MediaType{
		`{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{}}`: types.DockerManifestSchema2,
		`{"schemaVersion":2,"config":{},"layers":[]}`:                                      types.OCIManifestSchema1,
		`{"schemaVersion":2,"manifests":[]}`:                                               types.OCIImageIndex,
		`{"schemaVersion":2}`:                                                              "",
	} {
		if got := mediaTypeOf([]byte(raw)); got != want {
			t.Errorf("mediaTypeOf(%s) = %q, want %q", raw, got, want)
		}
	}
}
