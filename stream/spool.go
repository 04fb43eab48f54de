package stream

import (
	"errors"
	"io"
	"os"
	"sync"
)

// spool holds a blob's bytes while they are written, for readers that
// follow the writer: each reads at its own pace from a file, so a slow
// reader (an upload over a slow link) never holds the writer up, and the
// bytes are not kept in memory.
//
// One goroutine writes; any number read. The file is removed at once and
// closed when the writer and every reader are done.
type spool struct {
	f *os.File

	mu     sync.Mutex
	cond   *sync.Cond
	n      int64 // bytes written
	closed bool  // no more bytes will come
	err    error // why the writing ended early; nil: complete
	refs   int   // the writer and the open readers
	wdone  bool  // the writer called close
}

var errReaderClosed = errors.New("spool reader closed")

func newSpool(dir string) (*spool, error) {
	f, err := os.CreateTemp(dir, "spool-")
	if err != nil {
		return nil, err
	}
	// Readers and the writer keep the open file; nothing else needs the name.
	_ = os.Remove(f.Name())
	s := &spool{f: f, refs: 1}
	s.cond = sync.NewCond(&s.mu)
	return s, nil
}

// Write appends p. A failed write ends the spool with the error.
func (s *spool) Write(p []byte) (int, error) {
	n, err := s.f.Write(p)
	s.mu.Lock()
	s.n += int64(n)
	if err != nil && !s.closed {
		s.closed, s.err = true, err
	}
	s.cond.Broadcast()
	s.mu.Unlock()
	return n, err
}

// close ends the writing. With err nil, readers read to the end, then get
// io.EOF; otherwise their next read returns err. Only the first call
// counts.
func (s *spool) close(err error) {
	s.mu.Lock()
	if !s.closed {
		s.closed, s.err = true, err
	}
	if !s.wdone {
		s.wdone = true
		s.release()
		return
	}
	s.mu.Unlock()
}

// release drops one reference, with s.mu held, and unlocks it; the last
// one closes the file.
func (s *spool) release() {
	s.refs--
	s.cond.Broadcast()
	last := s.refs == 0
	s.mu.Unlock()
	if last {
		s.f.Close()
	}
}

// reader returns a reader of the spool from its first byte. It must be
// closed.
func (s *spool) reader() io.ReadCloser {
	s.mu.Lock()
	s.refs++
	s.mu.Unlock()
	return &spoolReader{s: s}
}

type spoolReader struct {
	s    *spool
	off  int64
	done bool // closed
}

func (r *spoolReader) Read(p []byte) (int, error) {
	s := r.s
	s.mu.Lock()
	for !r.done && r.off == s.n && !s.closed {
		s.cond.Wait()
	}
	n, closed, err, done := s.n, s.closed, s.err, r.done
	s.mu.Unlock()
	switch {
	case done:
		return 0, errReaderClosed
	case closed && err != nil:
		return 0, err // what is left would only be thrown away
	case r.off == n && closed:
		return 0, io.EOF
	}
	if avail := n - r.off; int64(len(p)) > avail {
		p = p[:avail]
	}
	m, err := s.f.ReadAt(p, r.off)
	r.off += int64(m)
	if err == io.EOF && m > 0 {
		err = nil
	}
	return m, err
}

// Close releases the reader; a Read waiting for bytes returns.
func (r *spoolReader) Close() error {
	s := r.s
	s.mu.Lock()
	if r.done {
		s.mu.Unlock()
		return nil
	}
	r.done = true
	s.release()
	return nil
}
