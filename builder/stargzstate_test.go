package builder

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/core/snapshots/storage"
)

// writeSnapshots makes a snapshotter metadata database at db holding one
// committed snapshot per label set.
func writeSnapshots(t *testing.T, db string, labels ...map[string]string) {
	t.Helper()
	ms, err := storage.NewMetaStore(db)
	if err != nil {
		t.Fatal(err)
	}
	defer ms.Close()
	err = ms.WithTransaction(context.Background(), true, func(ctx context.Context) error {
		for i, l := range labels {
			key := filepath.Join("active", string(rune('a'+i)))
			if _, err := storage.CreateSnapshot(ctx, snapshots.KindActive, key, "", snapshots.WithLabels(l)); err != nil {
				return err
			}
			if _, err := storage.CommitActive(ctx, key, "layer-"+string(rune('a'+i)), snapshots.Usage{}, snapshots.WithLabels(l)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestHoldsLazyLayers(t *testing.T) {
	dir := t.TempDir()
	if lazy, err := holdsLazyLayers(filepath.Join(dir, "missing.db")); lazy || err != nil {
		t.Errorf("no database: %v, %v; want none", lazy, err)
	}
	plain := filepath.Join(dir, "plain.db")
	writeSnapshots(t, plain, map[string]string{"containerd.io/snapshot.ref": "sha256:1"}, nil)
	if lazy, err := holdsLazyLayers(plain); lazy || err != nil {
		t.Errorf("unpacked layers only: %v, %v; want none lazy", lazy, err)
	}
	remote := filepath.Join(dir, "remote.db")
	writeSnapshots(t, remote, nil, map[string]string{remoteSnapshotLabel: "remote snapshot"})
	if lazy, err := holdsLazyLayers(remote); !lazy || err != nil {
		t.Errorf("a lazily mounted layer: %v, %v; want it found", lazy, err)
	}
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, []byte("not a database"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := holdsLazyLayers(garbage); err == nil {
		t.Error("a file that is not a database read as one")
	}
}

// The stargz worker's state goes when it holds a lazily mounted layer,
// and stays when it does not.
func TestEmptyLazyState(t *testing.T) {
	for _, tc := range []struct {
		labels  map[string]string
		emptied bool
	}{
		{map[string]string{remoteSnapshotLabel: "remote snapshot"}, true},
		{nil, false},
	} {
		l := &Local{Dir: t.TempDir()}
		snaps := filepath.Join(l.stargzWorkerDir(), "snapshots", "snapshotter")
		if err := os.MkdirAll(snaps, 0o700); err != nil {
			t.Fatal(err)
		}
		writeSnapshots(t, filepath.Join(snaps, "metadata.db"), tc.labels)
		why, err := l.emptyLazyState()
		if err != nil {
			t.Fatal(err)
		}
		_, statErr := os.Stat(l.stargzWorkerDir())
		if gone := os.IsNotExist(statErr); gone != tc.emptied || (why != "") != tc.emptied {
			t.Errorf("labels %v: state removed %v, reason %q; want removed %v", tc.labels, gone, why, tc.emptied)
		}
	}
}
