package push

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// Has reports whether the repository already holds desc. A blob it holds is
// recorded as pushed (and reported to WithEvents, with nothing uploaded), so
// PushBlob and PushImage do not send it again.
func (p *Pusher) Has(ctx context.Context, desc ocispecs.Descriptor) (bool, error) {
	p.mu.Lock()
	if u, ok := p.blobs[desc.Digest]; ok {
		p.mu.Unlock()
		select {
		case <-u.done:
			return u.ev.Err == nil, nil
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
	p.mu.Unlock()
	started := time.Now()
	resp, err := p.request(ctx, http.MethodHead, "blobs/"+desc.Digest.String())
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, nil
	}
	p.mu.Lock()
	_, known := p.blobs[desc.Digest]
	ev := Event{Digest: desc.Digest, Size: desc.Size, Started: started, Done: time.Now()}
	if !known {
		done := make(chan struct{})
		close(done)
		p.blobs[desc.Digest] = &upload{done: done, ev: ev}
	}
	p.mu.Unlock()
	if !known && p.events != nil {
		p.events(ev) // in the registry already: nothing to send
	}
	return true, nil
}

// request sends a request without a body for path under the repository's
// /v2/NAME/.
func (p *Pusher) request(ctx context.Context, method, path string) (*http.Response, error) {
	c, err := p.headClient(ctx)
	if err != nil {
		return nil, err
	}
	u := fmt.Sprintf("%s://%s/v2/%s/%s", p.repo.Scheme(), p.repo.RegistryStr(), p.repo.RepositoryStr(), path)
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, err
	}
	return c.Do(req)
}

// headClient is an HTTP client authorised to check blobs in the repository.
func (p *Pusher) headClient(ctx context.Context) (*http.Client, error) {
	p.headOnce.Do(func() {
		auth, err := authn.DefaultKeychain.Resolve(p.repo)
		if err != nil {
			p.headErr = err
			return
		}
		t, err := transport.NewWithContext(ctx, p.repo.Registry, auth, p.transport, []string{p.repo.Scope(transport.PushScope)})
		if err != nil {
			p.headErr = err
			return
		}
		p.head = &http.Client{Transport: t}
	})
	return p.head, p.headErr
}
