package crawl

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"

	"github.com/strata-build/strata/cache"
)

// MaxFilesLayer is the largest compressed COPY layer the crawler reads to
// take its files' digest; larger ones are matched by text.
const MaxFilesLayer = 1 << 20

// maxFilesEntries bounds the entries read from one layer.
const maxFilesEntries = 10000

// errHardlink: a layer with hard links is compared by text only; its
// contents cannot be told apart from the context's by file alone.
var errHardlink = errors.New("layer has hard links")

// FilesDigest is the digest of the contents of the regular files and the
// targets of the symlinks in a layer tar, whatever their paths, owners,
// modes and times: COPY writes the context's files under another path, and
// the plan compares them with the context by content alone.
func FilesDigest(r io.Reader) (string, error) {
	var f cache.FilesHash
	tr := tar.NewReader(r)
	for n := 0; ; n++ {
		if n > maxFilesEntries {
			return "", fmt.Errorf("more than %d entries", maxFilesEntries)
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return f.Digest(), nil
		}
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(path.Base(h.Name), ".wh.") {
			continue // a whiteout deletes, it copies nothing
		}
		switch h.Typeflag {
		case tar.TypeReg:
			if err := f.AddFile(tr); err != nil {
				return "", err
			}
		case tar.TypeSymlink:
			f.AddLink(h.Linkname)
		case tar.TypeLink:
			return "", errHardlink
		}
	}
}

// layerFiles sets the files digest of each small COPY step of m that
// records no sources, reading its layer from img once per crawl (and
// never when the index already knows the layer). The layers of one image
// are read at once, at most maxFilesReads of them.
func (c *crawler) layerFiles(img v1.Image, m *cache.Image) {
	var g errgroup.Group
	g.SetLimit(maxFilesReads)
	for i := range m.Steps {
		s, l := &m.Steps[i], m.Layers[i]
		if s.Sources != "" || !strings.HasPrefix(s.Text, "COPY ") {
			continue
		}
		if l.Size > MaxFilesLayer {
			c.countText(&c.bigCopies, nil)
			continue
		}
		g.Go(func() error {
			if d, ok := c.filesOf(img, l.Digest); ok {
				s.Sources = d // each goroutine its own step
			}
			return nil
		})
	}
	_ = g.Wait()
}

// maxFilesReads bounds the layers of one image layerFiles reads at once.
const maxFilesReads = 4

// filesOf is the files digest of the layer digest of img, read once per
// crawl; ok is false when the step is left to text matching.
func (c *crawler) filesOf(img v1.Image, digest string) (string, bool) {
	c.mu.Lock()
	d, ok := c.files[digest]
	c.mu.Unlock()
	if ok {
		return d, true
	}
	d, err := readLayerFiles(img, digest)
	if errors.Is(err, errHardlink) {
		return "", false
	} else if err != nil {
		c.countText(&c.failedCopies, err)
		return "", false
	}
	c.mu.Lock()
	if c.files == nil {
		c.files = map[string]string{}
	}
	c.files[digest] = d
	c.mu.Unlock()
	return d, true
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
func knownFiles(x *cache.Index) map[string]string {
	out := map[string]string{}
	for _, m := range x.Images() {
		for i, s := range m.Steps {
			if strings.HasPrefix(s.Sources, cache.FilesPrefix) && i < len(m.Layers) {
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
		parts = append(parts, fmt.Sprintf("%d are over %s", c.bigCopies, cache.HumanBytes(MaxFilesLayer)))
	}
	if len(parts) == 0 {
		return ""
	}
	return fmt.Sprintf("COPY layers compared by text only, not by their files: %s", strings.Join(parts, ", "))
}
