package push

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// repoBlobs keeps blobs per repository (ggcrregistry.BlobHandler).
type repoBlobs struct {
	mu sync.Mutex
	m  map[string]map[string][]byte // repository → digest → bytes
}

func (b *repoBlobs) has(repo, d string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.m[repo][d]
	return ok
}

// mount makes to hold d when from does.
func (b *repoBlobs) mount(from, to, d string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	dt, ok := b.m[from][d]
	if ok {
		b.put(to, d, dt)
	}
	return ok
}

func (b *repoBlobs) put(repo, d string, dt []byte) {
	if b.m[repo] == nil {
		b.m[repo] = map[string][]byte{}
	}
	b.m[repo][d] = dt
}

func (b *repoBlobs) Get(_ context.Context, repo string, h v1.Hash) (io.ReadCloser, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	dt, ok := b.m[repo][h.String()]
	if !ok {
		return nil, ggcrregistry.ErrNotFound
	}
	return io.NopCloser(bytes.NewReader(dt)), nil
}

func (b *repoBlobs) Stat(_ context.Context, repo string, h v1.Hash) (int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	dt, ok := b.m[repo][h.String()]
	if !ok {
		return 0, ggcrregistry.ErrNotFound
	}
	return int64(len(dt)), nil
}

func (b *repoBlobs) Put(_ context.Context, repo string, h v1.Hash, rc io.ReadCloser) error {
	// The commit of an upload session (PUT /v2/NAME/blobs/uploads/ID)
	// reaches here with the path's "blobs" in the name.
	repo = strings.TrimSuffix(repo, "/blobs")
	defer rc.Close()
	dt, err := io.ReadAll(rc) // verified against h as it is read
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.put(repo, h.String(), dt)
	return nil
}
