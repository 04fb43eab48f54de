package crawl

import (
	"log/slog"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/strata-build/strata/cache/internal/regopts"
)

// Option configures how the cache packages talk to registries: the
// crawler, the stores (store.OpenStore) and the planner's resolver.
type Option = regopts.Option

// Progress is a crawl's progress.
type Progress = regopts.Progress

// WithKeychain sets where credentials come from (default: the docker config, authn.DefaultKeychain).
func WithKeychain(k authn.Keychain) Option { return func(o *regopts.Options) { o.Keychain = k } }

// WithInsecureRegistries allows plain HTTP to these hosts (host or host:port)
// besides localhost, 127.0.0.1 and ::1, which are always allowed.
func WithInsecureRegistries(hosts ...string) Option {
	return func(o *regopts.Options) { o.Insecure = append(o.Insecure, hosts...) }
}

// WithJobs bounds how many requests run at once (default 8).
func WithJobs(n int) Option {
	return func(o *regopts.Options) {
		if n > 0 {
			o.Jobs = n
		}
	}
}

// withTransport sets the HTTP transport under strata's own (default: a
// clone of http.DefaultTransport sized for the job count).
func withTransport(rt http.RoundTripper) Option { return func(o *regopts.Options) { o.Base = rt } }

// WithLogger sends warnings (skipped images) to l; the default discards them.
func WithLogger(l *slog.Logger) Option { return func(o *regopts.Options) { o.Log = l } }

// WithProgress sends crawl progress to ch; the sender never blocks on it
// for long: updates are dropped while ch is full.
func WithProgress(ch chan<- Progress) Option { return func(o *regopts.Options) { o.Progress = ch } }
