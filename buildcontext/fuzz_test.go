package buildcontext

import (
	"context"
	"io/fs"
	"math/rand"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/tonistiigi/fsutil"
)

// compareWithFsutil checks that New(dir, patterns) sends the same files as
// fsutil's filtered walk, or that both refuse the patterns.
func compareWithFsutil(t *testing.T, dir string, patterns []string) {
	t.Helper()
	var ref []string
	refErr := fsutil.WalkDir(context.Background(), dir, &fsutil.FilterOpt{ExcludePatterns: patterns}, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			ref = append(ref, filepath.ToSlash(p))
		}
		return nil
	})
	sort.Strings(ref)
	c, err := New(dir, patterns)
	var got []string
	if err == nil {
		got, err = c.Files()
	}
	if (err != nil) != (refErr != nil) {
		t.Fatalf("patterns %q: error %v, fsutil error %v", patterns, err, refErr)
	}
	if err == nil && !equal(got, ref) {
		t.Fatalf("patterns %q:\n got %q\nfsutil %q", patterns, got, ref)
	}
}

var fragments = []string{"*", "**", "?", "src", "a", "b", "node_modules", ".git", "*.log", "x.log", "..", ".", "[a-c]", "keep", "docs", "build", "sub", "*.md", "c.txt"}

func randomPattern(r *rand.Rand) string {
	n := 1 + r.Intn(3)
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fragments[r.Intn(len(fragments))]
	}
	p := strings.Join(parts, "/")
	switch r.Intn(5) {
	case 0:
		p = "!" + p
	case 1:
		p = "/" + p
	}
	return p
}

func TestRandomPatternsMatchFsutil(t *testing.T) {
	dir := makeTree(t, tree, "")
	r := rand.New(rand.NewSource(1))
	for range 300 {
		n := 1 + r.Intn(5)
		patterns := make([]string, n)
		for i := range patterns {
			patterns[i] = randomPattern(r)
		}
		compareWithFsutil(t, dir, patterns)
	}
}

// FuzzIgnoreFile loads arbitrary ignore-file bytes and checks the walk
// against fsutil's.
func FuzzIgnoreFile(f *testing.F) {
	for _, s := range []string{"", "*\n!src\n", "//node_modules\n", "# c\n**/*.log\n!x.log\n", "\ufeff/build\n", "!\n", "[\n", "../..\n"} {
		f.Add([]byte(s))
	}
	dir := makeTree(f, tree, "")
	f.Fuzz(func(t *testing.T, data []byte) {
		patterns, err := ParseIgnore(data)
		if err != nil {
			return
		}
		compareWithFsutil(t, dir, patterns)
	})
}
