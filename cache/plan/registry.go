package plan

import (
	"context"
	"runtime"

	"github.com/containerd/platforms"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/strata-build/strata/cache"
	"github.com/strata-build/strata/cache/crawl"
	"github.com/strata-build/strata/cache/internal/regopts"
	"github.com/strata-build/strata/errs"
)

// RegistryResolver resolves base images from their registries.
type RegistryResolver struct{ o *regopts.Options }

// NewRegistryResolver returns a BaseResolver that reads manifests and configs from registries.
func NewRegistryResolver(opts ...crawl.Option) *RegistryResolver {
	return &RegistryResolver{o: regopts.New(opts)}
}

// ResolveBase implements BaseResolver.
func (r *RegistryResolver) ResolveBase(ctx context.Context, ref string, p v1.Platform) (string, []byte, error) {
	img, err := r.ResolveImage(ctx, ref, p)
	if err != nil {
		return "", nil, err
	}
	return img.Digest, img.Config, nil
}

// ResolvedImage is an image as its registry holds it.
type ResolvedImage struct {
	Digest string    // of the manifest (for the platform, under an index)
	Config []byte    // the config, as stored
	Layers []v1.Hash // the manifest's layer digests, in order
	// SourceDiffIDs are, by layer digest, the diff_ids of the base image
	// layers strata rewrote as eStargz (cache.AnnotationSourceDiffID).
	SourceDiffIDs map[v1.Hash]string
}

// ResolveImage reads ref's manifest for platform p and its config.
func (r *RegistryResolver) ResolveImage(ctx context.Context, ref string, p v1.Platform) (ResolvedImage, error) {
	nr, err := r.o.ParseRef(ref)
	if err != nil {
		return ResolvedImage{}, errs.Inputf("image ref %q: %v", ref, err)
	}
	ropts := r.o.Remote(ctx)
	if p.OS != "" {
		ropts = append(ropts, remote.WithPlatform(p))
	}
	img, err := remote.Image(nr, ropts...)
	if err != nil {
		return ResolvedImage{}, regopts.Error("resolve "+ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return ResolvedImage{}, regopts.Error("resolve "+ref, err)
	}
	m, err := img.Manifest()
	if err != nil {
		return ResolvedImage{}, regopts.Error("manifest of "+ref, err)
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return ResolvedImage{}, regopts.Error("config of "+ref, err)
	}
	out := ResolvedImage{Digest: d.String(), Config: cfg}
	for _, l := range m.Layers {
		out.Layers = append(out.Layers, l.Digest)
		if src := l.Annotations[cache.AnnotationSourceDiffID]; src != "" {
			if out.SourceDiffIDs == nil {
				out.SourceDiffIDs = map[v1.Hash]string{}
			}
			out.SourceDiffIDs[l.Digest] = src
		}
	}
	return out, nil
}

// CheckBlob asks the registry of ref (an image reference) whether its
// repository holds the blob d; the error is the registry's or the
// network's, as it is.
func (r *RegistryResolver) CheckBlob(ctx context.Context, ref string, d v1.Hash) error {
	nr, err := r.o.ParseRef(ref)
	if err != nil {
		return errs.Inputf("image ref %q: %v", ref, err)
	}
	l, err := remote.Layer(nr.Context().Digest(d.String()), r.o.Remote(ctx)...)
	if err == nil {
		_, err = l.Size()
	}
	return err
}

// ImagePlatform is the platform to resolve images for when building for
// platform ("os/arch[/variant]"; "" or one that does not parse: linux on
// this machine's architecture).
func ImagePlatform(platform string) v1.Platform {
	if pp, err := platforms.Parse(platform); err == nil && platform != "" {
		return v1.Platform{OS: pp.OS, Architecture: pp.Architecture, Variant: pp.Variant}
	}
	return v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
}
