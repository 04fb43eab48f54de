package crawl

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/strata-build/strata/cache"
	"github.com/strata-build/strata/cache/internal/regopts"
	"github.com/strata-build/strata/errs"
)

// Pushed is an image as strata has just pushed it: the digest of the
// manifest (or image index) under its tags, and by digest that manifest,
// the manifests an index lists and their configs.
type Pushed struct {
	Manifest string
	Blobs    map[string][]byte
}

// ErrLayersNeeded is AddPushed's error when indexing the image needs a
// layer (a small COPY step that records no sources): the caller reads
// the image from its registry instead (AddImage).
var ErrLayersNeeded = errors.New("indexing the image needs its layers")

// AddPushed puts the image ref, which strata has just pushed as p, into x
// as AddImage would, from the bytes pushed: nothing is read back from the
// registry. It returns the entries added.
func AddPushed(x *cache.Index, ref string, p Pushed, opts ...Option) ([]*cache.Image, error) {
	o := regopts.New(opts)
	r, err := o.ParseRef(ref)
	if err != nil {
		return nil, errs.Usagef("image ref %q: %v", ref, err)
	}
	name := indexName(r)
	raw, ok := p.Blobs[p.Manifest]
	if !ok {
		return nil, fmt.Errorf("manifest %s of %s not held", p.Manifest, ref)
	}
	c := oneImageCrawler(o, x, r)
	var imgs []*cache.Image
	switch mt := mediaTypeOf(raw); {
	case mt.IsIndex():
		imgs, err = c.index(name, pushedIndex{raw: raw, blobs: p.Blobs})
	case mt.IsImage():
		var img v1.Image
		if img, err = partial.CompressedToImage(pushedImage{manifest: raw, blobs: p.Blobs}); err == nil {
			var m *cache.Image
			if m, err = c.image(name, img, nil); err == nil {
				imgs = []*cache.Image{m}
			}
		}
	default:
		return nil, fmt.Errorf("manifest media type %q is not an image", mt)
	}
	if err != nil {
		return nil, err
	}
	if c.failedCopies > 0 {
		return nil, ErrLayersNeeded
	}
	putUnder(x, imgs, p.Manifest)
	return imgs, nil
}

// mediaTypeOf is the mediaType a manifest or index names; one that names
// none (OCI allows it) is told by its fields.
func mediaTypeOf(raw []byte) types.MediaType {
	var m struct {
		MediaType types.MediaType `json:"mediaType"`
		Manifests json.RawMessage `json:"manifests"`
		Config    json.RawMessage `json:"config"`
	}
	_ = json.Unmarshal(raw, &m)
	switch {
	case m.MediaType != "":
		return m.MediaType
	case m.Manifests != nil:
		return types.OCIImageIndex
	case m.Config != nil:
		return types.OCIManifestSchema1
	}
	return ""
}

// errNotHeld: a blob Pushed does not hold (a layer).
var errNotHeld = errors.New("not held in memory")

// pushedImage is one image of a Pushed, as go-containerregistry reads it.
type pushedImage struct {
	manifest []byte
	blobs    map[string][]byte
}

func (p pushedImage) RawManifest() ([]byte, error) { return p.manifest, nil }

func (p pushedImage) MediaType() (types.MediaType, error) { return mediaTypeOf(p.manifest), nil }

func (p pushedImage) RawConfigFile() ([]byte, error) {
	m, err := v1.ParseManifest(bytes.NewReader(p.manifest))
	if err != nil {
		return nil, err
	}
	dt, ok := p.blobs[m.Config.Digest.String()]
	if !ok {
		return nil, fmt.Errorf("config %s: %w", m.Config.Digest, errNotHeld)
	}
	return dt, nil
}

func (p pushedImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	return nil, fmt.Errorf("layer %s: %w", h, errNotHeld)
}

// pushedIndex is the image index of a Pushed.
type pushedIndex struct {
	raw   []byte
	blobs map[string][]byte
}

func (p pushedIndex) MediaType() (types.MediaType, error) { return mediaTypeOf(p.raw), nil }
func (p pushedIndex) Digest() (v1.Hash, error)            { return partial.Digest(p) }
func (p pushedIndex) Size() (int64, error)                { return int64(len(p.raw)), nil }
func (p pushedIndex) RawManifest() ([]byte, error)        { return p.raw, nil }

func (p pushedIndex) IndexManifest() (*v1.IndexManifest, error) {
	return v1.ParseIndexManifest(bytes.NewReader(p.raw))
}

func (p pushedIndex) Image(h v1.Hash) (v1.Image, error) {
	dt, ok := p.blobs[h.String()]
	if !ok {
		return nil, fmt.Errorf("manifest %s: %w", h, errNotHeld)
	}
	return partial.CompressedToImage(pushedImage{manifest: dt, blobs: p.blobs})
}

func (p pushedIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) {
	return nil, fmt.Errorf("nested index %s: %w", h, errNotHeld)
}
