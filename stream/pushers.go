package stream

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/google/go-containerregistry/pkg/name"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-build/strata/errs"
	"github.com/strata-build/strata/push"
	"github.com/strata-build/strata/regnet"
)

// Layer is one pushed layer as the metadata file reports it. Times are
// seconds since the build started.
type Layer struct {
	Digest digest.Digest `json:"digest"`
	Size   int64         `json:"compressedSize"`
	// Bytes is the uncompressed size of a layer strata compressed; 0 for
	// one BuildKit took from the base image or a cache source as it was.
	Bytes     int64   `json:"size,omitempty"`
	Built     float64 `json:"built"`               // when BuildKit exported it to strata
	Converted float64 `json:"converted,omitempty"` // when strata had compressed it
	Pushed    float64 `json:"pushed"`              // when the registry had it
	Uploaded  int64   `json:"uploadedBytes"`
	// Early says the layer was uploaded while it was compressed, before
	// its digest was known (into a repository with no tags yet).
	Early bool `json:"early,omitempty"`
	// MountedFrom is the repository of the same registry the layer was
	// mounted from, with nothing uploaded (a cache source's, for a layer
	// the build reused).
	MountedFrom string `json:"mountedFrom,omitempty"`
}

// exportedDescriptor is the descriptor of the image an export produced.
func exportedDescriptor(resp map[string]string) (ocispecs.Descriptor, error) {
	var desc ocispecs.Descriptor
	if v := resp["containerimage.descriptor"]; v != "" {
		dt, err := base64.StdEncoding.DecodeString(v)
		if err == nil && json.Unmarshal(dt, &desc) == nil && desc.Digest != "" {
			return desc, nil
		}
	}
	return desc, fmt.Errorf("the export returned no image descriptor")
}

// setExportedDescriptor records the image strata pushes in the response:
// its manifest descriptor and digest, and its config's digest.
func setExportedDescriptor(ctx context.Context, store content.Provider, resp map[string]string, desc ocispecs.Descriptor) {
	if dt, err := json.Marshal(desc); err == nil {
		resp["containerimage.descriptor"] = base64.StdEncoding.EncodeToString(dt)
	}
	resp["containerimage.digest"] = desc.Digest.String()
	delete(resp, "containerimage.config.digest")
	var mf ocispecs.Manifest
	if dt, err := content.ReadBlob(ctx, store, desc); err == nil && json.Unmarshal(dt, &mf) == nil && mf.Config.Digest != "" {
		resp["containerimage.config.digest"] = mf.Config.Digest.String()
	}
}

// pusher is a push.Pusher for one repository.
type pusher struct {
	*push.Pusher
	repo string
}

// newPushers makes one pusher per repository named by tags.
// A blob is mounted from the repository sources names for it, else from
// the base image's, when that is on the same registry.
func newPushers(store content.Provider, refs []string, events func(push.Event), base string,
	sources func(context.Context, name.Repository, digest.Digest) (name.Repository, bool), insecure []string) ([]*pusher, map[string][]name.Tag, error) {
	popts := []push.Option{push.WithEvents(events), push.WithInsecureRegistries(insecure...), push.WithBlobSources(sources)}
	if base != "" {
		if b, err := name.ParseReference(base, regnet.NameOptions(base, insecure)...); err == nil {
			popts = append(popts, push.WithMountFrom(b))
		}
	}
	byRepo := map[string][]name.Tag{}
	var pushers []*pusher
	for _, r := range refs {
		t, err := name.NewTag(r, regnet.NameOptions(r, insecure)...)
		if err != nil {
			return nil, nil, errs.WithHint(errs.Usagef("--tag %s: %v", r, err), "use REGISTRY/REPOSITORY[:TAG]")
		}
		repo := t.Context().String()
		if _, ok := byRepo[repo]; !ok {
			pp, err := push.New(t.Context(), store, popts...)
			if err != nil {
				return nil, nil, err
			}
			pushers = append(pushers, &pusher{Pusher: pp, repo: repo})
		}
		byRepo[repo] = append(byRepo[repo], t)
	}
	return pushers, byRepo, nil
}

func tagNames(ts []name.Tag) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.String()
	}
	return out
}

func clone(m map[string]string) map[string]string {
	c := make(map[string]string, len(m)+2)
	for k, v := range m {
		c[k] = v
	}
	return c
}
