package plan

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/distribution/reference"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-build/strata/cache"
)

// resolved is what the recording resolver learnt about one base image.
type resolved struct {
	digest  string
	diffIDs []string
	steps   int
}

// BaseResolver finds a base image's manifest digest and config for a platform.
type BaseResolver interface {
	ResolveBase(ctx context.Context, ref string, platform v1.Platform) (digest string, config []byte, err error)
}

type unresolvedError struct {
	ref string
	err error
}

func (e *unresolvedError) Error() string {
	return fmt.Sprintf("base image %s could not be resolved: %v", e.ref, e.err)
}

// recordingResolver adapts a BaseResolver to BuildKit's ImageMetaResolver
// and keeps what each base resolved to.
type recordingResolver struct {
	r      BaseResolver
	mu     sync.Mutex
	seen   map[string]resolved // by normalised ref
	config map[string]cachedConfig
	fail   *unresolvedError
}

type cachedConfig struct {
	ref    string
	digest digest.Digest
	config []byte
}

func (r *recordingResolver) failure() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail == nil {
		return nil
	}
	return r.fail
}

// lookup returns what a FROM name resolved to.
func (r *recordingResolver) lookup(name string) (resolved, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.seen[normalizeRef(name)]
	return v, ok
}

func normalizeRef(name string) string {
	ref, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return name
	}
	return reference.TagNameOnly(ref).String()
}

// ResolveImageConfig implements BuildKit's ImageMetaResolver.
func (r *recordingResolver) ResolveImageConfig(ctx context.Context, ref string, opt sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	var p v1.Platform
	if opt.ImageOpt != nil && opt.ImageOpt.Platform != nil {
		pp := opt.ImageOpt.Platform
		p = v1.Platform{OS: pp.OS, Architecture: pp.Architecture, Variant: pp.Variant}
	}
	key := ref + "@" + p.String()
	r.mu.Lock()
	if c, ok := r.config[key]; ok {
		r.mu.Unlock()
		return c.ref, c.digest, c.config, nil
	}
	r.mu.Unlock()
	fail := func(err error) (string, digest.Digest, []byte, error) {
		r.mu.Lock()
		if r.fail == nil {
			r.fail = &unresolvedError{ref: ref, err: err}
		}
		r.mu.Unlock()
		return "", "", nil, err
	}
	if r.r == nil {
		return fail(errors.New("no registry to resolve it from"))
	}
	dgst, config, err := r.r.ResolveBase(ctx, ref, p)
	if err != nil {
		return fail(err)
	}
	cf, err := v1.ParseConfigFile(bytes.NewReader(config))
	if err != nil {
		return fail(fmt.Errorf("config: %w", err))
	}
	steps, err := cache.NormalizeHistory(cf.History, len(cf.RootFS.DiffIDs))
	if err != nil {
		return fail(err)
	}
	diffIDs := make([]string, len(cf.RootFS.DiffIDs))
	for i, d := range cf.RootFS.DiffIDs {
		diffIDs[i] = d.String()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen[normalizeRef(ref)] = resolved{digest: dgst, diffIDs: diffIDs, steps: len(steps)}
	r.config[key] = cachedConfig{ref: ref, digest: digest.Digest(dgst), config: config}
	return ref, digest.Digest(dgst), config, nil
}

// metaResolver adapts BuildKit's ImageMetaResolver (a gateway client in a
// frontend, which has no network of its own) to a BaseResolver.
type metaResolver struct {
	m sourceresolver.ImageMetaResolver
}

// ResolverFromMeta returns a BaseResolver that resolves through m, e.g. the
// BuildKit gateway client a frontend is given.
func ResolverFromMeta(m sourceresolver.ImageMetaResolver) BaseResolver { return metaResolver{m} }

func (r metaResolver) ResolveBase(ctx context.Context, ref string, p v1.Platform) (string, []byte, error) {
	opt := sourceresolver.Opt{ImageOpt: &sourceresolver.ResolveImageOpt{}}
	if p.OS != "" {
		opt.ImageOpt.Platform = &ocispecs.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant}
	}
	_, dgst, cfg, err := r.m.ResolveImageConfig(ctx, ref, opt)
	if err != nil {
		return "", nil, err
	}
	return dgst.String(), cfg, nil
}
