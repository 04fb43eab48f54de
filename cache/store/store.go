package store

import (
	"context"
	"fmt"
	"time"

	"github.com/strata-build/strata/cache"
	"github.com/strata-build/strata/cache/crawl"
	"github.com/strata-build/strata/errs"
)

// Store is where an index is kept: a local file (FileStore) or the
// registry itself (RegistryStore).
type Store interface {
	// Load reads the whole index.
	Load(ctx context.Context) (*cache.Index, error)
	// Update merges changes into the stored index without losing entries
	// other writers add at the same time, and returns the merged index.
	Update(ctx context.Context, changes *cache.Index) (*cache.Index, error)
	// String names the store for messages.
	String() string
}

// tombstoneTTL is how long a deleted tag's tombstone is kept, so older
// copies of the index merged later cannot bring the image back.
const tombstoneTTL = 30 * 24 * time.Hour

// FileStore keeps the index in a local file.
type FileStore struct {
	Path string
	// Warn receives the warning for a corrupt or incompatible file, which
	// is then rebuilt; nil discards it.
	Warn func(msg string)
}

func (s *FileStore) String() string { return s.Path }

// Load implements Store.
func (s *FileStore) Load(context.Context) (*cache.Index, error) {
	x, warning, err := LoadFile(s.Path)
	if err != nil {
		return nil, err
	}
	if warning != nil && s.Warn != nil {
		s.Warn(warning.Error())
	}
	return x, nil
}

// Update implements Store.
func (s *FileStore) Update(_ context.Context, changes *cache.Index) (*cache.Index, error) {
	return updateFile(s.Path, func(cur *cache.Index) *cache.Index {
		cur.Merge(changes)
		cur.Prune(time.Now().Add(-tombstoneTTL))
		return cur
	})
}

// OpenStore returns the store for the --index and --index-file flags:
// the shared index at ref when set, else the file (default defaultIndexFile).
func OpenStore(ref, file string, warn func(string), opts ...crawl.Option) (Store, error) {
	if ref != "" && file != "" {
		return nil, errs.WithHint(errs.Usagef("--index and --index-file are exclusive"), "keep the index either in the registry or in a file")
	}
	if ref != "" {
		return NewRegistryStore(ref, opts...)
	}
	if file == "" {
		var err error
		if file, err = defaultIndexFile(); err != nil {
			return nil, err
		}
	}
	return &FileStore{Path: file, Warn: warn}, nil
}

// AddImages reads refs from their registries (every platform) and merges
// them into the store. strata build calls it after a successful push, so
// the new image becomes a candidate for the next plan.
func AddImages(ctx context.Context, st Store, refs []string, opts ...crawl.Option) error {
	return addEach(ctx, st, refs, func(x *cache.Index, ref string) error {
		_, err := crawl.AddImage(ctx, x, ref, opts...)
		return err
	})
}

// AddPushed is AddImages for the tags refs of one image strata has just
// pushed as p, from the bytes pushed: nothing is read from the registry.
// It fails with crawl.ErrLayersNeeded when indexing needs the image's
// layers (AddImages then reads them).
func AddPushed(ctx context.Context, st Store, refs []string, p crawl.Pushed, opts ...crawl.Option) error {
	return addEach(ctx, st, refs, func(x *cache.Index, ref string) error {
		_, err := crawl.AddPushed(x, ref, p, opts...)
		return err
	})
}

// addEach adds each of refs to a new index with add, then merges that
// into the store.
func addEach(ctx context.Context, st Store, refs []string, add func(*cache.Index, string) error) error {
	x := cache.NewIndex()
	for _, ref := range refs {
		if err := add(x, ref); err != nil {
			return err
		}
	}
	if _, err := st.Update(ctx, x); err != nil {
		return fmt.Errorf("update index %s: %w", st, err)
	}
	return nil
}
