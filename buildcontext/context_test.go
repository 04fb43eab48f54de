package buildcontext

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/tonistiigi/fsutil"

	"github.com/strata-build/strata/errs"
)

// tree is the context used by the table tests.
var tree = []string{
	"Dockerfile",
	".dockerignore",
	".env",
	".git/HEAD",
	".git/objects/ab/cdef",
	"README.md",
	"docs/a.md",
	"docs/keep.md",
	"node_modules/x/index.js",
	"node_modules/x/package.json",
	"package.json",
	"package-lock.json",
	"src/main.go",
	"src/vendor/lib.go",
	"src/a/b/c.txt",
	"src/a/b/d.log",
	"build/out.bin",
	"build/keep/me.txt",
	"weird name.txt",
	"sub/.dockerignore",
	"sub/x.log",
	"x.log",
	"dir.with.dots/file",
}

func makeTree(t testing.TB, files []string, ignore string) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range files {
		p := filepath.Join(dir, filepath.FromSlash(f))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		data := []byte(f)
		if f == ".dockerignore" {
			data = []byte(ignore)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if ignore != "" && !slices.Contains(files, ".dockerignore") {
		if err := os.WriteFile(filepath.Join(dir, ".dockerignore"), []byte(ignore), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// fsutilFiles walks dir the way BuildKit's client does and returns the
// non-directory paths it would send.
func fsutilFiles(t testing.TB, dir string, patterns []string) []string {
	t.Helper()
	var out []string
	err := fsutil.WalkDir(context.Background(), dir, &fsutil.FilterOpt{ExcludePatterns: patterns}, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			out = append(out, filepath.ToSlash(p))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("fsutil walk: %v", err)
	}
	sort.Strings(out)
	return out
}

func without(all []string, drop ...string) []string {
	var out []string
	for _, f := range all {
		keep := true
		for _, d := range drop {
			if f == d || (strings.HasSuffix(d, "/") && strings.HasPrefix(f, d)) {
				keep = false
			}
		}
		if keep {
			out = append(out, f)
		}
	}
	sort.Strings(out)
	return out
}

func TestFiles(t *testing.T) {
	all := without(tree)
	tests := []struct {
		name   string
		ignore string
		want   []string
	}{
		{"no patterns", "", all},
		{"comment only", "# node_modules\n", all},
		{"plain names", ".git\nnode_modules\n", without(tree, ".git/", "node_modules/")},
		{"double slash is a pattern", "//node_modules\n// .git\n", without(tree, "node_modules/", ".git/")},
		{"leading slash", "/build\n", without(tree, "build/")},
		{"dot slash", "./docs\n", without(tree, "docs/")},
		{"star only matches top level", "*.log\n", without(tree, "x.log")},
		{"double star", "**/*.log\n", without(tree, "x.log", "sub/x.log", "src/a/b/d.log")},
		{"negation re-includes", "docs\n!docs/keep.md\n", without(tree, "docs/a.md")},
		{"dir excluded file re-included deep", "build\n!build/keep/me.txt\n", without(tree, "build/out.bin")},
		{"later pattern wins", "!README.md\n*.md\n", without(tree, "README.md")},
		{"negation then exclusion", "*.md\n!README.md\n", all},
		{"allowlist", "*\n!package.json\n!package-lock.json\n!src\n", []string{"package-lock.json", "package.json", "src/a/b/c.txt", "src/a/b/d.log", "src/main.go", "src/vendor/lib.go"}},
		{"allowlist with glob exception", "*\n!**/*.go\n", []string{"src/main.go", "src/vendor/lib.go"}},
		{"parent dir dots", "src/../node_modules\nfoo/../../x.log\n", without(tree, "node_modules/")},
		{"question mark and class", "doc?\nx.[lm]og\n", without(tree, "docs/", "x.log")},
		{"trailing slash", "src/a/\n", without(tree, "src/a/")},
		{"whitespace and CRLF", "  .git  \r\n\t.env\r\n", without(tree, ".git/", ".env")},
		{"space in name", "weird name.txt\n", without(tree, "weird name.txt")},
		{"ignore itself and Dockerfile", ".dockerignore\nDockerfile\n", without(tree, ".dockerignore", "Dockerfile")},
		{"nested ignore file is data", "sub/.dockerignore\n", without(tree, "sub/.dockerignore")},
		{"double star dir", "**/vendor\n", without(tree, "src/vendor/")},
		{"exclude everything", "**\n", nil},
		{"dot pattern matches nothing", ".\n", all},
		{"escape", `weird\ name.txt` + "\n", without(tree, "weird name.txt")},
		{"dots in dir", "dir.with.dots\n", without(tree, "dir.with.dots/")},
		{"bom", "\ufeff.env\n", without(tree, ".env")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := makeTree(t, tree, tt.ignore)
			c, err := Open(dir, "")
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.Files()
			if err != nil {
				t.Fatal(err)
			}
			if !equal(got, tt.want) {
				t.Errorf("Files() =\n%q\nwant\n%q\npatterns %q", got, tt.want, c.Patterns())
			}
			if ref := fsutilFiles(t, dir, c.Patterns()); !equal(got, ref) {
				t.Errorf("differs from fsutil:\n got %q\nfsutil %q", got, ref)
			}
			for _, f := range tree {
				ex, err := c.Excluded(f)
				if err != nil {
					t.Fatal(err)
				}
				in := contains(got, f)
				if ex == in {
					t.Errorf("Excluded(%q) = %v but in Files = %v", f, ex, in)
				}
			}
		})
	}
}

func equal(a, b []string) bool {
	return len(a) == 0 && len(b) == 0 || reflect.DeepEqual(a, b)
}

func contains(s []string, v string) bool {
	i := sort.SearchStrings(s, v)
	return i < len(s) && s[i] == v
}

func TestOpenIgnoreFilePrecedence(t *testing.T) {
	dir := makeTree(t, []string{"a.txt", "b.txt", "df/Dockerfile", "df/Dockerfile.dockerignore"}, "a.txt\n")
	if err := os.WriteFile(filepath.Join(dir, "df/Dockerfile.dockerignore"), []byte("b.txt\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Open(dir, filepath.Join(dir, "df/Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.IgnoreFile(), filepath.Join(dir, "df/Dockerfile.dockerignore"); got != want {
		t.Errorf("IgnoreFile = %q, want %q", got, want)
	}
	if ex, _ := c.Excluded("b.txt"); !ex {
		t.Error("b.txt should be excluded by the Dockerfile-specific ignore file")
	}
	if ex, _ := c.Excluded("a.txt"); ex {
		t.Error("a.txt must not be excluded: .dockerignore is not read when a Dockerfile-specific one exists")
	}
	c, err = Open(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.IgnoreFile(), filepath.Join(dir, ".dockerignore"); got != want {
		t.Errorf("IgnoreFile = %q, want %q", got, want)
	}
	none := makeTree(t, []string{"a"}, "")
	c, err = Open(none, "")
	if err != nil || c.IgnoreFile() != "" || c.Patterns() != nil {
		t.Errorf("no ignore file: %v %q %q", err, c.IgnoreFile(), c.Patterns())
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(filepath.Join(t.TempDir(), "missing"), ""); err == nil {
		t.Error("missing context: want error")
	}
	dir := makeTree(t, []string{"a"}, "!\n")
	if _, err := Open(dir, ""); err == nil || !strings.Contains(err.Error(), ".dockerignore") {
		t.Errorf("bad pattern: want error naming the file, got %v", err)
	}
	f := filepath.Join(dir, "a")
	if _, err := New(f, nil); err == nil {
		t.Error("file as context: want error")
	}
}

func TestSymlinksAndSizes(t *testing.T) {
	dir := makeTree(t, []string{"big/a", "big/b", "small"}, "")
	if err := os.WriteFile(filepath.Join(dir, "big/a"), make([]byte, 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("big", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	c, err := New(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	files, _ := c.Files()
	if want := []string{"big/a", "big/b", "link", "small"}; !reflect.DeepEqual(files, want) {
		t.Errorf("Files = %q, want %q (symlinks are sent, not followed)", files, want)
	}
	if ref := fsutilFiles(t, dir, nil); !reflect.DeepEqual(files, ref) {
		t.Errorf("differs from fsutil: %q vs %q", files, ref)
	}
	sizes, _ := c.Sizes()
	if sizes["big"] != 1005 || sizes["small"] != 5 || sizes["link"] != 3 {
		t.Errorf("Sizes = %v", sizes)
	}
	under, _ := c.Under("big")
	if len(under) != 2 {
		t.Errorf("Under(big) = %v", under)
	}
}

func TestUnreadableDir(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads everything")
	}
	dir := makeTree(t, []string{"locked/a", "ok"}, "")
	if err := os.Chmod(filepath.Join(dir, "locked"), 0); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(filepath.Join(dir, "locked"), 0o755)
	c, _ := New(dir, nil)
	if _, err := c.Files(); err == nil {
		t.Error("unreadable directory: want error")
	}
	c, _ = New(dir, []string{"locked"})
	if _, err := c.Files(); err != nil {
		t.Errorf("excluded unreadable directory: %v", err)
	}
}

func TestWalkSkipDir(t *testing.T) {
	dir := makeTree(t, tree, "build\n!build/keep/me.txt\n")
	c, _ := Open(dir, "")
	var seen []string
	err := c.Walk(func(rel string, d fs.DirEntry) error {
		if rel == "build" {
			return fs.SkipDir
		}
		seen = append(seen, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range seen {
		if strings.HasPrefix(s, "build") {
			t.Errorf("walked into skipped directory: %s", s)
		}
	}
}

func TestMatch(t *testing.T) {
	dir := makeTree(t, tree, "node_modules\n")
	c, err := Open(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		src  string
		want []string
	}{
		{"docs", []string{"docs/a.md", "docs/keep.md"}},
		{"./docs/", []string{"docs/a.md", "docs/keep.md"}},
		{"/README.md", []string{"README.md"}},
		{"package*.json", []string{"package-lock.json", "package.json"}},
		{"src/*/b", []string{"src/a/b/c.txt", "src/a/b/d.log"}},
		{"*.log", []string{"x.log"}},
		{"node_modules", nil},
		{"missing", nil},
	}
	for _, tt := range tests {
		got, err := c.Match(tt.src)
		if err != nil {
			t.Fatal(err)
		}
		var paths []string
		for _, e := range got {
			paths = append(paths, e.Path)
		}
		if !equal(paths, tt.want) {
			t.Errorf("Match(%q) = %q, want %q", tt.src, paths, tt.want)
		}
	}
	all, _ := c.Match(".")
	files, _ := c.Files()
	if len(all) != len(files) {
		t.Errorf("Match(.) = %d entries, Files = %d", len(all), len(files))
	}
}

func TestWalkErrorIsInputError(t *testing.T) {
	err := errorAt("a/b", &os.PathError{Op: "open", Path: "/x/a/b", Err: os.ErrPermission})
	if errs.Code(err) != errs.ExitUsage || !errors.Is(err, os.ErrPermission) || err.Error() != "build context: a/b: permission denied" {
		t.Errorf("%v: code %d", err, errs.Code(err))
	}
}
