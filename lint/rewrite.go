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

	ignoreEntries []string // the entries the fixes add to Ignore
}

// FileChange is a file's content before and after a rewrite. Created
// says the file does not exist yet.
type FileChange struct {
	Path     string
	Old, New []byte
	Created  bool
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
		old, err := os.ReadFile(path) // none yet: the fix creates it
		rw.Ignore = &FileChange{Path: path, Old: old, New: appendIgnore(old, fixed.IgnoreAppend), Created: err != nil}
		rw.ignoreEntries = fixed.IgnoreAppend
	}
	return rw
}

// Diff is the rewrite as unified diffs: the Dockerfile under its name,
// the ignore file relative to the working directory when it lies below it.
func (rw *Rewrite) Diff() string {
	d := rw.dockerfileDiff()
	if ig := rw.Ignore; ig != nil {
		d += ig.diff()
	}
	return d
}

func (rw *Rewrite) dockerfileDiff() string {
	name := rw.Dockerfile.Path
	if filepath.IsAbs(name) {
		name = filepath.ToSlash(displayPath(name))
	}
	return UnifiedDiff(name, rw.Dockerfile.Old, rw.Dockerfile.New)
}

// diff is the change to an ignore file as a unified diff, from /dev/null
// when the file is new.
func (fc *FileChange) diff() string {
	name := filepath.ToSlash(displayPath(fc.Path))
	d := UnifiedDiff(name, fc.Old, fc.New)
	if fc.Created && d != "" {
		d = "--- /dev/null" + d[strings.IndexByte(d, '\n'):]
	}
	return d
}

// Diffs gathers the diffs of several rewrites as one patch: each
// Dockerfile's as it comes, and one diff per ignore file at the end with
// the entries of every rewrite that adds to it (Dockerfiles that share a
// context share its ignore file), so that the patch applies as a whole.
type Diffs struct {
	ignores []*FileChange
	entries map[string][]string
}

// Add returns rw's Dockerfile diff and keeps its ignore entries for
// Ignores.
func (d *Diffs) Add(rw *Rewrite) string {
	if ig := rw.Ignore; ig != nil {
		if d.entries == nil {
			d.entries = map[string][]string{}
		}
		if _, ok := d.entries[ig.Path]; !ok {
			d.ignores = append(d.ignores, ig)
		}
		d.entries[ig.Path] = append(d.entries[ig.Path], rw.ignoreEntries...)
	}
	return rw.dockerfileDiff()
}

// Ignores returns the diffs of the ignore files the rewrites add to.
func (d *Diffs) Ignores() string {
	var out strings.Builder
	for _, ig := range d.ignores {
		all := *ig
		all.New = appendIgnore(ig.Old, d.entries[ig.Path])
		out.WriteString(all.diff())
	}
	return out.String()
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
			have[e] = true
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
