package lint

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/strata-build/strata/errs"
)

// Rewrite is what fixing a Result changes on disk: the Dockerfile and,
// when a fix keeps files out of the context, the context's ignore file.
type Rewrite struct {
	Applied    []Finding   // the findings the fixes address
	Dockerfile FileChange  // at the Result's File
	Ignore     *FileChange // nil when no fix adds ignore entries
}

// FileChange is a file's content before and after a rewrite.
type FileChange struct {
	Path     string
	Old, New []byte
}

// Rewrite applies the fixes of r's fixable findings (Fix) and returns the
// files they change, reading the ignore file that new entries go to: the
// one the context uses, else .dockerignore in the context. It returns nil
// when no fix applies.
func (r *Result) Rewrite() *Rewrite {
	fixed := r.Fix()
	if len(fixed.Applied) == 0 {
		return nil
	}
	rw := &Rewrite{Applied: fixed.Applied, Dockerfile: FileChange{Path: r.File, Old: r.Dockerfile.Source, New: fixed.Dockerfile}}
	if len(fixed.IgnoreAppend) > 0 && r.Context != nil {
		path := r.Context.IgnoreFile()
		if path == "" {
			path = filepath.Join(r.Context.Dir(), ".dockerignore")
		}
		old, _ := os.ReadFile(path) // none yet: the fix creates it
		rw.Ignore = &FileChange{Path: path, Old: old, New: appendIgnore(old, fixed.IgnoreAppend)}
	}
	return rw
}

// Diff is the rewrite as unified diffs: the Dockerfile under its name,
// the ignore file relative to the working directory when it lies below it.
func (rw *Rewrite) Diff() string {
	name := rw.Dockerfile.Path
	if filepath.IsAbs(name) {
		name = filepath.ToSlash(displayPath(name))
	}
	d := UnifiedDiff(name, rw.Dockerfile.Old, rw.Dockerfile.New)
	if ig := rw.Ignore; ig != nil {
		d += UnifiedDiff(filepath.ToSlash(displayPath(ig.Path)), ig.Old, ig.New)
	}
	return d
}

// Write writes the rewritten files. A Dockerfile read from standard input
// has nowhere to be written: Diff shows its fixes.
func (rw *Rewrite) Write() error {
	if rw.Dockerfile.Path == Stdin {
		return errs.Usagef("a Dockerfile read from standard input has no file to write its fixes to")
	}
	for _, fc := range []*FileChange{&rw.Dockerfile, rw.Ignore} {
		if fc == nil {
			continue
		}
		if err := os.WriteFile(fc.Path, fc.New, 0o644); err != nil {
			return errs.Inputf("write %s: %v", fc.Path, err)
		}
	}
	return nil
}

// appendIgnore adds the entries old does not have yet to the end of an
// ignore file, under a comment that says where they came from.
func appendIgnore(old []byte, entries []string) []byte {
	have := map[string]bool{}
	for _, l := range strings.Split(string(old), "\n") {
		have[strings.TrimSpace(l)] = true
	}
	var add []string
	for _, e := range entries {
		if !have[e] {
			add = append(add, e)
		}
	}
	if len(add) == 0 {
		return old
	}
	out := append([]byte(nil), old...)
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	out = append(out, "# added by strata lint --fix\n"...)
	for _, e := range add {
		out = append(out, e+"\n"...)
	}
	return out
}
