package stream

import (
	"bytes"
	"errors"
	"fmt"
	"hash"
	"io"
	"runtime"
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
// The same tar gives the same bytes, on any number of cores.
//
// estargz.Writer lays the layer out (which bytes go in which gzip member,
// the table of contents); the members are compressed on every core (see
// estargzCompressor), and the table of contents gets their offsets once
// all are written.
func newEstargzLayer(dst io.Writer) *estargzLayer {
	comp := newEstargzCompressor(dst)
	// What estargz.Writer writes itself is one byte per member (see
	// memberWriter.Close), counted and dropped: its offsets are then the
	// members' indexes.
	return &estargzLayer{w: estargz.NewWriterWithCompressor(io.Discard, comp), comp: comp}
}

// append writes the tar archive read from src into the layer. As BuildKit
// does, it keeps the archive's bytes as they are, end-of-archive marker
// included, so the table of contents follows the archive: a puller that
// unpacks the layer as gzip gets the same files as from the tar, without
// the table of contents.
func (l *estargzLayer) append(src io.Reader) error {
	if err := l.w.AppendTarLossLess(src); err != nil {
		l.comp.finish()
		return err
	}
	return nil
}

// close writes the table of contents and returns the layer's uncompressed
// digest (its diff_id), its uncompressed size and its annotations.
func (l *estargzLayer) close() (digest.Digest, int64, map[string]string, error) {
	toc, err := l.w.Close()
	l.comp.finish()
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

// estargzWorkers bounds the gzip members being compressed at once, over
// every layer: one per core.
var estargzWorkers = make(chan struct{}, runtime.GOMAXPROCS(0))

// estargzCompressor is the estargz.Compressor of one layer. Each gzip
// member estargz.Writer opens is collected whole (a file's chunk of at
// most 4 MiB, with the tar headers around it), compressed with
// klauspost/compress's gzip (the standard library's format, at about
// twice its speed) beside the others, and written to dst in order. A
// member's bytes depend only on its own content, so the layer's bytes do
// not depend on how many are compressed at once. The table of contents is
// written as estargz writes it, with each entry's offset set from its
// member's index to where that member starts in dst.
type estargzCompressor struct {
	toc *estargz.GzipCompressor
	dst *countingWriter
	n   int64 // uncompressed bytes written

	order    chan *gzipMember // members in layer order, to write
	inflight chan struct{}    // bounds the members held in memory
	written  chan struct{}    // closed when the writer is done
	stopped  bool

	// Set by the writer; read once written is closed, or err under mu.
	mu      sync.Mutex
	err     error
	offsets []int64 // where each member starts in dst
}

// maxMembersHeld bounds the members of one layer held in memory at once
// (each up to a 4 MiB chunk, compressed and not), whatever the cores.
const maxMembersHeld = 9

func newEstargzCompressor(dst io.Writer) *estargzCompressor {
	held := min(cap(estargzWorkers)+1, maxMembersHeld)
	c := &estargzCompressor{
		toc:      estargz.NewGzipCompressorWithLevel(estargzLevel),
		dst:      &countingWriter{w: dst},
		order:    make(chan *gzipMember, held),
		inflight: make(chan struct{}, held),
		written:  make(chan struct{}),
	}
	go c.write()
	return c
}

// gzipMember is one gzip member of a layer: its uncompressed bytes, where
// estargz.Writer flushed it, and, once done is closed, its compressed
// bytes.
type gzipMember struct {
	in      []byte
	flushes []int // lengths of in at which the member was flushed
	out     *bytes.Buffer
	done    chan struct{}
}

var (
	memberBuffers sync.Pool // *[]byte, uncompressed
	outBuffers    sync.Pool // *bytes.Buffer, compressed
	gzipWriters   sync.Pool // *kgzip.Writer
)

// compress compresses m as estargz.Writer would have with its own gzip
// writer: the same bytes, flushed at the same places. How the bytes were
// split into writes does not change the output.
func (m *gzipMember) compress() error {
	m.out, _ = outBuffers.Get().(*bytes.Buffer)
	if m.out == nil {
		m.out = new(bytes.Buffer)
	}
	zw, _ := gzipWriters.Get().(*kgzip.Writer)
	if zw == nil {
		var err error
		if zw, err = kgzip.NewWriterLevel(m.out, estargzLevel); err != nil {
			return err
		}
	} else {
		zw.Reset(m.out)
	}
	defer gzipWriters.Put(zw)
	at := 0
	for _, f := range m.flushes {
		if _, err := zw.Write(m.in[at:f]); err != nil {
			return err
		}
		if err := zw.Flush(); err != nil {
			return err
		}
		at = f
	}
	if _, err := zw.Write(m.in[at:]); err != nil {
		return err
	}
	return zw.Close()
}

// write writes the members to dst in order, each once compressed, and
// records where each starts. After an error it only drains them.
func (c *estargzCompressor) write() {
	defer close(c.written)
	for m := range c.order {
		<-m.done
		c.mu.Lock()
		failed := c.err != nil
		c.mu.Unlock()
		if !failed {
			c.offsets = append(c.offsets, c.dst.n)
			if _, err := c.dst.Write(m.out.Bytes()); err != nil {
				c.fail(err)
			}
		}
		in := m.in[:0]
		memberBuffers.Put(&in)
		if m.out != nil {
			m.out.Reset()
			outBuffers.Put(m.out)
		}
		<-c.inflight
	}
}

func (c *estargzCompressor) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
}

func (c *estargzCompressor) failed() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// submit hands a finished member to the workers and the writer.
func (c *estargzCompressor) submit(m *gzipMember) error {
	if c.stopped {
		return errors.New("eStargz layer written after it ended")
	}
	if err := c.failed(); err != nil {
		return err
	}
	c.inflight <- struct{}{}
	m.done = make(chan struct{})
	c.order <- m
	go func() {
		estargzWorkers <- struct{}{}
		if err := m.compress(); err != nil {
			c.fail(err)
		}
		<-estargzWorkers
		close(m.done)
	}()
	return nil
}

// finish waits until every member submitted is written (or dropped after
// an error). It may be called more than once.
func (c *estargzCompressor) finish() {
	if !c.stopped {
		c.stopped = true
		close(c.order)
	}
	<-c.written
}

// Writer opens a member; see estargz.Compressor.
func (c *estargzCompressor) Writer(w io.Writer) (estargz.WriteFlushCloser, error) {
	if err := c.failed(); err != nil {
		return nil, err
	}
	in, _ := memberBuffers.Get().(*[]byte)
	if in == nil {
		in = new([]byte)
	}
	return &memberWriter{c: c, m: &gzipMember{in: *in}, index: w}, nil
}

// WriteTOCAndFooter writes the table of contents and footer once every
// member is in dst; see estargz.Compressor. off is the number of members
// (estargz.Writer's own output being one byte per member).
func (c *estargzCompressor) WriteTOCAndFooter(_ io.Writer, _ int64, toc *estargz.JTOC, diffHash hash.Hash) (digest.Digest, error) {
	c.finish()
	if c.err != nil {
		return "", c.err
	}
	for _, e := range toc.Entries {
		if e.Type != "chunk" && (e.Type != "reg" || e.Size == 0) {
			continue // no data, no offset
		}
		if e.Offset < 0 || e.Offset >= int64(len(c.offsets)) {
			return "", fmt.Errorf("eStargz entry %q is in member %d of %d", e.Name, e.Offset, len(c.offsets))
		}
		e.Offset = c.offsets[e.Offset]
	}
	return c.toc.WriteTOCAndFooter(c.dst, c.dst.n, toc, countingHash{Hash: diffHash, n: &c.n})
}

// memberWriter collects one member for estargz.Writer.
type memberWriter struct {
	c      *estargzCompressor
	m      *gzipMember
	index  io.Writer // estargz.Writer's count of members
	closed bool
}

func (w *memberWriter) Write(p []byte) (int, error) {
	w.m.in = append(w.m.in, p...)
	w.c.n += int64(len(p))
	return len(p), nil
}

func (w *memberWriter) Flush() error {
	w.m.flushes = append(w.m.flushes, len(w.m.in))
	return nil
}

func (w *memberWriter) Close() error {
	if w.closed {
		return errors.New("eStargz member closed twice")
	}
	w.closed = true
	if err := w.c.submit(w.m); err != nil {
		return err
	}
	_, err := w.index.Write([]byte{0})
	return err
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (w *countingWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	w.n += int64(n)
	return n, err
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
