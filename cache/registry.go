package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/strata-build/strata/errs"
	"github.com/strata-build/strata/regnet"
)

// Option configures how the cache package talks to registries.
type Option func(*options)

type options struct {
	keychain  authn.Keychain
	insecure  []string
	jobs      int
	base      http.RoundTripper
	log       *slog.Logger
	progress  chan<- Progress
	userAgent string
	extra     []remote.Option
	now       func() time.Time
	cacheDir  string
}

// WithKeychain sets where credentials come from (default: the docker config, authn.DefaultKeychain).
func WithKeychain(k authn.Keychain) Option { return func(o *options) { o.keychain = k } }

// WithInsecureRegistries allows plain HTTP to these hosts (host or host:port)
// besides localhost, 127.0.0.1 and ::1, which are always allowed.
func WithInsecureRegistries(hosts ...string) Option {
	return func(o *options) { o.insecure = append(o.insecure, hosts...) }
}

// WithClock sets the clock the shared index dates its deltas by (default time.Now).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithCacheDir sets where copies of shared index blobs are kept (default
// the user cache directory; "-" keeps none).
func WithCacheDir(dir string) Option { return func(o *options) { o.cacheDir = dir } }

// WithJobs bounds how many requests run at once (default 8).
func WithJobs(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.jobs = n
		}
	}
}

// WithTransport sets the HTTP transport under strata's own (default: a
// clone of http.DefaultTransport sized for the job count).
func WithTransport(rt http.RoundTripper) Option { return func(o *options) { o.base = rt } }

// WithLogger sends warnings (skipped images) to l; the default discards them.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithProgress sends crawl progress to ch; the sender never blocks on it
// for long: updates are dropped while ch is full.
func WithProgress(ch chan<- Progress) Option { return func(o *options) { o.progress = ch } }

func makeOptions(opts []Option) *options {
	o := &options{keychain: authn.DefaultKeychain, jobs: 8, userAgent: "strata", now: time.Now}
	for _, f := range opts {
		f(o)
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	if o.base == nil {
		o.base = regnet.Transport(o.jobs * 2)
	}
	o.base = regnet.Guard(o.base, o.insecure)
	return o
}

// plainHTTP reports whether plain HTTP may be used for host.
func (o *options) plainHTTP(host string) bool { return regnet.PlainHTTP(host, o.insecure) }

// parseRef parses ref, allowing plain HTTP where options allow it.
func (o *options) parseRef(ref string) (name.Reference, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, err
	}
	if o.plainHTTP(r.Context().RegistryStr()) {
		return name.ParseReference(ref, name.Insecure)
	}
	return r, nil
}

func (o *options) repo(repo string) (name.Repository, error) {
	r, err := name.NewRepository(repo)
	if err != nil {
		return r, err
	}
	if o.plainHTTP(r.RegistryStr()) {
		return name.NewRepository(repo, name.Insecure)
	}
	return r, nil
}

func (o *options) registry(host string) (name.Registry, error) {
	if o.plainHTTP(host) {
		return name.NewRegistry(host, name.Insecure)
	}
	return name.NewRegistry(host)
}

func (o *options) remote(ctx context.Context, extra ...remote.Option) []remote.Option {
	return append([]remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(o.keychain),
		remote.WithTransport(o.base),
		remote.WithJobs(o.jobs),
		remote.WithUserAgent(o.userAgent),
	}, append(o.extra, extra...)...)
}

// registryError wraps a registry failure with errs.ErrRegistry and a hint.
func registryError(what string, err error) error {
	var te *transport.Error
	hint := "check the registry address and that it is reachable"
	if errors.As(err, &te) {
		switch te.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			hint = "log in with 'docker login' or check the credentials in the docker config"
		case http.StatusNotFound:
			hint = "check the repository and tag names"
		}
	}
	return errs.WithHint(fmt.Errorf("%w: %s: %v", errs.ErrRegistry, what, errs.FirstLine(err.Error())), hint)
}

// RegistryResolver resolves base images from their registries.
type RegistryResolver struct{ o *options }

// NewRegistryResolver returns a BaseResolver that reads manifests and configs from registries.
func NewRegistryResolver(opts ...Option) *RegistryResolver {
	return &RegistryResolver{o: makeOptions(opts)}
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
}

// ResolveImage reads ref's manifest for platform p and its config.
func (r *RegistryResolver) ResolveImage(ctx context.Context, ref string, p v1.Platform) (ResolvedImage, error) {
	nr, err := r.o.parseRef(ref)
	if err != nil {
		return ResolvedImage{}, errs.Inputf("image ref %q: %v", ref, err)
	}
	ropts := r.o.remote(ctx)
	if p.OS != "" {
		ropts = append(ropts, remote.WithPlatform(p))
	}
	img, err := remote.Image(nr, ropts...)
	if err != nil {
		return ResolvedImage{}, registryError("resolve "+ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return ResolvedImage{}, registryError("resolve "+ref, err)
	}
	m, err := img.Manifest()
	if err != nil {
		return ResolvedImage{}, registryError("manifest of "+ref, err)
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return ResolvedImage{}, registryError("config of "+ref, err)
	}
	out := ResolvedImage{Digest: d.String(), Config: cfg}
	for _, l := range m.Layers {
		out.Layers = append(out.Layers, l.Digest)
	}
	return out, nil
}

// Progress is a crawl's progress.
type Progress struct {
	Repos, ReposDone int
	Tags, TagsDone   int
	Fetched, Reused  int
	Skipped          int
}
