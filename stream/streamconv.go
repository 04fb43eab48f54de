package stream

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// errStreamBroken ends a conversion fed by a layer's transfer when the
// transfer stops being a plain sequential write (a truncate, a write the
// conversion could not take); the layer is then converted from the store
// once it is committed.
var errStreamBroken = errors.New("the layer's transfer was restarted")

// layerStream feeds the bytes of one layer, as BuildKit sends them into the
// store, to its conversion, so that the layer is converted while it
// arrives rather than after.
type layerStream struct {
	r *io.PipeReader
	w *io.PipeWriter

	once      sync.Once
	committed chan error // the write's outcome: nil once committed
	at        time.Time  // when it was committed
}

func newLayerStream() *layerStream {
	r, w := io.Pipe()
	return &layerStream{r: r, w: w, committed: make(chan error, 1)}
}

// end closes the feed with the write's outcome; the first call counts.
func (s *layerStream) end(err error) {
	s.once.Do(func() {
		if err == nil {
			s.at = time.Now()
			s.w.Close()
		} else {
			s.w.CloseWithError(err)
		}
		s.committed <- err
	})
}

// transferSource reads a layer as the export writes it into the store,
// through the session: by the time BuildKit has sent it, it is converted
// too. The transfer paces the conversion. When the transfer breaks but
// the layer is committed, the layer is converted from the store instead;
// when the write fails, the source has lost the layer.
type transferSource struct{ stream *layerStream }

func (transferSource) paced() bool { return true }

func (s transferSource) read(ctx context.Context, c *converter, desc ocispecs.Descriptor, cv *conversion, tee io.Writer) (time.Time, error) {
	cv.started = time.Now()
	cv.desc, cv.diff, cv.size, cv.err = c.convertFrom(ctx, desc, s.stream.r, tee)
	cv.finished = time.Now()
	// Whatever happened, the writer must not block on a feed nobody
	// reads any more.
	s.stream.r.CloseWithError(errStreamBroken)
	select {
	case err := <-s.stream.committed:
		return s.stream.at, err
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	}
}

func (s transferSource) again(ctx context.Context, c *converter, desc ocispecs.Descriptor, cv *conversion) (time.Time, error) {
	c.convertInTurn(ctx, desc, cv)
	return s.stream.at, nil
}

// streamingWriter writes a blob into the store and, once its first bytes
// show an uncompressed tar, feeds it to the layer's conversion as well.
type streamingWriter struct {
	content.Writer
	desc ocispecs.Descriptor
	ks   *knownStore // offered the layer's stream, and told of its commit

	head    []byte       // the first bytes, until the tar header is complete
	decided bool         // whether the blob was looked at
	started *layerStream // the conversion's feed, once started
	stream  *layerStream // started, until the feed breaks
	off     int64
}

func (w *streamingWriter) Write(p []byte) (int, error) {
	n, err := w.Writer.Write(p)
	w.feed(p[:n])
	w.off += int64(n)
	return n, err
}

func (w *streamingWriter) feed(p []byte) {
	if !w.decided {
		w.head = append(w.head, p...)
		if len(w.head) < 512 {
			return
		}
		w.decided = true
		if !isTarHeader(w.head) {
			w.head = nil
			return
		}
		s := newLayerStream()
		if !w.ks.stream(w.desc, s) {
			w.head = nil
			return
		}
		w.started, w.stream = s, s
		p, w.head = w.head, nil
	}
	if w.stream == nil || len(p) == 0 {
		return
	}
	if _, err := w.stream.w.Write(p); err != nil {
		w.stream = nil // the conversion ended early; it converts from the store
	}
}

func (w *streamingWriter) Truncate(size int64) error {
	if size != w.off {
		w.broken()
	}
	w.off = size
	return w.Writer.Truncate(size)
}

// broken stops feeding the conversion; it converts from the store once the
// blob is committed.
func (w *streamingWriter) broken() {
	if w.stream != nil {
		w.stream.w.CloseWithError(errStreamBroken)
		w.stream = nil
	}
	if !w.decided {
		w.decided, w.head = true, nil
	}
}

func (w *streamingWriter) Commit(ctx context.Context, size int64, expected digest.Digest, opts ...content.Opt) error {
	err := w.Writer.Commit(ctx, size, expected, opts...)
	w.endStream(err)
	if err != nil {
		return err
	}
	w.ks.committed(ctx, w.Writer.Digest())
	return nil
}

func (w *streamingWriter) Close() error {
	w.endStream(errors.New("the layer's write was abandoned"))
	return w.Writer.Close()
}

func (w *streamingWriter) endStream(err error) {
	if w.started != nil {
		w.started.end(err)
	}
}
