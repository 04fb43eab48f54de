package builder

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/core/snapshots/storage"
	"github.com/containerd/errdefs"
	bolt "go.etcd.io/bbolt"
)

// remoteSnapshotLabel marks the stargz snapshotter's snapshots of layers
// it mounts lazily (containerd.io/snapshot/remote in its snapshot package).
const remoteSnapshotLabel = "containerd.io/snapshot/remote"

// stargzWorkerDir is the stargz worker's state under the daemon's root:
// BuildKit's cache records and the snapshotter's snapshots.
func (l *Local) stargzWorkerDir() string { return filepath.Join(l.root(), "runc-stargz") }

// emptyLazyState removes the stargz worker's state when it records layers
// that were mounted lazily, and says so. BuildKit starts the stargz
// snapshotter without restoring those mounts (NoRestore), so after a
// restart every build on such a layer fails with 'layer unavailable'; an
// empty cache is the honest alternative. A state with no such layer is
// kept.
func (l *Local) emptyLazyState() (string, error) {
	dir := l.stargzWorkerDir()
	lazy, err := holdsLazyLayers(filepath.Join(dir, "snapshots", "snapshotter", "metadata.db"))
	if err != nil || !lazy {
		return "", err
	}
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	return fmt.Sprintf("strata emptied the stargz cache (%s) at start: it held lazily pulled layers, which BuildKit does not mount again after a restart", dir), nil
}

// holdsLazyLayers reports whether the stargz snapshotter's metadata
// database at db records a lazily mounted layer. No database is none.
func holdsLazyLayers(db string) (bool, error) {
	if _, err := os.Stat(db); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	ms, err := storage.NewMetaStore(db, func(o *bolt.Options) error {
		o.ReadOnly, o.Timeout = true, 5*time.Second
		return nil
	})
	if err != nil {
		return false, err
	}
	defer ms.Close()
	lazy := false
	err = ms.WithTransaction(context.Background(), false, func(ctx context.Context) error {
		return storage.WalkInfo(ctx, func(_ context.Context, info snapshots.Info) error {
			if _, ok := info.Labels[remoteSnapshotLabel]; ok {
				lazy = true
			}
			return nil
		})
	})
	if err != nil && !errdefs.IsNotFound(err) {
		return false, fmt.Errorf("reading %s: %w", db, err)
	}
	return lazy, nil
}
