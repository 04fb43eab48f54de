package stream

import (
	"hash"
	"io"
	"strconv"
	"sync"

	"github.com/containerd/stargz-snapshotter/estargz"
	kgzip "github.com/klauspost/compress/gzip"
	digest "github.com/opencontainers/go-digest"
)

// estargzLevel is the gzip level of eStargz layers: the same as gzip
// layers', so an eStargz layer costs about the same to push.
const estargzLevel = kgzip.DefaultCompression

// estargzLayer is one eStargz layer as it is written.
type estargzLayer struct {
	w    *estargz.Writer
	comp *estargzCompressor
}

// newEstargzLayer writes an eStargz layer into dst: a gzip stream any
// puller reads as it reads gzip, whose files are each compressed on their
// own and listed, with their offsets, in a table of contents at its end,
// so that the stargz snapshotter can fetch just the files a step reads.
// The same tar gives the same bytes.
func newEstargzLayer(dst io.Writer) *estargzLayer {
	comp := &estargzCompressor{GzipCompressor: estargz.NewGzipCompressorWithLevel(estargzLevel)}
	return &estargzLayer{w: estargz.NewWriterWithCompressor(dst, comp), comp: comp}
}

// append writes the tar archive read from src into the layer. As BuildKit
// does, it keeps the archive's bytes as they are, end-of-archive marker
// included, so the table of contents follows the archive: a puller that
// unpacks the layer as gzip gets the same files as from the tar, without
// the table of contents.
func (l *estargzLayer) append(src io.Reader) error { return l.w.AppendTarLossLess(src) }

// close writes the table of contents and returns the layer's uncompressed
// digest (its diff_id), its uncompressed size and its annotations.
func (l *estargzLayer) close() (digest.Digest, int64, map[string]string, error) {
	toc, err := l.w.Close()
	if err != nil {
		return "", 0, nil, err
	}
	diff, err := digest.Parse(l.w.DiffID())
	if err != nil {
		return "", 0, nil, err
	}
	return diff, l.comp.n, map[string]string{
		// The digest the stargz snapshotter verifies the table of
		// contents with before it mounts the layer lazily.
		estargz.TOCJSONDigestAnnotation:         toc.String(),
		estargz.StoreUncompressedSizeAnnotation: strconv.FormatInt(l.comp.n, 10),
	}, nil
}

// estargzCompressor compresses each part of an eStargz layer with
// klauspost/compress's gzip (the format of the standard library's, at
// about twice its speed), reusing its writers, and counts the
// uncompressed bytes. The table of contents is written as estargz writes
// it.
type estargzCompressor struct {
	*estargz.GzipCompressor
	pool sync.Pool
	n    int64 // uncompressed bytes written
}

func (c *estargzCompressor) Writer(w io.Writer) (estargz.WriteFlushCloser, error) {
	zw, _ := c.pool.Get().(*kgzip.Writer)
	if zw == nil {
		var err error
		if zw, err = kgzip.NewWriterLevel(w, estargzLevel); err != nil {
			return nil, err
		}
	} else {
		zw.Reset(w)
	}
	return &pooledGzip{Writer: zw, c: c}, nil
}

func (c *estargzCompressor) WriteTOCAndFooter(w io.Writer, off int64, toc *estargz.JTOC, diffHash hash.Hash) (digest.Digest, error) {
	return c.GzipCompressor.WriteTOCAndFooter(w, off, toc, countingHash{Hash: diffHash, n: &c.n})
}

// pooledGzip is a gzip writer of an estargzCompressor: it counts what it
// is given and goes back to the pool once closed.
type pooledGzip struct {
	*kgzip.Writer
	c *estargzCompressor
}

func (w *pooledGzip) Write(p []byte) (int, error) {
	n, err := w.Writer.Write(p)
	w.c.n += int64(n)
	return n, err
}

func (w *pooledGzip) Close() error {
	err := w.Writer.Close()
	w.c.pool.Put(w.Writer)
	return err
}

// countingHash counts the bytes hashed.
type countingHash struct {
	hash.Hash
	n *int64
}

func (h countingHash) Write(p []byte) (int, error) {
	n, err := h.Hash.Write(p)
	*h.n += int64(n)
	return n, err
}
