package stream

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	cerrdefs "github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// memLimit is the largest blob pushStore keeps in memory: manifests,
// configs and small layers. Larger ones go to a file.
const memLimit = 1 << 20

// pushStore is the client-side content store of one push: blobs held until
// they are uploaded, then deleted, in a directory removed when the push
// ends. Nothing in it has to outlive the process, so unlike containerd's
// local store it syncs nothing to disk (that store syncs each blob, its
// directory and two timestamp files: milliseconds per blob, several blobs
// in a row at the end of every build), and blobs up to memLimit stay in
// memory.
//
// It follows containerd's local store where callers can tell: a writer
// needs a ref, one ref has one writer at a time (the second is refused as
// unavailable), a blob that exists is refused as already existing when a
// writer opens or commits, and writers truncate only to 0.
type pushStore struct {
	dir string

	mu      sync.Mutex
	blobs   map[digest.Digest]*storedBlob
	writers map[string]*storeWriter
}

type storedBlob struct {
	info content.Info
	data []byte // the bytes, or nil when they are in path
	path string
}

func newPushStore(dir string) (*pushStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return &pushStore{dir: dir, blobs: map[digest.Digest]*storedBlob{}, writers: map[string]*storeWriter{}}, nil
}

func (s *pushStore) blob(d digest.Digest) (*storedBlob, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.blobs[d]
	if !ok {
		return nil, fmt.Errorf("content %v: %w", d, cerrdefs.ErrNotFound)
	}
	return b, nil
}

func (s *pushStore) Info(_ context.Context, d digest.Digest) (content.Info, error) {
	b, err := s.blob(d)
	if err != nil {
		return content.Info{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	info := b.info
	info.Labels = maps.Clone(b.info.Labels)
	return info, nil
}

// Update sets the labels fieldpaths name ("labels" or "labels.KEY"), or
// all of info's labels when it names none.
func (s *pushStore) Update(_ context.Context, info content.Info, fieldpaths ...string) (content.Info, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.blobs[info.Digest]
	if !ok {
		return content.Info{}, fmt.Errorf("content %v: %w", info.Digest, cerrdefs.ErrNotFound)
	}
	if b.info.Labels == nil {
		b.info.Labels = map[string]string{}
	}
	if len(fieldpaths) == 0 {
		b.info.Labels = maps.Clone(info.Labels)
	}
	for _, f := range fieldpaths {
		switch {
		case f == "labels":
			b.info.Labels = maps.Clone(info.Labels)
		case len(f) > len("labels.") && f[:len("labels.")] == "labels.":
			k := f[len("labels."):]
			if v, ok := info.Labels[k]; ok {
				b.info.Labels[k] = v
			} else {
				delete(b.info.Labels, k)
			}
		default:
			return content.Info{}, fmt.Errorf("cannot update %q field on content info %q: %w", f, info.Digest, cerrdefs.ErrInvalidArgument)
		}
	}
	b.info.UpdatedAt = time.Now()
	out := b.info
	out.Labels = maps.Clone(b.info.Labels)
	return out, nil
}

// Walk calls fn for every blob; filters are not supported.
func (s *pushStore) Walk(ctx context.Context, fn content.WalkFunc, filters ...string) error {
	if len(filters) > 0 {
		return fmt.Errorf("walk with filters: %w", cerrdefs.ErrNotImplemented)
	}
	s.mu.Lock()
	infos := make([]content.Info, 0, len(s.blobs))
	for _, b := range s.blobs {
		infos = append(infos, b.info)
	}
	s.mu.Unlock()
	for _, info := range infos {
		if err := fn(info); err != nil {
			return err
		}
	}
	return nil
}

func (s *pushStore) Delete(_ context.Context, d digest.Digest) error {
	s.mu.Lock()
	b, ok := s.blobs[d]
	delete(s.blobs, d)
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("content %v: %w", d, cerrdefs.ErrNotFound)
	}
	if b.path != "" {
		// A reader that has the file open keeps reading it.
		return os.Remove(b.path)
	}
	return nil
}

func (s *pushStore) ReaderAt(_ context.Context, desc ocispecs.Descriptor) (content.ReaderAt, error) {
	b, err := s.blob(desc.Digest)
	if err != nil {
		return nil, err
	}
	if b.path == "" {
		return memReaderAt{bytes.NewReader(b.data)}, nil
	}
	f, err := os.Open(b.path)
	if err != nil {
		return nil, fmt.Errorf("content %v: %w", desc.Digest, cerrdefs.ErrNotFound)
	}
	return fileReaderAt{f, b.info.Size}, nil
}

type memReaderAt struct{ *bytes.Reader }

func (memReaderAt) Close() error { return nil }

type fileReaderAt struct {
	*os.File
	size int64
}

func (r fileReaderAt) Size() int64 { return r.size }

func (s *pushStore) Status(_ context.Context, ref string) (content.Status, error) {
	s.mu.Lock()
	w, ok := s.writers[ref]
	s.mu.Unlock()
	if !ok {
		return content.Status{}, fmt.Errorf("ingest ref %q: %w", ref, cerrdefs.ErrNotFound)
	}
	return w.Status()
}

func (s *pushStore) ListStatuses(context.Context, ...string) ([]content.Status, error) {
	s.mu.Lock()
	ws := make([]*storeWriter, 0, len(s.writers))
	for _, w := range s.writers {
		ws = append(ws, w)
	}
	s.mu.Unlock()
	var out []content.Status
	for _, w := range ws {
		if st, err := w.Status(); err == nil {
			out = append(out, st)
		}
	}
	return out, nil
}

// Abort ends the write of ref, if one is open: its bytes are dropped.
func (s *pushStore) Abort(_ context.Context, ref string) error {
	s.mu.Lock()
	w, ok := s.writers[ref]
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("ingest ref %q: %w", ref, cerrdefs.ErrNotFound)
	}
	return w.Close()
}

