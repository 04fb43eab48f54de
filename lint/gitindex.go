package lint

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
)

// Repo is the git repository a build context lies in: which files git
// tracks. SecretInContext uses it to tell a committed, public file from one
// that only exists on the machine that builds.
type Repo struct {
	root    string // absolute
	tracked map[string]bool
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
	paths, err := readGitIndex(dt, hashLen)
	if err != nil {
		return nil, err
	}
	return NewRepo(root, paths), nil
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
	return r.tracked[filepath.ToSlash(rel)], true
}

var errGitIndex = errors.New("not a git index")

// readGitIndex returns the paths of a git index file, versions 2 to 4.
func readGitIndex(dt []byte, hashLen int) ([]string, error) {
	if len(dt) < 12 || string(dt[:4]) != "DIRC" {
		return nil, errGitIndex
	}
	version := binary.BigEndian.Uint32(dt[4:8])
	n := binary.BigEndian.Uint32(dt[8:12])
	if version < 2 || version > 4 || int64(n) > int64(len(dt)) {
		return nil, errGitIndex
	}
	paths := make([]string, 0, n)
	off := 12
	prev := ""
	for i := uint32(0); i < n; i++ {
		start := off
		off += 40 + hashLen // stat data, then the object name
		if off+2 > len(dt) {
			return nil, errGitIndex
		}
		flags := binary.BigEndian.Uint16(dt[off:])
		off += 2
		if version >= 3 && flags&0x4000 != 0 {
			off += 2
		}
		if off > len(dt) {
			return nil, errGitIndex
		}
		var name string
		if version == 4 {
			strip, k := gitVarint(dt[off:])
			if k <= 0 || strip > len(prev) {
				return nil, errGitIndex
			}
			off += k
			end := bytes.IndexByte(dt[off:], 0)
			if end < 0 {
				return nil, errGitIndex
			}
			name = prev[:len(prev)-strip] + string(dt[off:off+end])
			off += end + 1
		} else {
			end := bytes.IndexByte(dt[off:], 0)
			if end < 0 {
				return nil, errGitIndex
			}
			name = string(dt[off : off+end])
			off += end
			// Entries are padded with 1 to 8 NUL bytes to a multiple of 8.
			off = start + (off-start+8)&^7
		}
		paths = append(paths, name)
		prev = name
	}
	return paths, nil
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
