package lint

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/strata-build/strata/buildcontext"
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
		path := ignorePath(r.Context)
		old, err := os.ReadFile(path) // none yet: the fix creates it
		rw.Ignore = &FileChange{Path: path, Old: old, New: appendIgnore(old, fixed.IgnoreAppend), Created: err != nil}
		rw.ignoreEntries = fixed.IgnoreAppend
	}
	return rw
}

// ignorePath is the ignore file that entries for ctx go to: the one it
// uses, else .dockerignore in it.
func ignorePath(ctx *buildcontext.Context) string {
	if p := ctx.IgnoreFile(); p != "" {
		return p
	}
	return filepath.Join(ctx.Dir(), ".dockerignore")
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

// Rewrites gathers the rewrites of Dockerfiles linted together so that
// each ignore file changes once: with the entries of every rewrite that
// adds to it, less the entries another Dockerfile sharing it needs (see
// Result.Needs). Diff shows them as one patch, Write writes them.
type Rewrites struct {
	list    []*Rewrite
	ignores []*FileChange       // in the order rewrites first add to them
	entries map[string][]string // by ignore file
	needs   map[string][]need   // by ignore file
}

type need struct{ entry, file string }

// Need records what res's build needs kept out of its ignore file.
func (rs *Rewrites) Need(res *Result) {
	if res == nil || res.Context == nil || len(res.Needs) == 0 {
		return
	}
	if rs.needs == nil {
		rs.needs = map[string][]need{}
	}
	path := ignorePath(res.Context)
	for _, e := range res.Needs {
		rs.needs[path] = append(rs.needs[path], need{e, res.File})
	}
}

// Add adds a rewrite (nil adds nothing).
func (rs *Rewrites) Add(rw *Rewrite) {
	if rw == nil {
		return
	}
	rs.list = append(rs.list, rw)
	if ig := rw.Ignore; ig != nil {
		if rs.entries == nil {
			rs.entries = map[string][]string{}
		}
		if _, ok := rs.entries[ig.Path]; !ok {
			rs.ignores = append(rs.ignores, ig)
		}
		rs.entries[ig.Path] = append(rs.entries[ig.Path], rw.ignoreEntries...)
	}
}

// List returns the rewrites that change a file, in the order they were
// added: not those whose only change is an entry another Dockerfile needs
// left out.
func (rs *Rewrites) List() []*Rewrite {
	var out []*Rewrite
	for _, rw := range rs.list {
		changes := string(rw.Dockerfile.Old) != string(rw.Dockerfile.New)
		if ig := rw.Ignore; ig != nil && !changes {
			changes = slices.ContainsFunc(rw.ignoreEntries, func(e string) bool { return !rs.needed(ig.Path, e) })
		}
		if changes {
			out = append(out, rw)
		}
	}
	return out
}

// needed reports whether a Dockerfile that shares the ignore file at path
// needs entry left out of it.
func (rs *Rewrites) needed(path, entry string) bool {
	return slices.ContainsFunc(rs.needs[path], func(n need) bool { return n.entry == entry })
}

// Kept says, one line each, which entries the ignore files do not get
// because a Dockerfile that shares them needs what they would exclude.
func (rs *Rewrites) Kept() []string {
	var out []string
	for _, ig := range rs.ignores {
		var entries []string
		readers := map[string][]string{}
		for _, n := range rs.needs[ig.Path] {
			if !slices.Contains(rs.entries[ig.Path], n.entry) {
				continue
			}
			if readers[n.entry] == nil {
				entries = append(entries, n.entry)
			}
			readers[n.entry] = append(readers[n.entry], filepath.ToSlash(displayPath(n.file)))
		}
		for _, e := range entries {
			who := readers[e][0] + " shares it and reads " + e
			if n := len(readers[e]); n > 1 {
				who = fmt.Sprintf("%d Dockerfiles that share it read %s (%s, ...)", n, e, readers[e][0])
			}
			out = append(out, fmt.Sprintf("%s is not added to %s: %s; to keep it out of the other builds, give them ignore files of their own (<Dockerfile>.dockerignore)",
				e, filepath.ToSlash(displayPath(ig.Path)), who))
		}
	}
	return out
}

// ignoreChanges are the changes to the ignore files, merged.
func (rs *Rewrites) ignoreChanges() []*FileChange {
	var out []*FileChange
	for _, ig := range rs.ignores {
		var entries []string
		for _, e := range rs.entries[ig.Path] {
			if !rs.needed(ig.Path, e) {
				entries = append(entries, e)
			}
		}
		fc := *ig
		fc.New = appendIgnore(ig.Old, entries)
		if string(fc.New) != string(fc.Old) {
			out = append(out, &fc)
		}
	}
	return out
}

// Diff is every rewrite as one patch: the Dockerfiles' diffs, then one
// per ignore file.
func (rs *Rewrites) Diff() string {
	var out strings.Builder
	for _, rw := range rs.List() {
		out.WriteString(rw.dockerfileDiff())
	}
	for _, fc := range rs.ignoreChanges() {
		out.WriteString(fc.diff())
	}
	return out.String()
}

// Write writes the rewritten Dockerfiles, then the ignore files.
func (rs *Rewrites) Write() error {
	for _, rw := range rs.List() {
		if err := rw.writeDockerfile(); err != nil {
			return err
		}
	}
	for _, fc := range rs.ignoreChanges() {
		if err := fc.write(); err != nil {
			return err
		}
	}
	return nil
}

// Write writes the rewritten files. A Dockerfile read from standard input
// has nowhere to be written: Diff shows its fixes.
func (rw *Rewrite) Write() error {
	if err := rw.writeDockerfile(); err != nil {
		return err
	}
	if rw.Ignore != nil {
		return rw.Ignore.write()
	}
	return nil
}

func (rw *Rewrite) writeDockerfile() error {
	if rw.Dockerfile.Path == Stdin {
		return errs.Usagef("a Dockerfile read from standard input has no file to write its fixes to")
	}
	return rw.Dockerfile.write()
}

func (fc *FileChange) write() error {
	if err := os.WriteFile(fc.Path, fc.New, 0o644); err != nil {
		return errs.Inputf("write %s: %v", fc.Path, err)
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
