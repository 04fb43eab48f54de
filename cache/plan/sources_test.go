package plan

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/strata-build/strata/buildcontext"
)

func TestSourcesDigest(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("src/a.go", "package a\n")
	write("src/b.go", "package b\n")
	write("go.mod", "module x\n")
	write(".dockerignore", "src/b.go\n")
	open := func() *buildcontext.Context {
		t.Helper()
		bc, err := buildcontext.Open(dir, "")
		if err != nil {
			t.Fatal(err)
		}
		return bc
	}
	digest := func(bc *buildcontext.Context, srcs []string, contents ...instructions.SourceContent) string {
		t.Helper()
		d, err := sourcesDigest(bc, srcs, contents)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	bc := open()
	src := digest(bc, []string{"src"})
	if d := digest(bc, []string{"go.mod"}); d == src {
		t.Fatal("different sources gave one digest")
	}
	if d := digest(bc, []string{"src"}, instructions.SourceContent{Path: "x", Data: "y"}); d == src {
		t.Error("a heredoc does not change the digest")
	}
	// An ignored file does not count.
	write("src/b.go", "package b // changed\n")
	if d := digest(open(), []string{"src"}); d != src {
		t.Error("a file .dockerignore excludes changed the digest")
	}
	// A file the sources take does, on a new walk; the same Context keeps
	// what it worked out, so the plan and the build hash each COPY once.
	write("src/a.go", "package a // changed\n")
	if d := digest(bc, []string{"src"}); d != src {
		t.Error("the same Context hashed the sources again")
	}
	if d := digest(open(), []string{"src"}); d == src {
		t.Error("a changed source file kept the digest")
	}
}
