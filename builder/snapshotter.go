package builder

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
)

// Snapshotters a Local can be asked for; any name buildkitd knows works.
const (
	// SnapshotterStargz is BuildKit's built-in stargz snapshotter: it
	// mounts eStargz layers over FUSE and fetches only the bytes a step
	// reads; other layers it pulls whole, as overlayfs does.
	SnapshotterStargz = "stargz"
	// SnapshotterAuto is BuildKit's own choice: overlayfs where the kernel
	// allows it, else fuse-overlayfs, else native.
	SnapshotterAuto = "auto"
)

// snapshotterFlag is buildkitd's flag for the OCI worker's snapshotter.
const snapshotterFlag = "--oci-worker-snapshotter"

// snapshotterChoice is the snapshotter a Local starts buildkitd with and,
// when that is not stargz, why not. Start keeps it in the state
// directory, so Status can say it while the daemon runs.
type snapshotterChoice struct {
	Name      string `json:"snapshotter"`
	NotStargz string `json:"notStargz,omitempty"`
	// Emptied says why Start emptied the stargz cache, when it did.
	Emptied string `json:"emptied,omitempty"`
}

// NotStargzByDefault is why strata's own builder does not use the stargz
// snapshotter unless asked: BuildKit (v0.33.1) leaves out of every cache
// export, inline or registry, the result of a step that ran over lazily
// pulled layers. An image built that way is no cache source for the steps
// it ran, so after a change of the lockfile every later build runs the
// dependency step again (measured: each of the next commits on fresh
// stargz runners rebuilt it; on overlayfs none did).
const NotStargzByDefault = "not by default: BuildKit keeps no cache record of a step that runs over lazily pulled layers, so the next builds run it again; " +
	SnapshotterEnv + "=" + SnapshotterStargz + " turns lazy pulls on (docs/lazy-pulls.md)"

// chooseSnapshotter decides the snapshotter: the one Args name, else the
// one Snapshotter names (stargz only where FUSE and overlayfs work, else
// BuildKit's auto), else BuildKit's auto (see NotStargzByDefault).
func (l *Local) chooseSnapshotter() snapshotterChoice {
	if v, ok := flagValue(l.Args, snapshotterFlag); ok {
		return snapshotterChoice{Name: v, NotStargz: "the buildkitd flags given set " + snapshotterFlag + "=" + v}
	}
	switch l.Snapshotter {
	case "":
		return snapshotterChoice{Name: SnapshotterAuto, NotStargz: NotStargzByDefault}
	case SnapshotterStargz:
		if err := stargzSupported(l.root()); err != nil {
			return snapshotterChoice{Name: SnapshotterAuto, NotStargz: "stargz was asked for, but " + err.Error()}
		}
		return snapshotterChoice{Name: SnapshotterStargz}
	}
	return snapshotterChoice{Name: l.Snapshotter, NotStargz: "the " + l.Snapshotter + " snapshotter was asked for"}
}

// flagValue returns the value of name in buildkitd's args, as
// "--name=value", "--name value" or with a single dash, the last one given.
func flagValue(args []string, name string) (string, bool) {
	short := strings.TrimPrefix(name, "-")
	var v string
	var found bool
	for i, a := range args {
		for _, n := range []string{name, short} {
			switch {
			case strings.HasPrefix(a, n+"="):
				v, found = strings.TrimPrefix(a, n+"="), true
			case a == n && i+1 < len(args):
				v, found = args[i+1], true
			}
		}
	}
	return v, found
}

func (l *Local) root() string { return filepath.Join(l.Dir, "root") }

func (l *Local) snapshotterFile() string { return filepath.Join(l.Dir, "snapshotter.json") }

// saveSnapshotter records the choice the running daemon was started with.
func (l *Local) saveSnapshotter(c snapshotterChoice) error {
	dt, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return os.WriteFile(l.snapshotterFile(), append(dt, '\n'), 0o600)
}

// savedSnapshotter is the choice Start recorded, or the zero choice.
func (l *Local) savedSnapshotter() snapshotterChoice {
	var c snapshotterChoice
	if dt, err := os.ReadFile(l.snapshotterFile()); err == nil {
		_ = json.Unmarshal(dt, &c)
	}
	return c
}
