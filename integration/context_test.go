package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-build/strata/errs"
)

// The build context as BuildKit sends it: a symlink is copied as a symlink
// and never followed out of the context, a COPY source that leaves the
// context through ".." or a symlink is refused with a line that names it,
// and a file name with a newline in it is copied like any other.
func TestContextEscapesSymlinksAndOddNames(t *testing.T) {
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "outside.txt"), []byte("outside-sentinel"), 0o644); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	dir := filepath.Join(root, "ctx")
	writeFiles(t, dir, map[string]string{
		"main.txt":      "main",
		"new\nline.txt": "odd name",
	})
	if err := os.Symlink(filepath.Join(outside, "outside.txt"), filepath.Join(dir, "file-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "dir-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "beside.txt"), []byte("outside-sentinel"), 0o644); err != nil {
		t.Fatal(err)
	}

	run := func(dockerfile string) (int, string, string) {
		t.Helper()
		writeFiles(t, dir, map[string]string{"Dockerfile": "FROM scratch\n" + dockerfile})
		out := t.TempDir()
		code, _, stderr := strata(t, "build", "--builder", env.Builder.Addr(), "--progress", "plain", "--output", "type=local,dest="+out, dir)
		return code, out, stderr
	}

	code, out, stderr := run("COPY . /app/\n")
	if code != 0 {
		t.Fatalf("COPY . with symlinks and a newline in a name: exit %d\n%s", code, tail(stderr, 10))
	}
	for link, target := range map[string]string{"file-link": filepath.Join(outside, "outside.txt"), "dir-link": outside} {
		got, err := os.Readlink(filepath.Join(out, "app", link))
		if err != nil || got != target {
			t.Errorf("%s in the image: %q, %v; want the symlink to %s itself", link, got, err, target)
		}
	}
	if dt, err := os.ReadFile(filepath.Join(out, "app", "new\nline.txt")); err != nil || string(dt) != "odd name" {
		t.Errorf("the file with a newline in its name: %q, %v", dt, err)
	}
	_ = filepath.Walk(out, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			if dt, _ := os.ReadFile(p); strings.Contains(string(dt), "outside-sentinel") {
				t.Errorf("%s holds a file from outside the context", p)
			}
		}
		return nil
	})

	for _, tc := range []struct{ name, dockerfile string }{
		{"dot-dot", "COPY ../beside.txt /x\n"},
		{"symlink to a file outside", "COPY file-link /x\n"},
		{"through a symlinked directory", "COPY dir-link/outside.txt /x\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, stderr := run(tc.dockerfile)
			if code != errs.ExitFailed {
				t.Fatalf("exit %d, want %d\n%s", code, errs.ExitFailed, tail(stderr, 10))
			}
			last := lastLine(stderr)
			if !strings.HasPrefix(last, "strata: build failed:") || !strings.Contains(last, "not found") || !strings.Contains(last, "outside the context") {
				t.Errorf("error line %q does not say the source was not found and why", last)
			}
			if _, err := os.Stat(filepath.Join(out, "x")); err == nil {
				t.Error("a file from outside the context reached the output")
			}
		})
	}
}
