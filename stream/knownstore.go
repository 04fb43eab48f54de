package stream

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	cerrdefs "github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// minSkipSize is the smallest blob the store checks the registry for:
// manifests and configs are smaller and always written, so strata can read
// them back.
const minSkipSize = 64 << 10

// knownStore is the client-side store exports write into. A layer every
// target repository already holds is answered "already exists", so BuildKit
// does not send it over the session (base image layers, layers of a cache
// hit): only what the registry lacks reaches the client.
//
// A layer a cache source's repository holds (see importedRecords) is
// mounted into the target repositories, and answered the same way.
//
// An uncompressed layer strata converted in an earlier build (see
// converter) is skipped the same way when every repository holds the layer
// it became, and one converted in this build is skipped always.
type knownStore struct {
	content.Store
	pushers []*pusher
	conv    *converter
	// layers, when not nil, converts and uploads the layers exports
	// offer: each layer not answered otherwise, read from the builder;
	// each layer as it is written (see streamingWriter); each blob
	// written whole, once it is committed.
	layers layerTaker
	// arrivals, when not nil, is told of each blob written whole.
	arrivals *arrivals

	mu      sync.Mutex
	writing map[digest.Digest]chan struct{} // closed when the blob's write ends
}

func (s *knownStore) Writer(ctx context.Context, opts ...content.WriterOpt) (content.Writer, error) {
	var wo content.WriterOpts
	for _, o := range opts {
		if err := o(&wo); err != nil {
			return nil, err
		}
	}
	for {
		w, err := s.writer(ctx, wo, opts)
		if err != errWaited {
			return w, err
		}
		// The other write was most likely converted as it arrived:
		// its outcome says whether this one is needed.
		if s.conv != nil {
			s.conv.awaitStreamed(ctx, wo.Desc.Digest)
		}
	}
}

// errWaited says open waited for another write of the blob to end: what
// that write did (a conversion, most often) decides what to answer now.
var errWaited = errors.New("waited for the blob's other write")

func (s *knownStore) writer(ctx context.Context, wo content.WriterOpts, opts []content.WriterOpt) (content.Writer, error) {
	if wo.Desc.Digest != "" && wo.Desc.Size >= minSkipSize {
		// A layer being read from the builder is answered by that
		// read's outcome.
		if s.conv != nil {
			s.conv.awaitFromBuilder(ctx, wo.Desc.Digest)
		}
		// A layer converted in this build is not kept (see
		// streamedPush.pushConverted); what it became is all the push
		// needs.
		if s.conv != nil && s.conv.converted(wo.Desc.Digest) {
			return nil, cerrdefs.ErrAlreadyExists
		}
		if s.conv != nil {
			if e, ok := s.conv.remembered(wo.Desc.Digest); ok {
				if s.allHave(ctx, e.descriptor()) {
					s.conv.known(wo.Desc.Digest, e)
					return nil, cerrdefs.ErrAlreadyExists
				}
			}
		}
		if s.allHave(ctx, wo.Desc) {
			return nil, cerrdefs.ErrAlreadyExists
		}
		if s.fromBuilder(ctx, layerDescriptor(wo.Desc)) {
			return nil, cerrdefs.ErrAlreadyExists
		}
	}
	w, err := s.open(ctx, wo.Desc.Digest, opts)
	if err != nil || s.layers == nil {
		return w, err
	}
	if wo.Desc.Digest != "" && wo.Desc.Size >= minSkipSize {
		return &streamingWriter{Writer: w, desc: layerDescriptor(wo.Desc), ks: s}, nil
	}
	return &hookedWriter{Writer: w, s: s}, nil
}

// layerDescriptor is d as an uncompressed layer: blobs come through the
// session with no media type.
func layerDescriptor(d ocispecs.Descriptor) ocispecs.Descriptor {
	return ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageLayer, Digest: d.Digest, Size: d.Size}
}

