package buildcontext

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/moby/patternmatcher"

	"github.com/strata-build/strata/errs"
)

// Walk calls fn for every entry BuildKit receives, in lexical order, with a
// slash-separated path relative to the context. A directory that is itself
// excluded but holds re-included entries is reported just before the first
// of them, as fsutil does. fn may return fs.SkipDir for a directory.
func (c *Context) Walk(fn func(rel string, d fs.DirEntry) error) error {
	type parent struct {
		d        fs.DirEntry
		rel      string
		withSep  string
		info     patternmatcher.MatchInfo
		reported bool
		skipped  bool
	}
	var parents []parent
	return filepath.WalkDir(c.dir, func(p string, d fs.DirEntry, walkErr error) error {
		if p == c.dir {
			if walkErr != nil {
				return errorAt(".", walkErr)
			}
			return nil
		}
		rel := filepath.ToSlash(p[len(c.dir)+1:])
		isDir := d != nil && d.IsDir()

		var info patternmatcher.MatchInfo
		skip := false
		if c.matcher != nil {
			for len(parents) > 0 && !strings.HasPrefix(rel, parents[len(parents)-1].withSep) {
				parents = parents[:len(parents)-1]
			}
			var parentInfo patternmatcher.MatchInfo
			if len(parents) > 0 {
				parentInfo = parents[len(parents)-1].info
			}
			m, mi, err := c.matcher.MatchesUsingParentResults(filepath.FromSlash(rel), parentInfo)
			if err != nil {
				return errorAt(rel, err)
			}
			info = mi
			if m {
				if isDir && c.canSkip(rel) {
					return filepath.SkipDir
				}
				skip = true
			}
		}
		if walkErr != nil {
			if skip && errors.Is(walkErr, fs.ErrPermission) {
				return nil
			}
			return errorAt(rel, walkErr)
		}
		if c.matcher != nil && isDir {
			defer func() {
				parents = append(parents, parent{d: d, rel: rel, withSep: rel + "/", info: info, reported: !skip})
			}()
		}
		if skip {
			return nil
		}
		for i := range parents {
			if parents[i].skipped {
				return filepath.SkipDir
			}
			if parents[i].reported {
				continue
			}
			parents[i].reported = true
			if err := fn(parents[i].rel, parents[i].d); err == filepath.SkipDir {
				parents[i].skipped = true
				return filepath.SkipDir
			} else if err != nil {
				return err
			}
		}
		return fn(rel, d)
	})
}

// canSkip reports whether nothing under the excluded directory rel can be
// re-included, so the walk need not enter it (fsutil's shortcut, kept so
// that unreadable excluded directories behave the same).
func (c *Context) canSkip(rel string) bool {
	if !c.prefixOnlyExceptions {
		return false
	}
	if !c.matcher.Exclusions() {
		return true
	}
	dirSlash := filepath.FromSlash(rel) + string(filepath.Separator)
	for _, p := range c.matcher.Patterns() {
		if p.Exclusion() && strings.HasPrefix(withoutTrailingGlob(p)+string(filepath.Separator), dirSlash) {
			return false
		}
	}
	return true
}

// WalkError is an error met while walking the context, with the path at fault.
type WalkError struct {
	Path string
	Err  error
}

func (e *WalkError) Error() string { return "build context: " + e.Path + ": " + e.Err.Error() }

// Unwrap makes errors.Is(err, errs.ErrInput) hold, so an unreadable
// context exits with the usage/input code.
func (e *WalkError) Unwrap() []error { return []error{errs.ErrInput, e.Err} }

func errorAt(rel string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return &WalkError{Path: rel, Err: err}
}

// Entry is one non-directory entry that reaches the build.
type Entry struct {
	Path string      // slash-separated, relative to the context
	Size int64       // bytes; the link text length for a symlink
	Mode fs.FileMode // type bits and permissions
}

type index struct {
	entries []Entry // sorted by Path
}

func (c *Context) load() (*index, error) {
	c.once.Do(func() {
		ix := &index{}
		c.err = c.Walk(func(rel string, d fs.DirEntry) error {
			if d.IsDir() {
				return nil
			}
			fi, err := d.Info()
			if err != nil {
				if os.IsNotExist(err) {
					return nil
				}
				return errorAt(rel, err)
			}
			ix.entries = append(ix.entries, Entry{Path: rel, Size: fi.Size(), Mode: fi.Mode()})
			return nil
		})
		sort.Slice(ix.entries, func(i, j int) bool { return ix.entries[i].Path < ix.entries[j].Path })
		c.index = ix
	})
	return c.index, c.err
}

// Entries returns every non-directory entry that reaches the build, sorted
// by path. The context is walked once and the result kept.
func (c *Context) Entries() ([]Entry, error) {
	ix, err := c.load()
	if err != nil {
		return nil, err
	}
	return ix.entries, nil
}

// Files returns the sorted slash-separated relative paths of every
// non-directory entry (regular files, symlinks) that BuildKit receives.
func (c *Context) Files() ([]string, error) {
	ix, err := c.load()
	if err != nil {
		return nil, err
	}
	out := make([]string, len(ix.entries))
	for i, e := range ix.entries {
		out[i] = e.Path
	}
	return out, nil
}

// Sizes returns the bytes that reach the build under each top-level entry
// of the context (a file's own size, or the sum over a directory).
func (c *Context) Sizes() (map[string]int64, error) {
	ix, err := c.load()
	if err != nil {
		return nil, err
	}
	sizes := map[string]int64{}
	for _, e := range ix.entries {
		top, _, _ := strings.Cut(e.Path, "/")
		sizes[top] += e.Size
	}
	return sizes, nil
}

// Under returns the entries at or below the slash-separated path rel
// ("." or "" for all).
func (c *Context) Under(rel string) ([]Entry, error) {
	ix, err := c.load()
	if err != nil {
		return nil, err
	}
	rel = strings.Trim(rel, "/")
	if rel == "" || rel == "." {
		return ix.entries, nil
	}
	i := sort.Search(len(ix.entries), func(i int) bool { return ix.entries[i].Path >= rel })
	var out []Entry
	for ; i < len(ix.entries); i++ {
		p := ix.entries[i].Path
		if p == rel || strings.HasPrefix(p, rel+"/") {
			out = append(out, ix.entries[i])
			continue
		}
		if !strings.HasPrefix(p, rel) {
			break
		}
	}
	return out, nil
}

// Match returns the entries a COPY or ADD source takes from the context:
// the path it names (a file, or everything under a directory) or, for a
// wildcard source, every path or parent directory it matches. The source
// is relative to the context; "." takes everything.
func (c *Context) Match(src string) ([]Entry, error) {
	pattern := strings.Trim(path.Clean("/"+filepath.ToSlash(src)), "/")
	if !strings.ContainsAny(pattern, `*?[\`) {
		return c.Under(pattern)
	}
	all, err := c.Entries()
	if err != nil {
		return nil, err
	}
	depth := strings.Count(pattern, "/") + 1
	var out []Entry
	for _, e := range all {
		parts := strings.SplitN(e.Path, "/", depth+1)
		if len(parts) < depth {
			continue
		}
		if ok, _ := path.Match(pattern, strings.Join(parts[:depth], "/")); ok {
			out = append(out, e)
		}
	}
	return out, nil
}
