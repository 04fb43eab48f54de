package crawl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/strata-build/strata/cache"
	"github.com/strata-build/strata/cache/internal/regopts"
	"github.com/strata-build/strata/errs"
)

// descriptor reads the image or every platform of the image index d.
func (c *crawler) descriptor(ref string, d *remote.Descriptor) ([]*cache.Image, error) {
	switch {
	case d.MediaType.IsIndex():
		idx, err := d.ImageIndex()
		if err != nil {
			return nil, err
		}
		return c.index(ref, idx)
	case d.MediaType.IsImage():
		img, err := d.Image()
		if err != nil {
			return nil, err
		}
		m, err := c.image(ref, img, nil)
		if err != nil {
			return nil, err
		}
		return []*cache.Image{m}, nil
	default:
		return nil, fmt.Errorf("manifest media type %q is not an image", d.MediaType)
	}
}

// index reads every platform's image of idx.
func (c *crawler) index(ref string, idx v1.ImageIndex) ([]*cache.Image, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var out []*cache.Image
	silent := false
	for _, desc := range im.Manifests {
		if desc.MediaType == buildkitCacheConfig {
			return nil, errCacheExport
		}
		if !desc.MediaType.IsImage() || desc.Platform != nil && desc.Platform.OS == "unknown" {
			continue // attestations and nested indexes
		}
		img, err := idx.Image(desc.Digest)
		if err == nil {
			var m *cache.Image
			if m, err = c.image(ref, img, desc.Platform); err == nil {
				out = append(out, m)
			}
		}
		if errors.Is(err, errSkipSilently) {
			silent = true
		} else if err != nil {
			c.warn("%s (%s): %v; skipped", ref, desc.Platform, err)
		}
	}
	if len(out) == 0 && silent {
		return nil, errSkipSilently
	}
	if len(out) == 0 {
		return nil, errors.New("image index has no image for any platform")
	}
	return out, nil
}

// image reads one platform's manifest and config into an index entry.
func (c *crawler) image(ref string, img v1.Image, p *v1.Platform) (*cache.Image, error) {
	mf, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	if mf.Config.Size > maxConfigSize {
		return nil, fmt.Errorf("config of %d bytes is larger than %d", mf.Config.Size, maxConfigSize)
	}
	if mf.Config.MediaType == buildkitCacheConfig {
		return nil, errCacheExport
	}
	if mt := mf.Config.MediaType; mt != "" && mt != types.DockerConfigJSON && mt != types.OCIConfigJSON {
		return nil, fmt.Errorf("config media type %q is not an image config", mt)
	}
	raw, err := img.RawConfigFile()
	if err != nil {
		return nil, err
	}
	m, err := imageFromConfig(ref, raw, mf)
	if err != nil {
		return nil, err
	}
	if p != nil && m.Platform == "" {
		m.Platform = cache.Platform(p.OS, p.Architecture, p.Variant)
	}
	d, err := img.Digest()
	if err != nil {
		return nil, err
	}
	m.Digest = d.String()
	c.layerFiles(img, m)
	if m.Pushed.Before(reproducibleCutoff) {
		// Reproducible builds pin created to SOURCE_DATE_EPOCH (often 0):
		// when strata first saw the image is the better guess.
		m.Pushed = c.now
		if old, ok := c.x.Get(ref, m.Platform); ok && old.Digest == m.Digest {
			m.Pushed = old.Pushed
		}
	}
	m.Indexed = c.now
	return m, nil
}

// reproducibleCutoff: created times before it are taken as pinned, not real.
var reproducibleCutoff = time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)

// buildkitCacheConfig is the config of BuildKit's registry cache exports
// (--cache-to type=registry): they carry no history to index, and are
// skipped without a warning; a refresh lists them (CacheExports).
const buildkitCacheConfig = "application/vnd.buildkit.cacheconfig.v0"

// errSkipSilently marks images strata itself keeps in registries (the
// shared index), and registry cache exports.
var errSkipSilently = errors.New("strata index artifact")

// errCacheExport marks a registry cache export of BuildKit.
var errCacheExport = fmt.Errorf("BuildKit registry cache export: %w", errSkipSilently)

// imageFromConfig builds an index entry from a raw config and its manifest.
func imageFromConfig(ref string, raw []byte, mf *v1.Manifest) (*cache.Image, error) {
	cf, err := v1.ParseConfigFile(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if _, ok := cf.Config.Labels[cache.IndexLabel]; ok {
		return nil, errSkipSilently
	}
	if len(cf.RootFS.DiffIDs) != len(mf.Layers) {
		return nil, &cache.ErrHistory{Reason: fmt.Sprintf("config lists %d layers, the manifest %d", len(cf.RootFS.DiffIDs), len(mf.Layers))}
	}
	steps, err := cache.NormalizeHistory(cf.History, len(mf.Layers))
	if err != nil {
		return nil, err
	}
	var top map[string]json.RawMessage
	_ = json.Unmarshal(raw, &top)
	_, inline := top[InlineCacheKey]
	m := &cache.Image{
		Ref:         ref,
		Platform:    cache.Platform(cf.OS, cf.Architecture, cf.Variant),
		Steps:       steps,
		InlineCache: inline,
		Pushed:      cf.Created.UTC(),
	}
	m.Layers = make([]cache.Layer, len(mf.Layers))
	for i, l := range mf.Layers {
		diff := cf.RootFS.DiffIDs[i].String()
		if src := l.Annotations[cache.AnnotationSourceDiffID]; src != "" {
			diff = src // a base layer strata rewrote as eStargz
		}
		m.Layers[i] = cache.Layer{Digest: l.Digest.String(), DiffID: diff, Size: l.Size}
	}
	return m, nil
}

// IsCacheExport reports whether ref holds a registry cache export of
// BuildKit (--cache-to type=registry), reading its manifest only. A ref
// the registry does not have is not one.
func IsCacheExport(ctx context.Context, ref string, opts ...Option) (bool, error) {
	o := regopts.New(opts)
	r, err := o.ParseRef(ref)
	if err != nil {
		return false, errs.Usagef("image ref %q: %v", ref, err)
	}
	p, err := o.Puller(ctx)
	if err != nil {
		return false, err
	}
	d, err := p.Get(ctx, r)
	var te *transport.Error
	switch {
	case errors.As(err, &te) && te.StatusCode == http.StatusNotFound:
		return false, nil
	case err != nil:
		return false, regopts.Error("read "+ref, err)
	}
	var m struct {
		Config    v1.Descriptor   `json:"config"`
		Manifests []v1.Descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(d.Manifest, &m); err != nil {
		return false, fmt.Errorf("%s: manifest: %w", ref, err)
	}
	return m.Config.MediaType == buildkitCacheConfig ||
		slices.ContainsFunc(m.Manifests, func(d v1.Descriptor) bool { return d.MediaType == buildkitCacheConfig }), nil
}
