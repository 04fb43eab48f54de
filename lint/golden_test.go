package lint

import (
	"bytes"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// copyCase copies a testdata case into a temporary context and creates the
// paths listed in extra.txt (which git cannot hold, like .git/).
func copyCase(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if strings.HasPrefix(d.Name(), "expected") || strings.HasPrefix(d.Name(), "fixed") || d.Name() == "SOURCE" || d.Name() == "git-tracked" {
			return nil
		}
		dt, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), dt, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	if dt, err := os.ReadFile(filepath.Join(src, "extra.txt")); err == nil {
		for _, l := range strings.Fields(string(dt)) {
			p := filepath.Join(dst, filepath.FromSlash(l))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte("data\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dst
}

func render1(fs []Finding) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "%d:%d %s %s: %s\n", f.Start.Line, f.Start.Column, f.Severity, f.Rule, f.Message)
	}
	return b.String()
}

func golden(t *testing.T, file, got string) {
	t.Helper()
	if *update {
		if got == "" {
			os.Remove(file)
			return
		}
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("%s differs (run go test ./lint -update):\n--- got\n%s--- want\n%s", file, got, want)
	}
}

func TestGolden(t *testing.T) {
	names := map[string]bool{}
	for _, r := range Rules() {
		names[r.Name] = true
	}
	dirs, err := filepath.Glob("testdata/*/*/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	covered := map[string]map[string]bool{}
	for _, df := range dirs {
		dir := filepath.Dir(df)
		rule, kind := filepath.Base(filepath.Dir(dir)), filepath.Base(dir)
		t.Run(rule+"/"+kind, func(t *testing.T) {
			ctx := copyCase(t, dir)
			opts := Options{ContextDir: ctx}
			// git-tracked lists the files git tracks in the case's repository.
			if dt, err := os.ReadFile(filepath.Join(dir, "git-tracked")); err == nil {
				opts.Repo = NewRepo(ctx, strings.Fields(string(dt)))
			}
			res, err := LintFile(filepath.Join(ctx, "Dockerfile"), opts)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, filepath.Join(dir, "expected.txt"), render1(res.Findings))
			checkParsedAlike(t, filepath.Join(ctx, "Dockerfile"), opts, res)
			n := 0
			for _, f := range res.Findings {
				if f.Rule == rule {
					n++
				}
			}
			if names[rule] {
				if covered[rule] == nil {
					covered[rule] = map[string]bool{}
				}
				covered[rule][strings.Split(kind, "-")[0]] = true
				if strings.HasPrefix(kind, "negative") && n > 0 {
					t.Errorf("negative case has %d %s findings", n, rule)
				}
				if !strings.HasPrefix(kind, "negative") && n == 0 {
					t.Errorf("%s case has no %s finding", kind, rule)
				}
			}
			fx := res.Fix()
			fixed := ""
			if len(fx.Applied) > 0 {
				fixed = string(fx.Dockerfile)
			}
			golden(t, filepath.Join(dir, "fixed.Dockerfile"), fixed)
			if fixed != "" {
				checkFixConverges(t, ctx, fx)
			}
			golden(t, filepath.Join(dir, "fixed.dockerignore"), strings.Join(fx.IgnoreAppend, "\n"))
		})
	}
	for name := range names {
		if !covered[name]["positive"] || !covered[name]["negative"] {
			t.Errorf("rule %s lacks a positive or negative golden case", name)
		}
	}
}

// checkParsedAlike lints path again with the caller's parse of it, as a
// build passes it, and checks the findings are the same.
func checkParsedAlike(t *testing.T, path string, opts Options, want *Result) {
	t.Helper()
	dt, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if opts.Parsed, err = parser.Parse(bytes.NewReader(dt)); err != nil {
		return
	}
	res, err := LintFile(path, opts)
	if err != nil {
		t.Fatalf("with the Dockerfile parsed: %v", err)
	}
	if got := render1(res.Findings); got != render1(want.Findings) {
		t.Errorf("with the Dockerfile parsed:\n%s", got)
	}
}

// checkFixConverges lints the fixed Dockerfile (with the ignore entries
// appended) and checks that no applied fix is offered again.
func checkFixConverges(t *testing.T, ctx string, fx *Fixed) {
	t.Helper()
	if len(fx.IgnoreAppend) > 0 {
		f, err := os.OpenFile(filepath.Join(ctx, ".dockerignore"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString("\n" + strings.Join(fx.IgnoreAppend, "\n") + "\n")
		f.Close()
	}
	res, err := Lint("Dockerfile", fx.Dockerfile, Options{ContextDir: ctx})
	if err != nil {
		t.Fatalf("fixed Dockerfile: %v", err)
	}
	applied := map[string]bool{}
	for _, f := range fx.Applied {
		applied[f.Rule] = true
	}
	for _, f := range res.Findings {
		if applied[f.Rule] && f.Fixable {
			t.Errorf("after the fix, %s still offers a fix: %s", f.Rule, f.Message)
		}
	}
}
