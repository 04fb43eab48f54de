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

// startStream converts desc from stream, as it is written into the store,
// unless there is nothing to convert or a conversion of desc was started
// before; it reports whether it took the stream. done, when not nil, is
// called with the outcome and the time the layer was committed. early, when
// not nil, may give an upload to send the converted bytes to as they are
// made; it is ended before done is called.
//
// A streamed conversion does not wait for a turn: the transfer paces it.
// When the stream breaks but the layer is committed, the layer is
// converted from the store instead; when the write fails, the conversion
// is forgotten, so that a new write of the layer starts another.
func (c *converter) startStream(ctx context.Context, desc ocispecs.Descriptor, stream *layerStream, early func() *earlyUpload, done func(*conversion, time.Time)) bool {
	if !c.converts(desc) {
		return false
	}
	cv, up, tee, ok := c.claimStreamed(desc.Digest, false, early)
	if !ok {
		return false
	}
	go func() {
		defer close(cv.done)
		cv.started = time.Now()
		cv.desc, cv.diff, cv.size, cv.err = c.convertFrom(ctx, desc, stream.r, tee)
		cv.finished = time.Now()
		// Whatever happened, the writer must not block on a feed nobody
		// reads any more.
		stream.r.CloseWithError(errStreamBroken)
		var werr error
		select {
		case werr = <-stream.committed:
		case <-ctx.Done():
			werr = ctx.Err()
		}
		// The early upload has the converted bytes only when the
		// conversion from the stream stands.
		if up != nil {
			if werr == nil && cv.err == nil {
				up.end(&cv.desc)
			} else {
				up.end(nil)
			}
		}
		switch {
		case werr != nil:
			cv.err = werr
			c.mu.Lock()
			delete(c.jobs, desc.Digest)
			c.mu.Unlock()
			return
		case cv.err != nil:
			c.convertInTurn(ctx, desc, cv)
		}
		c.remember(desc, cv)
		c.settle(cv)
		if done != nil {
			done(cv, stream.at)
		}
	}()
	return true
}

// claimStreamed claims the conversion of d from a stream (one from the
// builder when fromBuilder), with an early
// upload from early when it gives one; tee is where the converted bytes
// go besides the store (the upload, or nil).
func (c *converter) claimStreamed(d digest.Digest, fromBuilder bool, early func() *earlyUpload) (cv *conversion, up *earlyUpload, tee io.Writer, ok bool) {
	if cv, ok = c.claim(d, true, fromBuilder); !ok {
		return nil, nil, nil, false
	}
	if early != nil {
		up = early()
	}
	if up != nil {
		tee = up
	}
	return cv, up, tee, true
}

// streamingWriter writes a blob into the store and, once its first bytes
// show an uncompressed tar, feeds it to the layer's conversion as well.
type streamingWriter struct {
	content.Writer
	desc  ocispecs.Descriptor
	start func(ocispecs.Descriptor, *layerStream) bool
	done  func(digest.Digest) // called with every blob committed

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
		if !w.start(w.desc, s) {
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
	if w.done != nil {
		w.done(w.Writer.Digest())
	}
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
