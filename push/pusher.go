// Package push uploads images from a local OCI content store to a registry:
// each blob once per process (a HEAD check skips what the registry has, a
// cross-repository mount reuses what another repository of the same registry
// has), transient errors retried per blob, and the manifest and its tags only
// after every blob it references is confirmed present.
package push

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/google/go-containerregistry/pkg/name"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-build/strata/regnet"
)

// Event reports one blob's upload, for progress and metadata.
type Event struct {
	Digest   digest.Digest
	Size     int64
	Started  time.Time
	Done     time.Time
	Uploaded int64 // bytes sent; 0 when the registry had the blob or mounted it
	Early    bool  // sent while it was being made, before its digest was known (see Early)
	// MountedFrom is the repository the registry mounted the blob from
	// (see WithBlobSources, WithMountFrom).
	MountedFrom string
	Err         error
}

// Pusher uploads blobs of one store into one repository.
type Pusher struct {
	repo   name.Repository
	store  content.Provider
	mounts []name.Reference // repositories of the same registry to mount blobs from
	// sources names, per blob, a repository that holds it (WithBlobSources).
	sources func(context.Context, name.Repository, digest.Digest) (name.Repository, bool)
	sem     chan struct{}
	sent    atomic.Int64
	events  func(Event)

	mu    sync.Mutex
	blobs map[digest.Digest]*upload

	transport http.RoundTripper
	auth      *regnet.AuthWatch // under transport: why bearer auth failed
	insecure  []string

	headMu  sync.Mutex
	head    *http.Client
	headErr error

	mountMu      sync.Mutex
	mountClients map[string]*http.Client // by the repository mounted from
}

type upload struct {
	done chan struct{}
	ev   Event
}

// Option configures a Pusher.
type Option func(*Pusher)

// WithJobs bounds the number of blobs uploaded at once (default 4, as BuildKit).
func WithJobs(n int) Option {
	return func(p *Pusher) {
		if n > 0 {
			p.sem = make(chan struct{}, n)
		}
	}
}

// WithEvents calls f when each blob's upload ends.
func WithEvents(f func(Event)) Option { return func(p *Pusher) { p.events = f } }

// WithMountFrom names images whose repositories may hold the blobs already
// (for example the base image); blobs are mounted from there when the
// registry is the same.
func WithMountFrom(refs ...name.Reference) Option {
	return func(p *Pusher) {
		for _, r := range refs {
			if r.Context().RegistryStr() == p.repo.RegistryStr() && r.Context().RepositoryStr() != p.repo.RepositoryStr() {
				p.mounts = append(p.mounts, r)
			}
		}
	}
}

// WithInsecureRegistries allows plain HTTP to these registries (host or
// host:port) besides those on the loopback interface; see regnet.
func WithInsecureRegistries(hosts ...string) Option {
	return func(p *Pusher) { p.insecure = append(p.insecure, hosts...) }
}

// New returns a Pusher for repo reading blobs from store. Credentials come
// from the docker config.
func New(repo name.Repository, store content.Provider, opts ...Option) (*Pusher, error) {
	p := &Pusher{repo: repo, store: store, sem: make(chan struct{}, 4), blobs: map[digest.Digest]*upload{}}
	for _, o := range opts {
		o(p)
	}
	// Requests that can be sent again are retried one by one (a HEAD, a
	// manifest, an upload's start); an upload whose body failed is retried
	// whole (see upload).
	p.auth = regnet.WatchAuth(regnet.Retry(regnet.Guard(regnet.Transport(0), p.insecure), 4, 250*time.Millisecond))
	p.transport = p.auth
	return p, nil
}

// BytesSent is the number of blob bytes sent to the registry so far.
func (p *Pusher) BytesSent() int64 { return p.sent.Load() }

// PushBlob starts uploading desc unless it was started before, and returns
// at once. Wait reports the outcome.
func (p *Pusher) PushBlob(ctx context.Context, desc ocispecs.Descriptor) {
	p.pushBlob(ctx, desc, false)
}

// PushNew is PushBlob for a blob made with the manifest being pushed (its
// config), which the registry is unlikely to hold: one of at most
// NewBlobUnasked bytes goes up without a HEAD first, a request fewer on
// the way to the manifest; sending it again costs about what asking would.
func (p *Pusher) PushNew(ctx context.Context, desc ocispecs.Descriptor) {
	p.pushBlob(ctx, desc, desc.Size <= NewBlobUnasked)
}

// NewBlobUnasked is the size up to which PushNew does not ask the
// registry whether it holds a blob.
const NewBlobUnasked = 64 << 10

func (p *Pusher) pushBlob(ctx context.Context, desc ocispecs.Descriptor, unasked bool) {
	p.mu.Lock()
	if _, ok := p.blobs[desc.Digest]; ok {
		p.mu.Unlock()
		return
	}
	u := &upload{done: make(chan struct{}), ev: Event{Digest: desc.Digest, Size: desc.Size}}
	p.blobs[desc.Digest] = u
	p.mu.Unlock()

	go func() {
		defer close(u.done)
		// Looked up before taking a turn: it may wait for the sources.
		from, mountable := p.sourceOf(ctx, desc.Digest)
		select {
		case p.sem <- struct{}{}:
		case <-ctx.Done():
			u.ev.Err = ctx.Err()
			return
		}
		defer func() { <-p.sem }()
		u.ev.Started = time.Now()
		if mountable {
			if mounted, _ := p.mount(ctx, desc.Digest, from); mounted {
				u.ev.Done, u.ev.MountedFrom = time.Now(), from.RepositoryStr()
				if p.events != nil {
					p.events(u.ev)
				}
				return
			}
		}
		var sent atomic.Int64 // this blob's upload bodies, retries included
		u.ev.MountedFrom, u.ev.Err = p.upload(ctx, desc, &sent, unasked)
		u.ev.Done = time.Now()
		u.ev.Uploaded = sent.Load()
		if p.events != nil {
			p.events(u.ev)
		}
	}()
}

// Wait blocks until the uploads of digests end, and returns the first error.
// A digest that was never started is an error.
func (p *Pusher) Wait(ctx context.Context, digests ...digest.Digest) error {
	for _, d := range digests {
		p.mu.Lock()
		u, ok := p.blobs[d]
		p.mu.Unlock()
		if !ok {
			return fmt.Errorf("blob %s was never uploaded", d)
		}
		select {
		case <-u.done:
			if u.ev.Err != nil {
				return u.ev.Err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
