package build

import (
	"os"
	"path/filepath"
	"testing"
)

// A build parses its Dockerfile once: the parse Choose leaves in the
// options serves Run and the streamed push, unless the path changed.
func TestDockerfileParsedOnce(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "Dockerfile")
	if err := os.WriteFile(path, []byte("FROM busybox AS app\nRUN a\nRUN b\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var opt Options
	first, err := opt.readDockerfile(path)
	if err != nil {
		t.Fatal(err)
	}
	run := opt // Run gets the options by value
	if again, err := run.readDockerfile(path); err != nil || again != first {
		t.Errorf("parsed again: %v", err)
	}
	if target := run.streamTarget(); target == nil || target.File != first || len(target.Prefixes(nil)) != 1 {
		t.Errorf("stream target %+v", target)
	}
	other := filepath.Join(dir, "other.Dockerfile")
	if err := os.WriteFile(other, []byte("FROM busybox\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if f, err := run.readDockerfile(other); err != nil || f == first || f.Name != other {
		t.Errorf("another Dockerfile: %v", err)
	}
	for _, o := range []Options{{Target: "none", parsed: first}, {Platforms: []string{"linux/amd64", "linux/arm64"}, parsed: first}, {}} {
		if o.streamTarget() != nil {
			t.Errorf("stream target for %+v", o)
		}
	}
	if _, err := opt.readDockerfile(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing Dockerfile read")
	}
}
