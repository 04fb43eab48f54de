package stream

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/containerd/containerd/v2/core/content"
	cerrdefs "github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// PushIndex puts an image index over manifests under tags, in every
// repository they name. Each manifest must be in each of those
// repositories already (Push with Config.Untagged put it there), so no tag
// points at missing content; a registry checks that too. It returns the
// index's descriptor and bytes.
func PushIndex(ctx context.Context, tags, insecure []string, manifests []ocispecs.Descriptor, p Progress) (ocispecs.Descriptor, []byte, error) {
	dt, err := json.Marshal(ocispecs.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispecs.MediaTypeImageIndex,
		Manifests: manifests,
	})
	if err != nil {
		return ocispecs.Descriptor{}, nil, err
	}
	desc := ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageIndex, Digest: digest.FromBytes(dt), Size: int64(len(dt))}
	pushers, byRepo, err := newPushers(oneBlob{desc: desc, data: dt}, tags, nil, "", nil, insecure)
	if err != nil {
		return desc, nil, err
	}
	for _, ps := range pushers {
		end := p.Begin(fmt.Sprintf("[strata] pushing %s (index of %d images)", strings.Join(tagNames(byRepo[ps.repo]), ", "), len(manifests)))
		err := ps.Tag(ctx, desc, byRepo[ps.repo])
		end(err)
		if err != nil {
			return desc, nil, err
		}
	}
	return desc, dt, nil
}

// oneBlob is a content.Provider of one blob held in memory.
type oneBlob struct {
	desc ocispecs.Descriptor
	data []byte
}

func (b oneBlob) ReaderAt(_ context.Context, desc ocispecs.Descriptor) (content.ReaderAt, error) {
	if desc.Digest != b.desc.Digest {
		return nil, fmt.Errorf("blob %s: %w", desc.Digest, cerrdefs.ErrNotFound)
	}
	return memReaderAt{bytes.NewReader(b.data)}, nil
}
