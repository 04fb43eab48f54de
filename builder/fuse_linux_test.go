package builder

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFuseProbe(t *testing.T) {
	dir := t.TempDir()
	noFuse := filepath.Join(dir, "filesystems")
	if err := os.WriteFile(noFuse, []byte("nodev\tsysfs\n\text4\nnodev\tfusectl\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	withFuse := filepath.Join(dir, "filesystems-fuse")
	if err := os.WriteFile(withFuse, []byte("nodev\tsysfs\nnodev\tfuse\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		probe fuseProbe
		want  string
	}{
		{fuseProbe{filesystems: filepath.Join(dir, "missing"), device: "/dev/fuse", dir: dir}, "cannot read"},
		{fuseProbe{filesystems: noFuse, device: "/dev/fuse", dir: dir}, "the kernel has no FUSE filesystem"},
		{fuseProbe{filesystems: withFuse, device: filepath.Join(dir, "fuse"), dir: dir}, "cannot open " + filepath.Join(dir, "fuse")},
	} {
		if err := tc.probe.check(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.probe, err, tc.want)
		}
	}
}

// Where FUSE works, the probe mounts and leaves nothing mounted.
func TestFuseProbeMounts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("no /dev/fuse")
	}
	dir := t.TempDir()
	p := fuseProbe{filesystems: "/proc/filesystems", device: "/dev/fuse", dir: dir}
	if err := p.check(); err != nil {
		t.Fatalf("probe: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("the probe left %d entries in %s", len(ents), dir)
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mi), dir) {
		t.Errorf("the probe left a mount under %s", dir)
	}
}
