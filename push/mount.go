package push

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// WithBlobSources tells the pusher, per blob, a repository that holds it
// already: an image the build took layers from, such as a cache source.
// Such a blob is mounted from there (on the same registry) instead of
// being uploaded, and Mount can do it before the blob is even exported.
// f is given the repository pushed to and the blob; it may block until it
// knows.
func WithBlobSources(f func(ctx context.Context, repo name.Repository, d digest.Digest) (name.Repository, bool)) Option {
	return func(p *Pusher) { p.sources = f }
}

// sourceOf is the repository WithBlobSources names for d, when it is
// another repository of this registry.
func (p *Pusher) sourceOf(ctx context.Context, d digest.Digest) (name.Repository, bool) {
	if p.sources == nil {
		return name.Repository{}, false
	}
	from, ok := p.sources(ctx, p.repo, d)
	if !ok || from.RegistryStr() != p.repo.RegistryStr() || from.RepositoryStr() == p.repo.RepositoryStr() {
		return name.Repository{}, false
	}
	return from, true
}

// Mount makes the repository hold desc by mounting it from the repository
// WithBlobSources names for it, and reports whether it now does. A blob it
// mounted is recorded as pushed (and reported to WithEvents, with nothing
// uploaded), as one Has finds. A registry that will not mount it is not an
// error: the blob is then uploaded as usual.
func (p *Pusher) Mount(ctx context.Context, desc ocispecs.Descriptor) (bool, error) {
	if seen, ok, err := p.known(ctx, desc.Digest); seen {
		return ok, err
	}
	from, ok := p.sourceOf(ctx, desc.Digest)
	if !ok {
		return false, nil
	}
	started := time.Now()
	if ok, err := p.mount(ctx, desc.Digest, from); err != nil || !ok {
		return false, err
	}
	p.present(Event{Digest: desc.Digest, Size: desc.Size, Started: started, Done: time.Now(), MountedFrom: from.RepositoryStr()})
	return true, nil
}

// mount asks the registry to mount d from the repository from: 201 Created
// says it did. Any other answer starts an upload (or refuses), which mount
// cancels: the blob's upload, if it comes, starts its own.
func (p *Pusher) mount(ctx context.Context, d digest.Digest, from name.Repository) (bool, error) {
	c, err := p.mountClient(ctx, from)
	if err != nil {
		return false, err
	}
	u := fmt.Sprintf("%s://%s/v2/%s/blobs/uploads/?mount=%s&from=%s", p.repo.Scheme(), p.repo.RegistryStr(), p.repo.RepositoryStr(),
		url.QueryEscape(d.String()), url.QueryEscape(from.RepositoryStr()))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return false, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusCreated {
		return true, nil
	}
	if loc := resp.Header.Get("Location"); resp.StatusCode == http.StatusAccepted && loc != "" {
		if lu, err := resp.Request.URL.Parse(loc); err == nil {
			if del, err := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodDelete, lu.String(), nil); err == nil {
				if resp, err := c.Do(del); err == nil {
					resp.Body.Close()
				}
			}
		}
	}
	return false, nil
}

// mountClient is an HTTP client authorised to push to the repository and
// to pull from the repository from.
func (p *Pusher) mountClient(ctx context.Context, from name.Repository) (*http.Client, error) {
	p.mountMu.Lock()
	defer p.mountMu.Unlock()
	if c, ok := p.mountClients[from.RepositoryStr()]; ok {
		return c, nil
	}
	auth, err := authn.DefaultKeychain.Resolve(p.repo)
	if err != nil {
		return nil, err
	}
	t, err := transport.NewWithContext(ctx, p.repo.Registry, auth, p.transport,
		[]string{p.repo.Scope(transport.PushScope), from.Scope(transport.PullScope)})
	if err != nil {
		return nil, err
	}
	c := &http.Client{Transport: t}
	if p.mountClients == nil {
		p.mountClients = map[string]*http.Client{}
	}
	p.mountClients[from.RepositoryStr()] = c
	return c, nil
}
