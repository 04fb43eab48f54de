package plan

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-build/strata/buildcontext"
	"github.com/strata-build/strata/cache"
	"github.com/strata-build/strata/errs"
)

// addSources sets the content digest of the sources of each COPY and ADD
// step that reads the build context.
func addSources(opt *StagesOptions, s instructions.Stage, steps []cache.Step) error {
	for i, c := range matchCommands(s, steps) {
		var srcs []string
		var contents []instructions.SourceContent
		switch c := c.(type) {
		case *instructions.CopyCommand:
			if c.From != "" {
				continue
			}
			srcs, contents = c.SourcePaths, c.SourceContents
		case *instructions.AddCommand:
			srcs, contents = c.SourcePaths, c.SourceContents
		default:
			continue
		}
		paths, ok := expandedSources(steps[i].Text, len(srcs)+len(contents))
		if !ok || remoteSource(paths) {
			continue
		}
		if opt.Context == nil {
			var err error
			if opt.Context, err = buildcontext.Open(opt.ContextDir, opt.Dockerfile); err != nil {
				return err
			}
		}
		d, err := sourcesDigest(opt.Context, paths[:len(srcs)], contents)
		if err != nil {
			return err
		}
		steps[i].Sources = d
		// A COPY with --exclude leaves out files the plan would count.
		if cp, ok := c.(*instructions.CopyCommand); ok && len(cp.ExcludePatterns) == 0 {
			if steps[i].Files, err = contextFilesDigest(opt.Context, paths[:len(srcs)], contents); err != nil {
				return err
			}
		}
	}
	return nil
}

// expandedSources reads the source paths back from BuildKit's history text
// "COPY [--flag=v]... SRC... DST", where they are already expanded. Paths
// with spaces cannot be told apart there; then ok is false.
func expandedSources(text string, n int) ([]string, bool) {
	f := strings.Fields(text)
	if len(f) < 2 {
		return nil, false
	}
	f = f[1:]
	for len(f) > 0 && strings.HasPrefix(f[0], "--") {
		f = f[1:]
	}
	if len(f) != n+1 {
		return nil, false
	}
	return f[:n], true
}

func remoteSource(paths []string) bool {
	for _, p := range paths {
		if strings.Contains(p, "://") || strings.HasPrefix(p, "git@") {
			return true
		}
	}
	return false
}

// sourcesDigest is the content digest of what a COPY or ADD of srcs (paths
// or wildcards relative to the context, as expanded in the history text)
// and inline heredoc contents takes from the build context: every file's
// path, mode, size and content (a symlink's target), in path order, after
// the context's .dockerignore. The build side records it in the history
// comment (SourcesComment) so later plans can match COPY steps by content.
func sourcesDigest(bc *buildcontext.Context, srcs []string, contents []instructions.SourceContent) (string, error) {
	key := new(strings.Builder)
	key.WriteString("sources")
	for _, src := range srcs {
		fmt.Fprintf(key, "\x00%s", src)
	}
	for _, c := range contents {
		fmt.Fprintf(key, "\x00heredoc %s %x", c.Path, sha256.Sum256([]byte(c.Data)))
	}
	return bc.Memo(key.String(), func() (string, error) { return hashSources(bc, srcs, contents) })
}

