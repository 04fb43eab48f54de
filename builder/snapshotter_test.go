package builder

import (
	"strings"
	"testing"
)

func TestFlagValue(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		value string
		found bool
	}{
		{nil, "", false},
		{[]string{"--debug"}, "", false},
		{[]string{"--oci-worker-snapshotter=native"}, "native", true},
		{[]string{"--oci-worker-snapshotter", "overlayfs", "--debug"}, "overlayfs", true},
		{[]string{"-oci-worker-snapshotter=stargz"}, "stargz", true},
		{[]string{"--oci-worker-snapshotter=native", "--oci-worker-snapshotter=stargz"}, "stargz", true},
		{[]string{"--oci-worker-snapshotter"}, "", false}, // no value: buildkitd refuses it
		{[]string{"--oci-worker-snapshotter-x=1"}, "", false},
	} {
		v, ok := flagValue(tc.args, snapshotterFlag)
		if v != tc.value || ok != tc.found {
			t.Errorf("flagValue(%q): %q, %v; want %q, %v", tc.args, v, ok, tc.value, tc.found)
		}
	}
}

// A snapshotter named in Args wins over Snapshotter; stargz asked for is
// probed; none named is BuildKit's auto, for the cache; each says why it
// is not stargz.
func TestChooseSnapshotterNamed(t *testing.T) {
	l := &Local{Dir: t.TempDir(), Snapshotter: "native", Args: []string{"--oci-worker-snapshotter=overlayfs"}}
	if c := l.chooseSnapshotter(); c.Name != "overlayfs" || !strings.Contains(c.NotStargz, "--oci-worker-snapshotter=overlayfs") {
		t.Errorf("with Args: %+v, want overlayfs from the flags", c)
	}
	l.Args = nil
	if c := l.chooseSnapshotter(); c.Name != "native" || !strings.Contains(c.NotStargz, "native snapshotter was asked for") {
		t.Errorf("with Snapshotter: %+v, want native as asked", c)
	}
	l.Snapshotter = SnapshotterStargz
	c := l.chooseSnapshotter()
	if err := stargzSupported(l.root()); err == nil {
		if c.Name != SnapshotterStargz || c.NotStargz != "" {
			t.Errorf("FUSE and overlayfs work here, yet: %+v", c)
		}
	} else if c.Name != SnapshotterAuto || c.NotStargz != "stargz was asked for, but "+err.Error() {
		t.Errorf("the probe says %v, yet: %+v", err, c)
	}
	l.Snapshotter = ""
	if c := l.chooseSnapshotter(); c.Name != SnapshotterAuto || c.NotStargz != NotStargzByDefault {
		t.Errorf("none named: %+v, want BuildKit's auto choice and why", c)
	}
}

func TestSavedSnapshotter(t *testing.T) {
	l := &Local{Dir: t.TempDir()}
	if c := l.savedSnapshotter(); c != (snapshotterChoice{}) {
		t.Errorf("nothing saved, yet %+v", c)
	}
	want := snapshotterChoice{Name: SnapshotterAuto, NotStargz: "cannot open /dev/fuse"}
	if err := l.saveSnapshotter(want); err != nil {
		t.Fatal(err)
	}
	if c := l.savedSnapshotter(); c != want {
		t.Errorf("saved %+v, read back %+v", want, c)
	}
}
