package lint

import (
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/strata-build/strata/buildcontext"
)

// copySet is what one COPY or ADD brings from the build context.
type copySet struct {
	step    *Step
	sources []string // cleaned, relative to the context
	// entries are the context files copied; exact is true when they are
	// known (a context was given and every source resolved).
	entries []buildcontext.Entry
	exact   bool
}

func isURL(s string) bool {
	l := strings.ToLower(s)
	return strings.HasPrefix(l, "http://") || strings.HasPrefix(l, "https://") || strings.HasPrefix(l, "git@") || strings.HasSuffix(l, ".git") && strings.Contains(l, "://")
}

// fromContext reports whether a step copies from the build context.
func fromContext(s *Step) bool {
	switch c := s.Cmd.(type) {
	case *instructions.CopyCommand:
		return c.From == ""
	case *instructions.AddCommand:
		for _, src := range s.Sources {
			if !isURL(src) {
				return true
			}
		}
	}
	return false
}

// copied returns what a context COPY/ADD brings in, or nil.
func (p *pass) copied(s *Step) *copySet {
	if !fromContext(s) {
		return nil
	}
	if p.copies == nil {
		p.copies = map[*Step]*copySet{}
	}
	if cs, ok := p.copies[s]; ok {
		return cs
	}
	cs := &copySet{step: s, exact: p.ctx != nil}
	for _, src := range s.Sources {
		if isURL(src) {
			continue
		}
		src = path.Clean("/" + filepath.ToSlash(src))[1:]
		if src == "" {
			src = "."
		}
		cs.sources = append(cs.sources, src)
		if p.ctx == nil {
			continue
		}
		if strings.Contains(src, "$") {
			cs.exact = false
			continue
		}
		matched, _ := p.ctx.Match(src)
		if len(matched) == 0 && !strings.ContainsAny(src, "*?[") && !p.onDisk(src) {
			// The source is not in the context at all: the context is not
			// the one this Dockerfile is built with, so what the copy
			// brings is not known.
			cs.exact = false
		}
		if repo := p.gitRepo(); repo != nil && repo.NotCheckedOut(filepath.Join(p.ctx.Dir(), filepath.FromSlash(src))) {
			// A submodule left empty here (actions/checkout does not
			// fetch them unless asked): the build's copy holds its files.
			cs.exact = false
		}
		cs.entries = append(cs.entries, matched...)
	}
	p.copies[s] = cs
	return cs
}

// broad reports whether the copy takes the context root or a whole
// top-level directory.
func (cs *copySet) broad() bool {
	for _, s := range cs.sources {
		if s == "." || s == "*" {
			return true
		}
	}
	return false
}

// manifestOnly reports whether everything copied is a manifest or lockfile.
func (cs *copySet) manifestOnly() bool {
	if cs.exact {
		return !cs.hasSourceFiles() && (len(cs.entries) > 0 || len(cs.sources) > 0 && !cs.broad())
	}
	for _, s := range cs.sources {
		if !manifestPattern(s) {
			return false
		}
	}
	return len(cs.sources) > 0
}

// manifestPattern reports whether a COPY source names only manifests, like
// "package*.json" or "go.mod".
func manifestPattern(src string) bool {
	if isManifest(src) {
		return true
	}
	base := path.Base(src)
	if !strings.ContainsAny(base, "*?[") {
		return false
	}
	for _, e := range ecosystems {
		for _, m := range e.manifests {
			if ok, _ := path.Match(base, m); ok && !strings.ContainsAny(m, "*?[") {
				return true
			}
		}
	}
	return false
}

// brings reports whether the copy brings a file with one of the base
// names: a source that names it or a glob that covers it, or, for a
// directory, an entry of the context that it takes; when the context is not
// known, a directory copy may hold it and counts as yes.
func (cs *copySet) brings(names []string) bool {
	for _, s := range cs.sources {
		base := path.Base(s)
		for _, n := range names {
			if ok, _ := path.Match(base, n); ok {
				return true
			}
		}
	}
	if cs.exact {
		for _, e := range cs.entries {
			for _, n := range names {
				if path.Base(e.Path) == n {
					return true
				}
			}
		}
		return false
	}
	for _, s := range cs.sources {
		base := path.Base(s)
		if s == "." || !strings.Contains(base, ".") && !strings.ContainsAny(base, "*?[") {
			return true // a directory: it may hold them
		}
	}
	return false
}

// sourceFiles returns the copied entries that are application source: not
// the Dockerfile, its ignore file, or a dependency input.
func (cs *copySet) sourceFiles() []buildcontext.Entry {
	var out []buildcontext.Entry
	for _, e := range cs.entries {
		if isSourceFile(e.Path) {
			out = append(out, e)
		}
	}
	return out
}

// hasSourceFiles reports whether sourceFiles would return any.
func (cs *copySet) hasSourceFiles() bool {
	for _, e := range cs.entries {
		if isSourceFile(e.Path) {
			return true
		}
	}
	return false
}

func isSourceFile(rel string) bool {
	base := path.Base(rel)
	return !strings.HasSuffix(base, ".dockerignore") && !isDockerfileName(base) && !isManifest(rel) && !placeholderFiles[base]
}

// placeholdersOnly reports a copy of folders that hold only placeholder
// files (prebuilt/.gitkeep): what fills them is built elsewhere.
func (cs *copySet) placeholdersOnly() bool {
	if !cs.exact || len(cs.entries) == 0 {
		return false
	}
	for _, e := range cs.entries {
		if !e.Mode.IsDir() && !placeholderFiles[path.Base(e.Path)] {
			return false
		}
	}
	return true
}

// placeholderFiles keep an empty folder in git (a folder CI fills with
// prebuilt binaries): they are not sources.
var placeholderFiles = map[string]bool{".gitkeep": true, ".keep": true, ".gitignore": true, ".placeholder": true}

// isDir reports whether the copy brings rel as a directory: some entry lies
// below it.
func (cs *copySet) isDir(rel string) bool {
	for _, e := range cs.entries {
		if strings.HasPrefix(e.Path, rel+"/") {
			return true
		}
	}
	return false
}

// onDisk reports whether name exists in the context directory, ignored or not.
func (p *pass) onDisk(rel string) bool {
	if p.ctx == nil {
		return false
	}
	_, err := os.Lstat(filepath.Join(p.ctx.Dir(), filepath.FromSlash(rel)))
	return err == nil
}
