package crawl

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/strata-build/strata/cache"
	"github.com/strata-build/strata/cache/internal/cachetest"
)

// FuzzImageFromConfig feeds arbitrary image configs, as a registry may
// serve them, to the crawler's config reader, with manifests of 0 to 7
// layers: it never panics, and either skips the image with an error or
// returns an entry with one layer and one step per manifest layer.
func FuzzImageFromConfig(f *testing.F) {
	layers := [][]byte{[]byte("a"), []byte("b")}
	f.Add(cachetest.Config("amd64", true, cachetest.History("RUN /bin/sh -c make # buildkit", "COPY . /app # buildkit"), layers), uint8(2))
	f.Add(cachetest.Config("arm64", false, []v1.History{{CreatedBy: "/bin/sh -c #(nop) ADD file:abc in / "}, {CreatedBy: "/bin/sh -c #(nop)  CMD [\"sh\"]", EmptyLayer: true}}, layers[:1]), uint8(1))
	f.Add([]byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`), uint8(0))
	f.Add([]byte(`{"os":"linux","rootfs":{"diff_ids":["sha256:00"]},"history":[{"created_by":"x","empty_layer":true}]}`), uint8(1))
	f.Add([]byte(`{"config":{"Labels":{"`+cache.IndexLabel+`":"1"}}}`), uint8(0))
	f.Add([]byte(`{"created":"not a time"}`), uint8(3))
	f.Add([]byte(`[]`), uint8(1))
	f.Fuzz(func(t *testing.T, raw []byte, n uint8) {
		mf := &v1.Manifest{}
		for i := range int(n % 8) {
			d := v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", sha256.Sum256([]byte{byte(i)}))}
			mf.Layers = append(mf.Layers, v1.Descriptor{Digest: d, Size: int64(i + 1)})
		}
		m, err := imageFromConfig("registry.example/app:v1", raw, mf)
		if err != nil {
			if m != nil {
				t.Fatal("an entry and an error")
			}
			var he *cache.ErrHistory
			if !errors.As(err, &he) && !errors.Is(err, errSkipSilently) && !strings.HasPrefix(err.Error(), "config:") {
				t.Fatalf("unexpected kind of error: %v", err)
			}
			return
		}
		if len(m.Layers) != len(mf.Layers) || len(m.Steps) != len(mf.Layers) {
			t.Fatalf("%d layers and %d steps for a manifest of %d layers", len(m.Layers), len(m.Steps), len(mf.Layers))
		}
		for i, l := range m.Layers {
			if l.Digest != mf.Layers[i].Digest.String() || l.DiffID == "" {
				t.Fatalf("layer %d: %+v", i, l)
			}
		}
	})
}
