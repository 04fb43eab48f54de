package cache

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/strata-build/strata/buildcontext"
	"github.com/strata-build/strata/errs"
)

// Images built by other tools record nothing about what their COPY steps
// copied, so many candidates tie on text: the same "COPY package-lock.json
// ./" stands in every Node.js image, with different contents. For a COPY
// step whose layer is small (a lockfile or a manifest), the crawler reads
// the layer once and keeps a digest of the contents of its files, a step's
// Sources in the form "files:sha256:..."; the plan computes the same from
// the context's files, and the image whose lockfile matches ranks first.

// FilesPrefix marks a step's Sources as the digest of the file contents of
// its layer (FilesDigest) rather than strata's recorded sources digest.
const FilesPrefix = "files:"

// MaxFilesLayer is the largest compressed COPY layer the crawler reads to
// take its files' digest; larger ones are matched by text.
const MaxFilesLayer = 1 << 20

// maxFilesEntries bounds the entries read from one layer.
const maxFilesEntries = 10000

// errHardlink: a layer with hard links is compared by text only; its
// contents cannot be told apart from the context's by file alone.
var errHardlink = errors.New("layer has hard links")

// filesHash collects one line per file content, in any order.
type filesHash struct{ lines []string }

func (f *filesHash) file(r io.Reader) error {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return err
	}
	f.lines = append(f.lines, "file "+hex.EncodeToString(h.Sum(nil)))
	return nil
}

func (f *filesHash) link(target string) { f.lines = append(f.lines, "link "+target) }

func (f *filesHash) digest() string {
	slices.Sort(f.lines)
	h := sha256.New()
	for _, l := range f.lines {
		io.WriteString(h, l+"\n")
	}
	return FilesPrefix + "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// FilesDigest is the digest of the contents of the regular files and the
// targets of the symlinks in a layer tar, whatever their paths, owners,
// modes and times: COPY writes the context's files under another path, and
// the plan compares them with the context by content alone.
func FilesDigest(r io.Reader) (string, error) {
	var f filesHash
	tr := tar.NewReader(r)
	for n := 0; ; n++ {
		if n > maxFilesEntries {
			return "", fmt.Errorf("more than %d entries", maxFilesEntries)
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return f.digest(), nil
		}
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(path.Base(h.Name), ".wh.") {
			continue // a whiteout deletes, it copies nothing
		}
		switch h.Typeflag {
		case tar.TypeReg:
			if err := f.file(tr); err != nil {
				return "", err
			}
		case tar.TypeSymlink:
			f.link(h.Linkname)
		case tar.TypeLink:
			return "", errHardlink
		}
	}
}

// contextFilesDigest is FilesDigest of what a COPY of srcs and inline
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
		var f filesHash
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
			if err := f.file(strings.NewReader(c.Data)); err != nil {
				return "", err
			}
		}
		return f.digest(), nil
	})
}

func addEntry(f *filesHash, bc *buildcontext.Context, e buildcontext.Entry) error {
	full := filepath.Join(bc.Dir(), filepath.FromSlash(e.Path))
	switch {
	case e.Mode&os.ModeSymlink != 0:
		target, err := os.Readlink(full)
		if err != nil {
			return errs.Inputf("read link %s: %v", e.Path, err)
		}
		f.link(target)
	case e.Mode.IsRegular():
		r, err := os.Open(full)
		if err != nil {
			return errs.Inputf("read %s: %v", e.Path, err)
		}
		defer r.Close()
		if err := f.file(r); err != nil {
			return errs.Inputf("read %s: %v", e.Path, err)
		}
	}
	return nil
}

// layerFiles sets the files digest of each small COPY step of m that
// records no sources, reading its layer from img once per crawl (and
// never when the index already knows the layer).
func (c *crawler) layerFiles(img v1.Image, m *Image) {
	for i := range m.Steps {
		s, l := &m.Steps[i], m.Layers[i]
		if s.Sources != "" || !strings.HasPrefix(s.Text, "COPY ") {
			continue
		}
		if l.Size > MaxFilesLayer {
			c.countText(&c.bigCopies, nil)
			continue
		}
		c.mu.Lock()
		d, ok := c.files[l.Digest]
		c.mu.Unlock()
		if !ok {
			var err error
			if d, err = readLayerFiles(img, l.Digest); errors.Is(err, errHardlink) {
				continue
			} else if err != nil {
				c.countText(&c.failedCopies, err)
				continue
			}
			c.mu.Lock()
			if c.files == nil {
				c.files = map[string]string{}
			}
			c.files[l.Digest] = d
			c.mu.Unlock()
		}
		s.Sources = d
	}
}

func readLayerFiles(img v1.Image, digest string) (string, error) {
	h, err := v1.NewHash(digest)
	if err != nil {
		return "", err
	}
	l, err := img.LayerByDigest(h)
	if err != nil {
		return "", err
	}
	rc, err := l.Uncompressed()
	if err != nil {
		return "", err
	}
	defer rc.Close()
	return FilesDigest(rc)
}

// countText counts a COPY step matched by text only, and why.
func (c *crawler) countText(n *int, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	*n++
	if err != nil && c.firstFilesErr == nil {
		c.firstFilesErr = err
	}
}

// knownFiles are the files digests the index holds, by layer digest.
func knownFiles(x *Index) map[string]string {
	out := map[string]string{}
	for _, m := range x.Images() {
		for i, s := range m.Steps {
			if strings.HasPrefix(s.Sources, FilesPrefix) && i < len(m.Layers) {
				out[m.Layers[i].Digest] = s.Sources
			}
		}
	}
	return out
}

// textRanking says, in one line, which COPY steps are matched by text
// only; empty when there are none worth a word.
func (c *crawler) textRanking() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var parts []string
	if c.failedCopies > 0 {
		parts = append(parts, fmt.Sprintf("%d could not be read (%s)", c.failedCopies, describe(c.firstFilesErr)))
	}
	if c.bigCopies > 0 {
		parts = append(parts, fmt.Sprintf("%d are over %s", c.bigCopies, HumanBytes(MaxFilesLayer)))
	}
	if len(parts) == 0 {
		return ""
	}
	return fmt.Sprintf("COPY layers compared by text only, not by their files: %s", strings.Join(parts, ", "))
}
