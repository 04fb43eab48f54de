package frontend

import (
	"context"
	"sync"

	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/gateway/client"
	"github.com/moby/buildkit/util/flightcontrol"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// Resolves shares the base images' resolves of one build among the
// in-process frontends that build it and the cache choice planned beside
// them. The builder resolves each base image once, for whichever asks
// first, and the others take that answer: the choice plans against the
// very images the build uses (the builder's view, with its mirrors and
// image store), and neither waits behind the other's requests to the
// same registry.
//
// The zero value is not usable; see NewResolves. A nil *Resolves shares
// nothing.
type Resolves struct {
	g flightcontrol.CachedGroup[*resolved]

	mu      sync.Mutex
	gateway client.Client // the first in-process frontend's, while it runs
	ready   chan struct{} // closed once gateway is set, or none will be
	closed  bool
}

type resolved struct {
	ref    string
	digest digest.Digest
	config []byte
}

// NewResolves returns an empty Resolves.
func NewResolves() *Resolves {
	return &Resolves{ready: make(chan struct{})}
}

// NoGateway says no in-process frontend will start before the choice needs
// its resolves (the build waits for the choice, or it has ended): Resolve
// stops waiting for one.
func (r *Resolves) NoGateway() {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		r.closed = true
		close(r.ready)
	}
}

// serve makes c the gateway Resolve asks through, when none is, until
// the returned func is called.
func (r *Resolves) serve(c client.Client) (done func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return func() {}
	}
	r.gateway, r.closed = c, true
	close(r.ready)
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.gateway = nil
	}
}

// Resolve resolves the base image ref for platform (nil: the builder's)
// with the resolve mode mode ("" or "default", "pull", "local") as the
// Dockerfile frontend does, through the first in-process frontend's
// gateway, once it has started. ok is false when there is no gateway to
// ask (see NoGateway) and the image has not been resolved: then the
// caller resolves it itself. multi says the build is for several
// platforms (the step's name says which one).
func (r *Resolves) Resolve(ctx context.Context, ref string, platform *ocispecs.Platform, mode string, multi bool) (dgst digest.Digest, config []byte, ok bool, err error) {
	if r == nil {
		return "", nil, false, nil
	}
	select {
	case <-r.ready:
	case <-ctx.Done():
		return "", nil, false, context.Cause(ctx)
	}
	r.mu.Lock()
	gw := r.gateway
	r.mu.Unlock()
	if gw == nil {
		return "", nil, false, nil
	}
	prefix := "["
	if multi && platform != nil {
		prefix += platforms.FormatAll(*platform) + " "
	}
	opt := sourceresolver.Opt{
		LogName:  prefix + "internal] load metadata for " + ref,
		ImageOpt: &sourceresolver.ResolveImageOpt{Platform: platform, ResolveMode: mode},
	}
	key, _ := resolveKey(ref, opt)
	res, err := r.g.Do(ctx, key, func(ctx context.Context) (*resolved, error) {
		return resolveThrough(ctx, gw, ref, opt)
	})
	if err != nil {
		return "", nil, true, err
	}
	return res.digest, res.config, true, nil
}

func resolveThrough(ctx context.Context, c client.Client, ref string, opt sourceresolver.Opt) (*resolved, error) {
	ref, dgst, cfg, err := c.ResolveImageConfig(ctx, ref, opt)
	if err != nil {
		return nil, err
	}
	return &resolved{ref: ref, digest: dgst, config: cfg}, nil
}

// resolveKey is what makes two resolves of base images the same one: the
// image, the platform and the resolve mode. ok is false for a resolve
// with options a base image's resolve in the Dockerfile frontend does not
// set, which is not shared.
func resolveKey(ref string, opt sourceresolver.Opt) (string, bool) {
	io := opt.ImageOpt
	if io == nil || opt.OCILayoutOpt != nil || opt.GitOpt != nil || opt.HTTPOpt != nil || len(opt.SourcePolicies) > 0 ||
		io.NoConfig || io.AttestationChain || len(io.ResolveAttestations) > 0 {
		return "", false
	}
	name := ref
	if n, err := reference.ParseNormalizedNamed(ref); err == nil {
		name = reference.TagNameOnly(n).String()
	}
	plat := "-"
	if io.Platform != nil {
		plat = platforms.FormatAll(platforms.Normalize(*io.Platform))
	}
	mode := io.ResolveMode
	if mode == "" {
		mode = "default"
	}
	return name + " " + plat + " " + mode, true
}

// client is c, the gateway of an in-process frontend, whose resolves of
// base images are shared through r, and which Resolve asks through while
// the frontend runs (see serve).
func (r *Resolves) client(c client.Client) client.Client {
	return &sharedResolves{Client: c, r: r}
}

type sharedResolves struct {
	client.Client
	r *Resolves
}

func (c *sharedResolves) ResolveImageConfig(ctx context.Context, ref string, opt sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	key, ok := resolveKey(ref, opt)
	if !ok {
		return c.Client.ResolveImageConfig(ctx, ref, opt)
	}
	res, err := c.r.g.Do(ctx, key, func(ctx context.Context) (*resolved, error) {
		return resolveThrough(ctx, c.Client, ref, opt)
	})
	if err != nil {
		return "", "", nil, err
	}
	return res.ref, res.digest, res.config, nil
}

// Share is f with its gateway's resolves of base images shared through r
// (see Resolves), and its gateway serving r's Resolve while it runs.
func (r *Resolves) Share(f client.BuildFunc) client.BuildFunc {
	if r == nil {
		return f
	}
	return func(ctx context.Context, c client.Client) (*client.Result, error) {
		defer r.serve(c)()
		return f(ctx, r.client(c))
	}
}