func hashSources(bc *buildcontext.Context, srcs []string, contents []instructions.SourceContent) (string, error) {
	all, err := bc.Entries()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, src := range srcs {
		fmt.Fprintf(h, "src %s\n", src)
		pattern := strings.Trim(path.Clean("/"+filepath.ToSlash(src)), "/")
		for _, e := range all {
			if !SourceMatch(pattern, e.Path) {
				continue
			}
			if err := hashEntry(h, bc, e); err != nil {
				return "", err
			}
		}
	}
	for _, c := range contents {
		sum := sha256.Sum256([]byte(c.Data))
		fmt.Fprintf(h, "heredoc %s %x\n", c.Path, sum)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// SourceMatch reports whether a context entry is taken by a source
// pattern: the path itself, a file under a directory it names, or a
// wildcard match of the path or one of its parent directories.
func SourceMatch(pattern, p string) bool {
	if pattern == "" || pattern == "." {
		return true
	}
	if p == pattern || strings.HasPrefix(p, pattern+"/") {
		return true
	}
	if !strings.ContainsAny(pattern, "*?[") {
		return false
	}
	for q := p; q != "." && q != ""; q = path.Dir(q) {
		if ok, _ := path.Match(pattern, q); ok {
			return true
		}
		if !strings.Contains(q, "/") {
			break
		}
	}
	return false
}

func hashEntry(h hash.Hash, bc *buildcontext.Context, e buildcontext.Entry) error {
	full := filepath.Join(bc.Dir(), filepath.FromSlash(e.Path))
	fmt.Fprintf(h, "%s %o %d ", e.Path, uint32(e.Mode), e.Size)
	if e.Mode&os.ModeSymlink != 0 {
		target, err := os.Readlink(full)
		if err != nil {
			return errs.Inputf("read link %s: %v", e.Path, err)
		}
		fmt.Fprintf(h, "-> %s\n", target)
		return nil
	}
	if !e.Mode.IsRegular() {
		fmt.Fprintln(h)
		return nil
	}
	f, err := os.Open(full)
	if err != nil {
		return errs.Inputf("read %s: %v", e.Path, err)
	}
	defer f.Close()
	fh := sha256.New()
	if _, err := io.Copy(fh, f); err != nil {
		return errs.Inputf("read %s: %v", e.Path, err)
	}
	fmt.Fprintf(h, "%x\n", fh.Sum(nil))
	return nil
}

// RecordSources writes the sources digest of each of the stage's own COPY
// and ADD steps into the comment of the matching history entry of the
// image the stage produces (BuildKit's history: the base's entries first),
// so later plans match those steps by content. Entries whose text is not
// the step's are left alone. It returns how many entries it changed.
func RecordSources(history []ocispecs.History, st *Stage) int {
	n, layer := 0, -1
	for i := range history {
		h := &history[i]
		if h.EmptyLayer {
			continue
		}
		layer++
		if layer < st.BaseSteps || layer >= len(st.Steps) {
			continue
		}
		s := st.Steps[layer]
		if s.Sources == "" || strings.Contains(h.Comment, cache.SourcesMarker) {
			continue
		}
		if text, _ := cache.NormalizeCreatedBy(h.CreatedBy); text != s.Text {
			continue
		}
		h.Comment = cache.SourcesComment(h.Comment, s.Sources)
		n++
	}
	return n
}

// contextFilesDigest is the FilesHash of what a COPY of srcs and inline
// heredoc contents takes from the build context.
func contextFilesDigest(bc *buildcontext.Context, srcs []string, contents []instructions.SourceContent) (string, error) {
	key := new(strings.Builder)
	key.WriteString("files")
	for _, src := range srcs {
		fmt.Fprintf(key, "\x00%s", src)
	}
	for _, c := range contents {
		fmt.Fprintf(key, "\x00heredoc %s %x", c.Path, sha256.Sum256([]byte(c.Data)))
	}
	return bc.Memo(key.String(), func() (string, error) {
		all, err := bc.Entries()
		if err != nil {
			return "", err
		}
		var f cache.FilesHash
		seen := map[string]bool{}
		for _, src := range srcs {
			pattern := strings.Trim(path.Clean("/"+filepath.ToSlash(src)), "/")
			for _, e := range all {
				if seen[e.Path] || !SourceMatch(pattern, e.Path) {
					continue
				}
				seen[e.Path] = true
				if err := addEntry(&f, bc, e); err != nil {
					return "", err
				}
			}
		}
		for _, c := range contents {
			if err := f.AddFile(strings.NewReader(c.Data)); err != nil {
				return "", err
			}
		}
		return f.Digest(), nil
	})
}

func addEntry(f *cache.FilesHash, bc *buildcontext.Context, e buildcontext.Entry) error {
	full := filepath.Join(bc.Dir(), filepath.FromSlash(e.Path))
	switch {
	case e.Mode&os.ModeSymlink != 0:
		target, err := os.Readlink(full)
		if err != nil {
			return errs.Inputf("read link %s: %v", e.Path, err)
		}
		f.AddLink(target)
	case e.Mode.IsRegular():
		r, err := os.Open(full)
		if err != nil {
			return errs.Inputf("read %s: %v", e.Path, err)
		}
		defer r.Close()
		if err := f.AddFile(r); err != nil {
			return errs.Inputf("read %s: %v", e.Path, err)
		}
	}
	return nil
}
