package push

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// Has reports whether the repository already holds desc. A blob it holds is
// recorded as pushed (and reported to WithEvents, with nothing uploaded), so
// PushBlob and PushImage do not send it again.
func (p *Pusher) Has(ctx context.Context, desc ocispecs.Descriptor) (bool, error) {
	if seen, ok, err := p.known(ctx, desc.Digest); seen {
		return ok, err
	}
	started := time.Now()
	resp, err := p.request(ctx, http.MethodHead, "blobs/"+desc.Digest.String())
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, nil
	}
	p.present(Event{Digest: desc.Digest, Size: desc.Size, Started: started, Done: time.Now()}) // nothing to send
	return true, nil
}

// known waits for the upload of d this pusher started (or found needless)
// before, if any: seen says there was one, ok whether the repository holds
// the blob since.
func (p *Pusher) known(ctx context.Context, d digest.Digest) (seen, ok bool, err error) {
	p.mu.Lock()
	u, seen := p.blobs[d]
	p.mu.Unlock()
	if !seen {
		return false, false, nil
	}
	select {
	case <-u.done:
		return true, u.ev.Err == nil, nil
	case <-ctx.Done():
		return true, false, ctx.Err()
	}
}

// present records ev's blob as in the repository with nothing uploaded, so
// PushBlob and PushImage do not send it, and reports ev to WithEvents
// unless the blob was recorded before.
func (p *Pusher) present(ev Event) {
	p.mu.Lock()
	_, known := p.blobs[ev.Digest]
	if !known {
		done := make(chan struct{})
		close(done)
		p.blobs[ev.Digest] = &upload{done: done, ev: ev}
	}
	p.mu.Unlock()
	if !known && p.events != nil {
		p.events(ev)
	}
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

// put sends body, of mediaType, to path under the repository's /v2/NAME/
// (a manifest). The request can be sent again, so the transport retries it
// on a transient failure.
func (p *Pusher) put(ctx context.Context, path, mediaType string, body []byte) error {
	c, err := p.headClient(ctx)
	if err != nil {
		return err
	}
	u := fmt.Sprintf("%s://%s/v2/%s/%s", p.repo.Scheme(), p.repo.RegistryStr(), p.repo.RepositoryStr(), path)
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", mediaType)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return transport.CheckError(resp, http.StatusOK, http.StatusCreated, http.StatusAccepted)
}

// Connect makes ready, ahead of the first request, the clients that check
// and upload blobs and put manifests: each costs a ping of the registry and,
// where it asks for one, a token. A client that cannot be made now is made
// again by the first request that needs it, which reports the failure.
func (p *Pusher) Connect(ctx context.Context) {
	if _, err := p.client(ctx, false); err == nil && len(p.mounts) > 0 {
		_, _ = p.mountClient(ctx, p.mounts[0].Context())
	}
}

// headClient is an HTTP client authorised to push to the repository: it
// checks and uploads blobs and puts manifests, all on the one token (and
// the one ping) it gets first. Once it cannot be made, every request
// fails as the first did.
func (p *Pusher) headClient(ctx context.Context) (*http.Client, error) {
	return p.client(ctx, true)
}

// client is headClient; keepErr records a failure to make it.
func (p *Pusher) client(ctx context.Context, keepErr bool) (*http.Client, error) {
	p.headMu.Lock()
	defer p.headMu.Unlock()
	if p.head != nil || p.headErr != nil {
		return p.head, p.headErr
	}
	auth, err := authn.DefaultKeychain.Resolve(p.repo)
	if err == nil {
		var t http.RoundTripper
		if t, err = transport.NewWithContext(ctx, p.repo.Registry, auth, p.transport, []string{p.repo.Scope(transport.PushScope)}); err == nil {
			p.head = &http.Client{Transport: t}
			return p.head, nil
		}
	}
	if keepErr {
		p.headErr = err
	}
	return nil, err
}