func (s *pushStore) Writer(_ context.Context, opts ...content.WriterOpt) (content.Writer, error) {
	var wo content.WriterOpts
	for _, o := range opts {
		if err := o(&wo); err != nil {
			return nil, err
		}
	}
	if wo.Ref == "" {
		return nil, fmt.Errorf("ref must not be empty: %w", cerrdefs.ErrInvalidArgument)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if wo.Desc.Digest != "" {
		if _, ok := s.blobs[wo.Desc.Digest]; ok {
			return nil, fmt.Errorf("content %v: %w", wo.Desc.Digest, cerrdefs.ErrAlreadyExists)
		}
	}
	if _, ok := s.writers[wo.Ref]; ok {
		return nil, fmt.Errorf("ref %s locked: %w", wo.Ref, cerrdefs.ErrUnavailable)
	}
	alg := digest.Canonical
	if wo.Desc.Digest != "" && wo.Desc.Digest.Algorithm().Available() {
		alg = wo.Desc.Digest.Algorithm()
	}
	now := time.Now()
	w := &storeWriter{s: s, ref: wo.Ref, total: wo.Desc.Size, expected: wo.Desc.Digest, digester: alg.Digester(), started: now, updated: now}
	s.writers[wo.Ref] = w
	return w, nil
}

// storeWriter writes one blob of a pushStore: in memory up to memLimit,
// then into a file of the store's directory.
type storeWriter struct {
	s        *pushStore
	ref      string
	total    int64
	expected digest.Digest
	digester digest.Digester
	started  time.Time

	mu      sync.Mutex
	buf     []byte
	f       *os.File // once the blob outgrew memLimit
	n       int64
	updated time.Time
	done    bool // committed or closed
}

func (w *storeWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return 0, fmt.Errorf("write to a closed writer: %w", cerrdefs.ErrFailedPrecondition)
	}
	if w.f == nil && int64(len(w.buf)+len(p)) > memLimit {
		f, err := os.CreateTemp(w.s.dir, "blob-")
		if err != nil {
			return 0, err
		}
		if _, err := f.Write(w.buf); err != nil {
			f.Close()
			os.Remove(f.Name())
			return 0, err
		}
		w.f, w.buf = f, nil
	}
	n := len(p)
	if w.f != nil {
		var err error
		if n, err = w.f.Write(p); err != nil {
			w.digester.Hash().Write(p[:n])
			w.n += int64(n)
			return n, err
		}
	} else {
		w.buf = append(w.buf, p...)
	}
	w.digester.Hash().Write(p)
	w.n += int64(n)
	w.updated = time.Now()
	return n, nil
}

func (w *storeWriter) Digest() digest.Digest {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.digester.Digest()
}

func (w *storeWriter) Status() (content.Status, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return content.Status{Ref: w.ref, Offset: w.n, Total: w.total, Expected: w.expected, StartedAt: w.started, UpdatedAt: w.updated}, nil
}

// Truncate supports size 0 only, as containerd's local store.
func (w *storeWriter) Truncate(size int64) error {
	if size != 0 {
		return fmt.Errorf("truncate to %d: %w", size, cerrdefs.ErrNotImplemented)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf, w.n = w.buf[:0], 0
	w.digester.Hash().Reset()
	if w.f != nil {
		if _, err := w.f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		return w.f.Truncate(0)
	}
	return nil
}

func (w *storeWriter) Commit(_ context.Context, size int64, expected digest.Digest, opts ...content.Opt) error {
	var base content.Info
	for _, o := range opts {
		if err := o(&base); err != nil {
			return err
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return fmt.Errorf("commit on a closed writer: %w", cerrdefs.ErrFailedPrecondition)
	}
	defer w.end()
	if size > 0 && size != w.n {
		return fmt.Errorf("unexpected commit size %d, expected %d: %w", w.n, size, cerrdefs.ErrFailedPrecondition)
	}
	d := w.digester.Digest()
	if expected != "" && expected != d {
		return fmt.Errorf("unexpected commit digest %s, expected %s: %w", d, expected, cerrdefs.ErrFailedPrecondition)
	}
	now := time.Now()
	b := &storedBlob{info: content.Info{Digest: d, Size: w.n, CreatedAt: now, UpdatedAt: now, Labels: maps.Clone(base.Labels)}, data: w.buf}
	if w.f != nil {
		b.path = w.f.Name()
		if err := w.f.Close(); err != nil {
			return err
		}
		w.f = nil
	}
	w.buf = nil
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	if _, ok := w.s.blobs[d]; ok {
		if b.path != "" {
			os.Remove(b.path)
		}
		return fmt.Errorf("content %v: %w", d, cerrdefs.ErrAlreadyExists)
	}
	w.s.blobs[d] = b
	return nil
}

// Close ends the writer; what it wrote and did not commit is dropped.
func (w *storeWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.end()
	}
	return nil
}

// end releases the writer's ref and drops what it did not commit; w.mu is
// held.
func (w *storeWriter) end() {
	w.done = true
	if w.f != nil {
		w.f.Close()
		os.Remove(w.f.Name())
		w.f = nil
	}
	w.buf = nil
	w.s.mu.Lock()
	if w.s.writers[w.ref] == w {
		delete(w.s.writers, w.ref)
	}
	w.s.mu.Unlock()
}
