package lint

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-build/strata/errs"
)

const npmDockerfile = "FROM node:22\nWORKDIR /app\nCOPY . .\nRUN npm ci\n"

// npmTree is a context whose Dockerfile copies everything before the
// install, and whose ignore file lets node_modules in.
func npmTree(t *testing.T) string {
	return writeTree(t, map[string]string{
		"Dockerfile":        npmDockerfile,
		"package.json":      "{}",
		"package-lock.json": "{}",
		"index.js":          "x\n",
		"node_modules/a.js": "x\n",
		".dockerignore":     "Dockerfile",
	})
}

func TestRewrite(t *testing.T) {
	dir := npmTree(t)
	t.Chdir(dir)
	res, err := LintFile("Dockerfile", Options{ContextDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	rw := res.Rewrite()
	if rw == nil || len(rw.Applied) == 0 {
		t.Fatalf("nothing to rewrite in %v", res.Findings)
	}
	wantDF := "FROM node:22\nWORKDIR /app\nCOPY package-lock.json package.json ./\nRUN npm ci\nCOPY . .\n"
	if rw.Dockerfile.Path != "Dockerfile" || string(rw.Dockerfile.Old) != npmDockerfile || string(rw.Dockerfile.New) != wantDF {
		t.Errorf("Dockerfile change: %s %q -> %q", rw.Dockerfile.Path, rw.Dockerfile.Old, rw.Dockerfile.New)
	}
	wantIgnore := "Dockerfile\n# added by strata lint --fix\nnode_modules\n"
	if ig := rw.Ignore; ig == nil || ig.Path != filepath.Join(dir, ".dockerignore") || string(ig.Old) != "Dockerfile" || string(ig.New) != wantIgnore {
		t.Fatalf("ignore change: %+v", ig)
	}
	diff := rw.Diff()
	for _, want := range []string{"--- a/Dockerfile", "+COPY package-lock.json package.json ./", "--- a/.dockerignore", "+node_modules"} {
		if !strings.Contains(diff, want) {
			t.Errorf("diff lacks %q:\n%s", want, diff)
		}
	}
	if dt, _ := os.ReadFile("Dockerfile"); string(dt) != npmDockerfile {
		t.Fatal("Rewrite or Diff wrote the Dockerfile")
	}
	if err := rw.Write(); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{"Dockerfile": wantDF, ".dockerignore": wantIgnore} {
		if dt, _ := os.ReadFile(file); string(dt) != want {
			t.Errorf("%s after Write: %q, want %q", file, dt, want)
		}
	}
	again, err := LintFile("Dockerfile", Options{ContextDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if again.Rewrite() != nil {
		t.Errorf("fixes left after the rewrite: %v", again.Findings)
	}
}

func TestRewriteOfStdinIsNotWritten(t *testing.T) {
	dir := npmTree(t)
	res, err := Lint(Stdin, []byte(npmDockerfile), Options{ContextDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	rw := res.Rewrite()
	if rw == nil {
		t.Fatalf("rewrite of standard input: %+v", rw)
	}
	if !strings.Contains(rw.Diff(), "--- a/-") {
		t.Errorf("diff:\n%s", rw.Diff())
	}
	if err := rw.Write(); !errors.Is(err, errs.ErrUsage) {
		t.Errorf("Write = %v, want a usage error", err)
	}
	if dt, _ := os.ReadFile(filepath.Join(dir, ".dockerignore")); string(dt) != "Dockerfile" {
		t.Errorf("the ignore file was written: %q", dt)
	}
}

func TestAppendIgnore(t *testing.T) {
	const mark = "# added by strata lint --fix\n"
	for _, tc := range []struct {
		old     string
		entries []string
		want    string
	}{
		{"", []string{"node_modules"}, mark + "node_modules\n"},
		{"Dockerfile", []string{"node_modules", ".git"}, "Dockerfile\n" + mark + "node_modules\n.git\n"},
		{"Dockerfile\n", []string{"node_modules"}, "Dockerfile\n" + mark + "node_modules\n"},
		{"node_modules\n .git \n", []string{".git", "node_modules"}, "node_modules\n .git \n"},
		{"node_modules\n", []string{"node_modules", "dist"}, "node_modules\n" + mark + "dist\n"},
		{"x\n", nil, "x\n"},
	} {
		if got := string(appendIgnore([]byte(tc.old), tc.entries)); got != tc.want {
			t.Errorf("appendIgnore(%q, %q) = %q, want %q", tc.old, tc.entries, got, tc.want)
		}
	}
}
