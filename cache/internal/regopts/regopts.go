// Package regopts holds how the cache packages talk to registries: the
// options crawl.Option sets, and the helpers the crawler, the stores and
// the planner's resolver share.
package regopts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/strata-build/strata/errs"
	"github.com/strata-build/strata/regnet"
)

// Option configures registry access.
type Option func(*Options)

// Options is how the cache packages talk to registries.
type Options struct {
	Keychain  authn.Keychain
	Insecure  []string
	Jobs      int
	Base      http.RoundTripper
	Log       *slog.Logger
	Progress  chan<- Progress
	UserAgent string
	Extra     []remote.Option
	Now       func() time.Time
	CacheDir  string
}

// Progress is a crawl's progress.
type Progress struct {
	Repos, ReposDone int
	Tags, TagsDone   int
	Fetched, Reused  int
	Skipped          int
}

// New applies opts over the defaults.
func New(opts []Option) *Options {
	o := &Options{Keychain: authn.DefaultKeychain, Jobs: 8, UserAgent: "strata", Now: time.Now}
	for _, f := range opts {
		f(o)
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Base == nil {
		o.Base = regnet.Transport(o.Jobs * 2)
	}
	o.Base = regnet.Guard(o.Base, o.Insecure)
	return o
}

// plainHTTP reports whether plain HTTP may be used for host.
func (o *Options) plainHTTP(host string) bool { return regnet.PlainHTTP(host, o.Insecure) }

// ParseRef parses ref, allowing plain HTTP where options allow it.
func (o *Options) ParseRef(ref string) (name.Reference, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, err
	}
	if o.plainHTTP(r.Context().RegistryStr()) {
		return name.ParseReference(ref, name.Insecure)
	}
	return r, nil
}

// Repo parses a repository name, allowing plain HTTP where options allow it.
func (o *Options) Repo(repo string) (name.Repository, error) {
	r, err := name.NewRepository(repo)
	if err != nil {
		return r, err
	}
	if o.plainHTTP(r.RegistryStr()) {
		return name.NewRepository(repo, name.Insecure)
	}
	return r, nil
}

// Registry parses a registry host, allowing plain HTTP where options allow it.
func (o *Options) Registry(host string) (name.Registry, error) {
	if o.plainHTTP(host) {
		return name.NewRegistry(host, name.Insecure)
	}
	return name.NewRegistry(host)
}

// Remote is the go-containerregistry options for a request made in ctx.
func (o *Options) Remote(ctx context.Context, extra ...remote.Option) []remote.Option {
	return append([]remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(o.Keychain),
		remote.WithTransport(o.Base),
		remote.WithJobs(o.Jobs),
		remote.WithUserAgent(o.UserAgent),
	}, append(o.Extra, extra...)...)
}

// Puller returns a puller sharing its connections and tokens across requests.
func (o *Options) Puller(ctx context.Context) (*remote.Puller, error) {
	p, err := remote.NewPuller(o.Remote(ctx)...)
	if err != nil {
		return nil, Error("registry client", err)
	}
	return p, nil
}

// Error wraps a registry failure with errs.ErrRegistry and a hint.
func Error(what string, err error) error {
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

// IsNotFound reports whether a registry answered 404.
func IsNotFound(err error) bool {
	var te *transport.Error
	return errors.As(err, &te) && te.StatusCode == http.StatusNotFound
}
