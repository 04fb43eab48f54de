package push

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// Empty reports whether the repository has no tags (or does not exist
// yet): it then holds none of the layers a build makes, so they can be sent
// before their digests are known (see Early).
func (p *Pusher) Empty(ctx context.Context) (bool, error) {
	resp, err := p.request(ctx, http.MethodGet, "tags/list?n=1")
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNotFound:
		return true, nil // no such repository yet
	case http.StatusOK:
	default:
		return false, fmt.Errorf("list tags of %s: %s", p.repo, resp.Status)
	}
	var tl struct {
		Tags []string `json:"tags"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&tl); err != nil {
		return false, fmt.Errorf("list tags of %s: %v", p.repo, err)
	}
	return len(tl.Tags) == 0, nil
}

// Early is a blob's upload started before the blob is complete: its bytes
// go to the registry as they are read from the stream given to
// Pusher.Early, and Finish commits them under the digest they turned out to
// have. An early upload that fails for any reason ends with the blob
// uploaded from the store as PushBlob would, so it costs at worst the bytes
// sent twice.
type Early struct {
	p       *Pusher
	body    io.ReadCloser
	started time.Time
	sent    atomic.Int64

	once   sync.Once
	finish chan finished // the blob, once its digest is known
	abort  chan struct{}
}

type finished struct {
	desc ocispecs.Descriptor
	u    *upload // its entry in Pusher.blobs
}

// errEarly marks an early upload's own failures, which the upload from the
// store then covers.
var errEarly = errors.New("early upload")

// Early starts sending the bytes read from body, as a new upload to the
// repository, and returns at once. The caller ends it with Finish or
// Abort; body is closed when the upload no longer needs it.
func (p *Pusher) Early(ctx context.Context, body io.ReadCloser) *Early {
	e := &Early{p: p, body: body, started: time.Now(), finish: make(chan finished, 1), abort: make(chan struct{})}
	go e.run(ctx)
	return e
}

// Finish gives the upload its blob, whose bytes body has ended with: the
// blob counts as being pushed (PushBlob, Has and Wait see it) until the
// registry has it.
func (e *Early) Finish(desc ocispecs.Descriptor) {
	p := e.p
	p.mu.Lock()
	if _, ok := p.blobs[desc.Digest]; ok {
		p.mu.Unlock()
		e.Abort() // pushed another way already
		return
	}
	u := &upload{done: make(chan struct{}), ev: Event{Digest: desc.Digest, Size: desc.Size}}
	p.blobs[desc.Digest] = u
	p.mu.Unlock()
	e.once.Do(func() { e.finish <- finished{desc, u} })
}

// Abort drops the upload: nothing is committed.
func (e *Early) Abort() {
	e.once.Do(func() { close(e.abort) })
}

func (e *Early) run(ctx context.Context) {
	loc, err := e.send(ctx)
	e.body.Close()
	var f finished
	select {
	case f = <-e.finish:
	case <-e.abort:
	case <-ctx.Done():
		select {
		case f = <-e.finish:
		default:
		}
	}
	if f.u == nil {
		e.cancel(ctx, loc)
		return
	}
	p, u := e.p, f.u
	defer close(u.done)
	if err == nil {
		err = e.commit(ctx, loc, f.desc.Digest.String())
	}
	early := err == nil
	if err != nil && ctx.Err() == nil {
		// The registry has an incomplete upload at best: drop it and
		// send the blob from the store.
		e.cancel(ctx, loc)
		var sent atomic.Int64
		select {
		case p.sem <- struct{}{}:
			_, err = p.upload(ctx, f.desc, &sent, false)
			<-p.sem
		case <-ctx.Done():
			err = ctx.Err()
		}
		e.sent.Add(sent.Load())
	} else if err != nil {
		e.cancel(ctx, loc)
		err = ctx.Err()
	}
	u.ev.Started, u.ev.Done, u.ev.Uploaded, u.ev.Err = e.started, time.Now(), e.sent.Load(), err
	u.ev.Early = early
	if p.events != nil {
		p.events(u.ev)
	}
}

// send starts an upload and streams the body into it; it returns the
// upload's location for the commit.
func (e *Early) send(ctx context.Context) (*url.URL, error) {
	p := e.p
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-p.sem }()
	c, err := p.headClient(ctx)
	if err != nil {
		return nil, err
	}
	start, err := url.Parse(fmt.Sprintf("%s://%s/v2/%s/blobs/uploads/", p.repo.Scheme(), p.repo.RegistryStr(), p.repo.RepositoryStr()))
	if err != nil {
		return nil, err
	}
	loc, err := e.do(ctx, c, http.MethodPost, start, nil, http.StatusAccepted)
	if err != nil {
		return nil, err
	}
	// One PATCH with the whole stream, chunked: the registry takes the
	// bytes as they come.
	return e.do(ctx, c, http.MethodPatch, loc, &countingBody{ReadCloser: io.NopCloser(e.body), n: &p.sent, blob: &e.sent}, http.StatusAccepted)
}

// commit ends the upload as the blob dgst.
func (e *Early) commit(ctx context.Context, loc *url.URL, dgst string) error {
	c, err := e.p.headClient(ctx)
	if err != nil {
		return err
	}
	u := *loc
	q := u.Query()
	q.Set("digest", dgst)
	u.RawQuery = q.Encode()
	_, err = e.do(ctx, c, http.MethodPut, &u, nil, http.StatusCreated)
	return err
}

// cancel drops an unfinished upload, if it was started.
func (e *Early) cancel(ctx context.Context, loc *url.URL) {
	if loc == nil {
		return
	}
	c, err := e.p.headClient(ctx)
	if err != nil {
		return
	}
	ctx, stop := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer stop()
	_, _ = e.do(ctx, c, http.MethodDelete, loc, nil, http.StatusNoContent)
}

// do sends one request of the upload and returns the Location it answers
// with (resolved against the request's URL).
func (e *Early) do(ctx context.Context, c *http.Client, method string, u *url.URL, body io.Reader, want int) (*url.URL, error) {
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", errEarly, method, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != want {
		return nil, fmt.Errorf("%w: %s: %s", errEarly, method, resp.Status)
	}
	loc := resp.Header.Get("Location")
	if loc == "" {
		return u, nil
	}
	return resp.Request.URL.Parse(loc)
}
