package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"slices"
)

// Images built by other tools record nothing about what their COPY steps
// copied, so many candidates tie on text: the same "COPY package-lock.json
// ./" stands in every Node.js image, with different contents. For a COPY
// step whose layer is small (a lockfile or a manifest), the crawler reads
// the layer once and keeps a digest of the contents of its files, a step's
// Sources in the form "files:sha256:..."; the plan computes the same from
// the context's files, and the image whose lockfile matches ranks first.

// FilesPrefix marks a step's Sources as the digest of the file contents of
// its layer (FilesHash) rather than strata's recorded sources digest.
const FilesPrefix = "files:"

// FilesHash is the digest of the contents of regular files and the
// targets of symlinks, whatever their paths, owners, modes, times and
// order: the crawler takes it of a COPY layer, the planner of what the
// COPY takes from the build context. The zero value is ready to use.
type FilesHash struct{ lines []string }

// AddFile adds a regular file's content.
func (f *FilesHash) AddFile(r io.Reader) error {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return err
	}
	f.lines = append(f.lines, "file "+hex.EncodeToString(h.Sum(nil)))
	return nil
}

// AddLink adds a symlink's target.
func (f *FilesHash) AddLink(target string) { f.lines = append(f.lines, "link "+target) }

// Digest is the digest of what was added, with FilesPrefix.
func (f *FilesHash) Digest() string {
	slices.Sort(f.lines)
	h := sha256.New()
	for _, l := range f.lines {
		io.WriteString(h, l+"\n")
	}
	return FilesPrefix + "sha256:" + hex.EncodeToString(h.Sum(nil))
}
