package push

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-build/strata/errs"
	"github.com/strata-build/strata/regnet"
)

// Whole uploads are tried this many times, waiting uploadBackoff first and
// twice as long each time after, when a try fails on something transient
// (see regnet.Retryable); single requests are retried below, by the
// transport, except an upload's body, which only a new upload can send
// again.
const (
	uploadTries   = 4
	uploadBackoff = 250 * time.Millisecond
)

// upload sends desc to the repository as distribution and containerd do:
// a HEAD that skips what the registry holds (unless unasked), a POST that
// starts the upload (and, from the first repository WithMountFrom names,
// mounts the blob instead when that repository holds it), and one PUT with
// the whole blob that commits it. It adds the bytes of its bodies, tries
// again included, to sent and to the pusher's total, and reports the
// repository the blob was mounted from, if it was.
func (p *Pusher) upload(ctx context.Context, desc ocispecs.Descriptor, sent *atomic.Int64, unasked bool) (mountedFrom string, err error) {
	c, err := p.headClient(ctx)
	if len(p.mounts) > 0 {
		c, err = p.mountClient(ctx, p.mounts[0].Context())
	}
	if err == nil {
		wait := uploadBackoff
		for try := 1; ; try++ {
			mountedFrom, err = p.uploadOnce(ctx, c, desc, sent, unasked)
			if err == nil || try == uploadTries || !regnet.Retryable(err) {
				break
			}
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return "", ctx.Err()
			}
			wait *= 2
		}
	}
	if err != nil {
		if cause := p.auth.Cause(err, p.repo.RegistryStr()); cause != nil {
			return "", cause
		}
		return "", fmt.Errorf("%w: blob %s (%d bytes) to %s: %v", errs.ErrRegistry, desc.Digest, desc.Size, p.repo, err)
	}
	return mountedFrom, nil
}

func (p *Pusher) uploadOnce(ctx context.Context, c *http.Client, desc ocispecs.Descriptor, sent *atomic.Int64, unasked bool) (string, error) {
	base := fmt.Sprintf("%s://%s/v2/%s/blobs/", p.repo.Scheme(), p.repo.RegistryStr(), p.repo.RepositoryStr())
	if !unasked {
		resp, err := send(ctx, c, http.MethodHead, base+desc.Digest.String(), nil, 0)
		if err != nil {
			return "", err
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return "", nil
		}
	}
	start, from := base+"uploads/", ""
	if len(p.mounts) > 0 {
		from = p.mounts[0].Context().RepositoryStr()
		start += "?mount=" + url.QueryEscape(desc.Digest.String()) + "&from=" + url.QueryEscape(from)
	}
	resp, err := send(ctx, c, http.MethodPost, start, nil, 0)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusCreated, http.StatusAccepted); err != nil {
		return "", err
	}
	if resp.StatusCode == http.StatusCreated {
		return from, nil
	}
	loc, err := resp.Location()
	if err != nil {
		return "", fmt.Errorf("upload started with no location: %w", err)
	}
	q := loc.Query()
	q.Set("digest", desc.Digest.String())
	loc.RawQuery = q.Encode()

	ra, err := p.store.ReaderAt(ctx, desc)
	if err != nil {
		return "", fmt.Errorf("blob %s is not in the local store: %w", desc.Digest, err)
	}
	defer ra.Close()
	body := &countingBody{ReadCloser: io.NopCloser(io.NewSectionReader(ra, 0, desc.Size)), n: &p.sent, blob: sent}
	resp, err = send(ctx, c, http.MethodPut, loc.String(), body, desc.Size)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	return "", transport.CheckError(resp, http.StatusCreated)
}

// send sends one request with body (of size bytes), or none.
func send(ctx context.Context, c *http.Client, method, u string, body io.Reader, size int64) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		// Sent once: the upload is tried again whole.
		req.GetBody = nil
		req.ContentLength = size
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	return c.Do(req)
}

// countingBody counts the bytes read from a blob upload's body: in all
// (n) and for the blob (blob, when not nil).
type countingBody struct {
	io.ReadCloser
	n, blob *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	if b.blob != nil {
		b.blob.Add(int64(n))
	}
	return n, err
}
