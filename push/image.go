package push

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/types"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-build/strata/errs"
)

// manifestBlobs reads the image manifest desc from the store and returns the
// descriptors of its config and layers.
func manifestBlobs(ctx context.Context, store content.Provider, desc ocispecs.Descriptor) ([]byte, []ocispecs.Descriptor, error) {
	dt, err := content.ReadBlob(ctx, store, desc)
	if err != nil {
		return nil, nil, fmt.Errorf("manifest %s is not in the local store: %w", desc.Digest, err)
	}
	var m ocispecs.Manifest
	if err := json.Unmarshal(dt, &m); err != nil {
		return nil, nil, fmt.Errorf("manifest %s: %w", desc.Digest, err)
	}
	return dt, append([]ocispecs.Descriptor{m.Config}, m.Layers...), nil
}

// Layers returns the layer descriptors of the image manifest desc.
func Layers(ctx context.Context, store content.Provider, desc ocispecs.Descriptor) ([]ocispecs.Descriptor, error) {
	_, blobs, err := manifestBlobs(ctx, store, desc)
	if err != nil {
		return nil, err
	}
	return blobs[1:], nil
}

// PushImage uploads what the image or index desc references from the store
// (PushReferenced), then puts its manifest under every tag (Tag).
func (p *Pusher) PushImage(ctx context.Context, desc ocispecs.Descriptor, tags []name.Tag) error {
	if err := p.PushReferenced(ctx, desc); err != nil {
		return err
	}
	return p.Tag(ctx, desc, tags)
}

// PushContent uploads desc and everything it references, and returns only
// when the registry has confirmed all of it: every blob (blobs already
// started by PushBlob are not sent again), then the manifest (and, for an
// index, each image's) by digest, so a registry that refuses the manifest
// does so before any tag anywhere moves. It moves no tag.
func (p *Pusher) PushContent(ctx context.Context, desc ocispecs.Descriptor) error {
	dt, err := p.pushReferenced(ctx, desc)
	if err != nil {
		return err
	}
	return p.putManifest(ctx, desc, dt, nil)
}

// PushReferenced uploads what desc references, and returns only when the
// registry has confirmed all of it: for an image, its config and layers;
// for an index, each image's content and manifest (by digest). Tag then
// puts desc itself: with one repository the image goes to, a registry that
// refuses the manifest does so before any tag moves.
func (p *Pusher) PushReferenced(ctx context.Context, desc ocispecs.Descriptor) error {
	_, err := p.pushReferenced(ctx, desc)
	return err
}

// pushReferenced is PushReferenced; it returns desc's bytes.
func (p *Pusher) pushReferenced(ctx context.Context, desc ocispecs.Descriptor) ([]byte, error) {
	if isIndex(desc.MediaType) {
		dt, err := content.ReadBlob(ctx, p.store, desc)
		if err != nil {
			return nil, fmt.Errorf("index %s is not in the local store: %w", desc.Digest, err)
		}
		var idx ocispecs.Index
		if err := json.Unmarshal(dt, &idx); err != nil {
			return nil, fmt.Errorf("index %s: %w", desc.Digest, err)
		}
		for _, m := range idx.Manifests {
			if err := p.PushContent(ctx, m); err != nil {
				return nil, err
			}
		}
		return dt, nil
	}
	dt, blobs, err := manifestBlobs(ctx, p.store, desc)
	if err != nil {
		return nil, err
	}
	ds := make([]digest.Digest, len(blobs))
	for i, b := range blobs {
		if i == 0 {
			p.PushNew(ctx, b) // the config, made with the manifest
		} else {
			p.PushBlob(ctx, b)
		}
		ds[i] = b.Digest
	}
	return dt, p.Wait(ctx, ds...)
}

// Tag puts the manifest desc under every tag, or by digest when there is
// none. Call it once PushContent (PushReferenced, when the image goes to
// this repository only) has returned nil for desc in every repository the
// image goes to, so no tag points at missing content.
func (p *Pusher) Tag(ctx context.Context, desc ocispecs.Descriptor, tags []name.Tag) error {
	dt, err := content.ReadBlob(ctx, p.store, desc)
	if err != nil {
		return fmt.Errorf("manifest %s is not in the local store: %w", desc.Digest, err)
	}
	return p.putManifest(ctx, desc, dt, tags)
}

func (p *Pusher) putManifest(ctx context.Context, desc ocispecs.Descriptor, dt []byte, tags []name.Tag) error {
	refs := []name.Reference{p.repo.Digest(desc.Digest.String())}
	if len(tags) > 0 {
		refs = refs[:0]
		for _, t := range tags {
			refs = append(refs, t)
		}
	}
	for _, r := range refs {
		if err := p.put(ctx, "manifests/"+r.Identifier(), desc.MediaType, dt); err != nil {
			if cause := p.auth.Cause(err, p.repo.RegistryStr()); cause != nil {
				return cause
			}
			return fmt.Errorf("%w: manifest %s to %s: %v", errs.ErrRegistry, desc.Digest, r, err)
		}
	}
	return nil
}

func isIndex(mt string) bool {
	return mt == ocispecs.MediaTypeImageIndex || mt == string(types.DockerManifestList)
}