// fromBuilder reports whether desc is converted reading it from the
// builder, so the export need not send it.
func (s *knownStore) fromBuilder(ctx context.Context, desc ocispecs.Descriptor) bool {
	if s.layers == nil || s.conv == nil || !s.conv.converts(desc) {
		return false
	}
	src, ok := s.conv.fromBuilder(ctx, desc)
	return ok && s.layers.take(desc, src)
}

// stream reports whether desc is converted as it is written, from ls.
func (s *knownStore) stream(desc ocispecs.Descriptor, ls *layerStream) bool {
	return s.conv != nil && s.conv.converts(desc) && s.layers.take(desc, transferSource{ls})
}

// committed converts d, a blob just written whole into the store, when it
// is an uncompressed layer not converted otherwise.
func (s *knownStore) committed(ctx context.Context, d digest.Digest) {
	if !isTar(ctx, s.Store, d) {
		return
	}
	if info, err := s.Store.Info(ctx, d); err == nil {
		s.layers.take(ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageLayer, Digest: d, Size: info.Size}, storeSource{at: time.Now()})
	}
}

// A layerTaker converts and uploads layers.
type layerTaker interface {
	// take starts the conversion of desc from src, then its upload; it
	// reports whether it started one (not when desc's conversion was
	// started before).
	take(desc ocispecs.Descriptor, src layerSource) bool
}

// open opens a writer in the store. Two exports write the same layer at
// once when a prefix and the main solve end together: the store refuses the
// second while the first writes, and BuildKit would try again after a random
// wait of up to two seconds. open waits for the first write to end instead
// and returns errWaited: Writer then decides again, and most often answers
// that the blob exists.
func (s *knownStore) open(ctx context.Context, d digest.Digest, opts []content.WriterOpt) (content.Writer, error) {
	w, err := s.Store.Writer(ctx, opts...)
	if d == "" {
		return w, err
	}
	s.mu.Lock()
	if err == nil {
		if s.writing == nil {
			s.writing = map[digest.Digest]chan struct{}{}
		}
		ch, mine := s.writing[d], false
		if ch == nil {
			ch, mine = make(chan struct{}), true
			s.writing[d] = ch
		}
		s.mu.Unlock()
		if !mine {
			return w, nil
		}
		return &releasingWriter{Writer: w, release: func() {
			s.mu.Lock()
			delete(s.writing, d)
			s.mu.Unlock()
			close(ch)
		}}, nil
	}
	ch := s.writing[d]
	s.mu.Unlock()
	if ch == nil || !cerrdefs.IsUnavailable(err) {
		return nil, err
	}
	select {
	case <-ch:
		return nil, errWaited
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// releasingWriter calls release once, when its write ends: committed or not.
type releasingWriter struct {
	content.Writer
	once    sync.Once
	release func()
}

func (w *releasingWriter) Commit(ctx context.Context, size int64, expected digest.Digest, opts ...content.Opt) error {
	err := w.Writer.Commit(ctx, size, expected, opts...)
	w.once.Do(w.release)
	return err
}

func (w *releasingWriter) Close() error {
	err := w.Writer.Close()
	w.once.Do(w.release)
	return err
}

// hookedWriter tells its store of each blob it commits.
type hookedWriter struct {
	content.Writer
	s *knownStore
}

func (w *hookedWriter) Commit(ctx context.Context, size int64, expected digest.Digest, opts ...content.Opt) error {
	if err := w.Writer.Commit(ctx, size, expected, opts...); err != nil {
		return err
	}
	w.s.committed(ctx, w.Writer.Digest())
	if w.s.arrivals != nil {
		w.s.arrivals.committed(w.Writer.Digest())
	}
	return nil
}

func (s *knownStore) allHave(ctx context.Context, desc ocispecs.Descriptor) bool {
	if len(s.pushers) == 0 {
		return false
	}
	for _, p := range s.pushers {
		ok, err := p.Has(ctx, desc)
		if err == nil && !ok {
			// A layer of a cache source: mounted now, it need not be sent.
			ok, err = p.Mount(ctx, desc)
		}
		if err != nil || !ok {
			return false
		}
	}
	return true
}
