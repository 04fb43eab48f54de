package lint

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
)

// Repo is the git repository a build context lies in: which files git
// tracks. SecretInContext uses it to tell a committed, public file from one
// that only exists on the machine that builds.
type Repo struct {
	root    string // absolute
	tracked map[string]bool
	// submodules are the gitlinks of the index (relative paths); subs
	// holds each one's repository once read, nil when it is not checked
	// out.
	submodules map[string]bool
	mu         sync.Mutex
	subs       map[string]*Repo
}

// NewRepo describes a repository at root whose tracked files are the given
// slash-separated paths, relative to root.
func NewRepo(root string, tracked []string) *Repo {
	abs, err := filepath.Abs(root)
	if err != nil {
		abs = root
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	r := &Repo{root: abs, tracked: make(map[string]bool, len(tracked))}
	for _, p := range tracked {
		r.tracked[strings.TrimPrefix(p, "./")] = true
	}
	return r
}

// OpenRepo reads the git index of the repository whose work tree is root
// (root/.git a directory, or a file naming the git directory).
func OpenRepo(root string) (*Repo, error) {
	gitDir := filepath.Join(root, ".git")
	fi, err := os.Stat(gitDir)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		dt, err := os.ReadFile(gitDir)
		if err != nil {
			return nil, err
		}
		p, ok := strings.CutPrefix(strings.TrimSpace(string(dt)), "gitdir:")
		if !ok {
			return nil, errors.New(".git file names no gitdir")
		}
		gitDir = strings.TrimSpace(p)
		if !filepath.IsAbs(gitDir) {
			gitDir = filepath.Join(root, gitDir)
		}
	}
	hashLen := 20
	if cfg, err := os.ReadFile(filepath.Join(gitDir, "config")); err == nil && bytes.Contains(cfg, []byte("sha256")) {
		hashLen = 32
	}
	dt, err := os.ReadFile(filepath.Join(gitDir, "index"))
	if err != nil {
		if os.IsNotExist(err) {
			return NewRepo(root, nil), nil
		}
		return nil, err
	}
	paths, links, err := readGitIndex(dt, hashLen)
	if err != nil {
		return nil, err
	}
	r := NewRepo(root, paths)
	if len(links) > 0 {
		r.submodules = map[string]bool{}
		for _, l := range links {
			r.submodules[l] = true
		}
	}
	return r, nil
}

// submodule returns the submodule rel lies in, as a path relative to the
// root, and its repository (nil when it is not checked out); "" when rel
// lies in none.
func (r *Repo) submodule(rel string) (string, *Repo) {
	if len(r.submodules) == 0 {
		return "", nil
	}
	for dir := rel; dir != "." && dir != "/" && dir != ""; dir = path.Dir(dir) {
		if !r.submodules[dir] {
			continue
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		sub, ok := r.subs[dir]
		if !ok {
			sub, _ = OpenRepo(filepath.Join(r.root, filepath.FromSlash(dir)))
			if r.subs == nil {
				r.subs = map[string]*Repo{}
			}
			r.subs[dir] = sub
		}
		return dir, sub
	}
	return "", nil
}

// NotCheckedOut reports whether the absolute path p is, or lies in, a
// submodule whose work tree is not checked out (actions/checkout leaves
// submodules empty unless asked): what a build copies from there is not
// known.
func (r *Repo) NotCheckedOut(p string) bool {
	rel, err := filepath.Rel(r.root, p)
	if err != nil || strings.HasPrefix(rel, "..") {
		return false
	}
	dir, sub := r.submodule(filepath.ToSlash(rel))
	return dir != "" && sub == nil
}

// files returns the tracked paths, slash-separated, in no order.
func (r *Repo) files() []string {
	out := make([]string, 0, len(r.tracked))
	for p := range r.tracked {
		out = append(out, p)
	}
	return out
}

// Root returns the repository's work tree, absolute.
func (r *Repo) Root() string { return r.root }

// Tracked reports whether git tracks the file at the absolute path p; ok
// is false when p lies outside the repository.
func (r *Repo) Tracked(p string) (tracked, ok bool) {
	rel, err := filepath.Rel(r.root, p)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return false, false
	}
	rel = filepath.ToSlash(rel)
	if r.tracked[rel] {
		return true, true
	}
	// A file of a submodule is tracked by the submodule's own index.
	if dir, sub := r.submodule(rel); sub != nil {
		return sub.tracked[strings.TrimPrefix(rel, dir+"/")], true
	}
	return false, true
}

var errGitIndex = errors.New("not a git index")

// readGitIndex returns the paths of a git index file, versions 2 to 4, and
// those of them that are gitlinks (submodules).
func readGitIndex(dt []byte, hashLen int) (paths, links []string, err error) {
	if len(dt) < 12 || string(dt[:4]) != "DIRC" {
		return nil, nil, errGitIndex
	}
	version := binary.BigEndian.Uint32(dt[4:8])
	n := binary.BigEndian.Uint32(dt[8:12])
	if version < 2 || version > 4 || int64(n) > int64(len(dt)) {
		return nil, nil, errGitIndex
	}
	paths = make([]string, 0, n)
	off := 12
	prev := ""
	for i := uint32(0); i < n; i++ {
		start := off
		off += 40 + hashLen // stat data, then the object name
		if off > len(dt) {
			return nil, nil, errGitIndex
		}
		gitlink := binary.BigEndian.Uint32(dt[start+24:])>>12 == 0xE // mode 160000
		if off+2 > len(dt) {
			return nil, nil, errGitIndex
		}
		flags := binary.BigEndian.Uint16(dt[off:])
		off += 2
		if version >= 3 && flags&0x4000 != 0 {
			off += 2
		}
		if off > len(dt) {
			return nil, nil, errGitIndex
		}
		var name string
		if version == 4 {
			strip, k := gitVarint(dt[off:])
			if k <= 0 || strip > len(prev) {
				return nil, nil, errGitIndex
			}
			off += k
			end := bytes.IndexByte(dt[off:], 0)
			if end < 0 {
				return nil, nil, errGitIndex
			}
			name = prev[:len(prev)-strip] + string(dt[off:off+end])
			off += end + 1
		} else {
			end := bytes.IndexByte(dt[off:], 0)
			if end < 0 {
				return nil, nil, errGitIndex
			}
			name = string(dt[off : off+end])
			off += end
			// Entries are padded with 1 to 8 NUL bytes to a multiple of 8.
			off = start + (off-start+8)&^7
		}
		paths = append(paths, name)
		if gitlink {
			links = append(links, name)
		}
		prev = name
	}
	return paths, links, nil
}

// gitVarint decodes the offset varint of git's index version 4; k is the
// number of bytes read, 0 when the input ends first.
func gitVarint(b []byte) (v, k int) {
	if len(b) == 0 {
		return 0, 0
	}
	c := b[0]
	v, k = int(c&127), 1
	for c&128 != 0 {
		if k >= len(b) || k > 8 {
			return 0, 0
		}
		c = b[k]
		k++
		v = (v+1)<<7 + int(c&127)
	}
	return v, k
}
