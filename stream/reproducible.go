package stream

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// inlineCacheKey is the image config field that holds BuildKit's inline cache.
const inlineCacheKey = "moby.buildkit.cache.v0"

// normalizeCacheTimes sets every createdAt of the image's inline cache
// metadata to the SOURCE_DATE_EPOCH time. BuildKit stamps cache records with
// the wall clock even when timestamps are rewritten, which alone would make
// the same inputs give different image digests on two builders. BuildKit
// only uses these times to prefer the newest of several matching records.
// It returns the new manifest descriptor, or desc unchanged when there is
// nothing to do.
func normalizeCacheTimes(ctx context.Context, store content.Store, desc ocispecs.Descriptor, stamp time.Time) (ocispecs.Descriptor, error) {
	return RewriteConfig(ctx, store, desc, func(cfg map[string]json.RawMessage) (bool, error) {
		records, ok, err := inlineCacheRecords(cfg)
		if err != nil || !ok {
			return false, err
		}
		for _, r := range records {
			lraw, ok := r.raw["layers"]
			if !ok {
				continue
			}
			var layers []map[string]any
			if err := json.Unmarshal(lraw, &layers); err != nil {
				return false, fmt.Errorf("inline cache: %w", err)
			}
			for _, l := range layers {
				if _, ok := l["createdAt"]; ok {
					l["createdAt"] = stamp
				}
			}
			if r.raw["layers"], err = json.Marshal(layers); err != nil {
				return false, err
			}
		}
		return true, setInlineCacheRecords(cfg, records)
	})
}

// RewriteConfig lets edit change the config of the image manifest desc and,
// when it reports a change, writes the new config and manifest into the
// store. It returns the new manifest's descriptor, or desc unchanged. The
// layers are untouched, so everything already uploaded stays valid.
func RewriteConfig(ctx context.Context, store content.Store, desc ocispecs.Descriptor, edit func(cfg map[string]json.RawMessage) (bool, error)) (ocispecs.Descriptor, error) {
	return rewriteImage(ctx, store, desc, func(_ *ocispecs.Manifest, cfg map[string]json.RawMessage) (bool, error) { return edit(cfg) })
}

// readImageBlobs reads the image manifest desc and its config from store:
// the manifest parsed, and both as stored.
func readImageBlobs(ctx context.Context, store content.Provider, desc ocispecs.Descriptor) (mf ocispecs.Manifest, mdt, cdt []byte, err error) {
	if mdt, err = content.ReadBlob(ctx, store, desc); err != nil {
		return mf, nil, nil, err
	}
	if err = json.Unmarshal(mdt, &mf); err != nil {
		return mf, nil, nil, err
	}
	if cdt, err = content.ReadBlob(ctx, store, mf.Config); err != nil {
		return mf, nil, nil, err
	}
	return mf, mdt, cdt, nil
}

// rewriteImage is RewriteConfig for edits that may change the manifest's
// layers too.
func rewriteImage(ctx context.Context, store content.Store, desc ocispecs.Descriptor, edit func(mf *ocispecs.Manifest, cfg map[string]json.RawMessage) (bool, error)) (ocispecs.Descriptor, error) {
	if desc.MediaType != ocispecs.MediaTypeImageManifest {
		return desc, nil
	}
	mf, _, cdt, err := readImageBlobs(ctx, store, desc)
	if err != nil {
		return desc, err
	}
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(cdt, &cfg); err != nil {
		return desc, err
	}
	if changed, err := edit(&mf, cfg); err != nil || !changed {
		return desc, err
	}
	if cdt, err = json.Marshal(cfg); err != nil {
		return desc, err
	}
	mf.Config = ocispecs.Descriptor{MediaType: mf.Config.MediaType, Digest: digest.FromBytes(cdt), Size: int64(len(cdt))}
	mdt, err := json.MarshalIndent(mf, "", "  ")
	if err != nil {
		return desc, err
	}
	nd := ocispecs.Descriptor{MediaType: desc.MediaType, Digest: digest.FromBytes(mdt), Size: int64(len(mdt)), Platform: desc.Platform}
	for _, blob := range []struct {
		d  ocispecs.Descriptor
		dt []byte
	}{{mf.Config, cdt}, {nd, mdt}} {
		if err := content.WriteBlob(ctx, store, "strata-"+blob.d.Digest.String(), bytes.NewReader(blob.dt), blob.d); err != nil {
			return desc, err
		}
	}
	return nd, nil
}
