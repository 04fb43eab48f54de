package lint

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLint feeds arbitrary bytes to the lint entry point, with and without
// a build context: it must never panic, and must either lint or return a
// ParseError with the file name.
func FuzzLint(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*/*/Dockerfile")
	for _, s := range seeds {
		if dt, err := os.ReadFile(s); err == nil {
			f.Add(dt)
		}
	}
	f.Add([]byte("FROM alpine\nRUN <<EOF\necho\n"))
	f.Add([]byte("FROM a AS b\nFROM b\nARG GIT_SHA\nRUN --mount=type=cache,target=/x cargo build\n"))
	ctx := f.TempDir()
	for _, p := range []string{"package.json", "src/main.go", ".env", "node_modules/a/b.js"} {
		full := filepath.Join(ctx, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			f.Fatal(err)
		}
		if err := os.WriteFile(full, []byte("x"), 0o644); err != nil {
			f.Fatal(err)
		}
	}
	f.Fuzz(func(t *testing.T, dt []byte) {
		for _, dir := range []string{"", ctx} {
			res, err := Lint("Dockerfile", dt, Options{ContextDir: dir})
			if err != nil {
				var pe *ParseError
				if errors.Is(err, errInternal) {
					t.Fatal(err)
				}
				if !errors.As(err, &pe) || pe.File != "Dockerfile" {
					t.Fatalf("error without file: %v", err)
				}
				continue
			}
			for _, f := range res.Findings {
				if f.Rule == "" || f.Start.Line < 0 {
					t.Fatalf("bad finding %+v", f)
				}
			}
			res.Fix()
		}
	})
}
