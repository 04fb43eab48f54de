package stream

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"runtime"
	"strconv"
	"sync"
	"time"

	kgzip "github.com/klauspost/compress/gzip"

	"github.com/strata-build/strata/cache"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/pkg/labels"
	cerrdefs "github.com/containerd/errdefs"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"github.com/moby/buildkit/util/converter/tarconverter"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// converterVersion names the bytes a conversion produces: it changes when
// the compressors or their settings do, so remembered conversions of an
// older strata are not trusted.
const converterVersion = "2/pgzip-1m-6/zstd-default/estargz-kgzip-6"

// gzipBlock is pgzip's block size. The compressed bytes depend on it (and
// on the level), not on how many blocks are compressed at once, so every
// builder gives the same digest.
const gzipBlock = 1 << 20

// converter turns the uncompressed layers BuildKit exports into the layers
// strata pushes: file timestamps later than SOURCE_DATE_EPOCH rewritten to
// it (as BuildKit's rewrite-timestamp does), then compressed in parallel
// with github.com/klauspost/compress. Each layer is converted once per
// process, and the outcome is remembered across builds in a memo so that a
// layer the registry already holds need not be sent by BuildKit again.
type converter struct {
	store       content.Store
	compression string     // estargz, gzip, zstd or uncompressed
	epoch       *time.Time // nil: timestamps are kept
	memo        *layerMemo // may be nil
	// builder, when not nil, reads layers from buildkitd's content
	// store (see builderSource).
	builder *builderBlobs
	// lazy: the builder mounts eStargz layers lazily (the stargz
	// snapshotter), so gzip base layers are rewritten (see recompresses).
	lazy bool

	rewriteMu sync.Mutex
	// rewriteLeft is how many compressed bytes of gzip layers may still
	// be rewritten as eStargz; negative: no limit.
	rewriteLeft int64
	rewrites    map[digest.Digest]bool // each layer's answer, the same to every caller
	keptGzip    []ocispecs.Descriptor  // gzip layers left as they are for the limit

	sem  chan struct{}
	mu   sync.Mutex
	jobs map[digest.Digest]*conversion
	// unread holds the layers the builder could not give, with why: an
	// export was told the store had them.
	unread map[digest.Digest]error
}

// conversion is one layer's conversion, running or done.
type conversion struct {
	done chan struct{}
	desc ocispecs.Descriptor // the layer strata pushes
	diff digest.Digest       // its uncompressed digest, the config's diff_id
	size int64               // its uncompressed size; 0 when not converted here
	err  error

	started, finished time.Time // of the conversion itself

	settled bool        // the outcome is final (under converter.mu); done may not be closed yet
	src     layerSource // where the bytes are read; nil when remembered
}

func newConverter(store content.Store, compression string, epoch *time.Time, memo *layerMemo) *converter {
	if compression == "" {
		compression = "estargz"
	}
	return &converter{
		store: store, compression: compression, epoch: epoch, memo: memo,
		// Each conversion compresses on every core; two at once keep
		// the cores busy while one of them reads or writes.
		sem:         make(chan struct{}, 2),
		jobs:        map[digest.Digest]*conversion{},
		rewriteLeft: rewriteLimit,
		rewrites:    map[digest.Digest]bool{},
	}
}

// converts reports whether desc is a layer strata converts: an
// uncompressed one, when there is something to do to it. Layers BuildKit
// took from a base image or a cache source keep the bytes they have in
// the registry.
func (c *converter) converts(desc ocispecs.Descriptor) bool {
	switch desc.MediaType {
	case ocispecs.MediaTypeImageLayer, "application/vnd.docker.image.rootfs.diff.tar":
		return c.compression != "uncompressed" || c.epoch != nil
	}
	return c.recompresses(desc)
}

// key names desc's conversion in the memo.
func (c *converter) key(d digest.Digest) string {
	epoch := "keep"
	if c.epoch != nil {
		epoch = strconv.FormatInt(c.epoch.Unix(), 10)
	}
	return fmt.Sprintf("%s %s %s %s", converterVersion, c.compression, epoch, d)
}

// remembered is the conversion of the uncompressed layer d done by an
// earlier build, if the memo has it.
func (c *converter) remembered(d digest.Digest) (memoEntry, bool) {
	if c.memo == nil {
		return memoEntry{}, false
	}
	return c.memo.get(c.key(d))
}

// isTar reports whether the blob d in the store is an uncompressed tar
// archive: its first header carries the ustar magic. Blobs come through
// the session with no media type, so this tells a layer from a config or
// a compressed layer as soon as it arrives.
func isTar(ctx context.Context, store content.Provider, d digest.Digest) bool {
	ra, err := store.ReaderAt(ctx, ocispecs.Descriptor{Digest: d})
	if err != nil {
		return false
	}
	defer ra.Close()
	var hdr [512]byte
	if _, err := ra.ReadAt(hdr[:], 0); err != nil {
		return false
	}
	return isTarHeader(hdr[:])
}

// isTarHeader reports whether hdr, the first 512 bytes of a blob, is a tar
// header: it carries the ustar magic.
func isTarHeader(hdr []byte) bool {
	return len(hdr) >= 512 && bytes.Equal(hdr[257:262], []byte("ustar"))
}

// converted reports whether the uncompressed layer d was converted into
// another layer in this build.
func (c *converter) converted(d digest.Digest) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	cv, ok := c.jobs[d]
	return ok && cv.settled && cv.err == nil && cv.desc.Digest != d
}

// awaitStreamed waits for the conversion of d from a transfer (the
// session's or the builder's), if one is running: once its transfer has
// ended, it ends at once.
func (c *converter) awaitStreamed(ctx context.Context, d digest.Digest) {
	c.await(ctx, d, func(src layerSource) bool { return src.paced() })
}

// awaitFromBuilder waits for the conversion of d reading it from the
// builder, if one is running.
func (c *converter) awaitFromBuilder(ctx context.Context, d digest.Digest) {
	c.await(ctx, d, func(src layerSource) bool {
		_, ok := src.(builderSource)
		return ok
	})
}

// await waits for the conversion of d, if one from a source of the kind is
// recorded.
func (c *converter) await(ctx context.Context, d digest.Digest, kind func(layerSource) bool) {
	c.mu.Lock()
	cv, ok := c.jobs[d]
	ok = ok && cv.src != nil && kind(cv.src)
	c.mu.Unlock()
	if !ok {
		return
	}
	select {
	case <-cv.done:
	case <-ctx.Done():
	}
}

// settle marks cv's outcome final, before done callbacks run: from then on
// the uncompressed layer may be dropped (see converted).
func (c *converter) settle(cv *conversion) {
	c.mu.Lock()
	cv.settled = true
	c.mu.Unlock()
}

// known records that the uncompressed layer d became desc, as an earlier
// build found, so strata need not convert it again.
func (c *converter) known(d digest.Digest, e memoEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.jobs[d]; ok {
		return
	}
	cv := &conversion{done: make(chan struct{}), desc: e.descriptor(), diff: e.DiffID, size: e.Bytes, settled: true}
	close(cv.done)
	c.jobs[d] = cv
}

// sizeOf is the uncompressed size of d, a layer the converter made (or
// found it had made before), or 0.
func (c *converter) sizeOf(d digest.Digest) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cv := range c.jobs {
		select {
		case <-cv.done:
			if cv.err == nil && cv.desc.Digest == d {
				return cv.size
			}
		default:
		}
	}
	return 0
}

// convertInTurn converts desc from the store into cv once one of the
// converter's turns is free.
func (c *converter) convertInTurn(ctx context.Context, desc ocispecs.Descriptor, cv *conversion) {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		cv.err = ctx.Err()
		return
	}
	defer func() { <-c.sem }()
	cv.started = time.Now()
	cv.desc, cv.diff, cv.size, cv.err = c.convert(ctx, desc)
	cv.finished = time.Now()
}

// remember puts a conversion that made a new layer into the memo.
func (c *converter) remember(desc ocispecs.Descriptor, cv *conversion) {
	if cv.err == nil && c.memo != nil && cv.desc.Digest != desc.Digest {
		c.memo.put(c.key(desc.Digest), memoEntry{Digest: cv.desc.Digest, Size: cv.desc.Size, MediaType: cv.desc.MediaType, Annotations: cv.desc.Annotations, DiffID: cv.diff, Bytes: cv.size})
	}
}

// wait returns the outcome of a conversion.
func (cv *conversion) wait(ctx context.Context) error {
	select {
	case <-cv.done:
		return cv.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// convert writes desc's converted layer into the store and returns its
// descriptor, uncompressed digest and size.
func (c *converter) convert(ctx context.Context, desc ocispecs.Descriptor) (ocispecs.Descriptor, digest.Digest, int64, error) {
	ra, err := c.store.ReaderAt(ctx, desc)
	if cerrdefs.IsNotFound(err) {
		c.mu.Lock()
		lost := c.unread[desc.Digest]
		c.mu.Unlock()
		if lost != nil {
			return ocispecs.Descriptor{}, "", 0, lost
		}
		// BuildKit did not send it: every repository holds it as it is
		// (see knownStore), so it stays.
		return desc, desc.Digest, 0, nil
	}
	if err != nil {
		return ocispecs.Descriptor{}, "", 0, fmt.Errorf("layer %s is not in the local store: %w", desc.Digest, err)
	}
	defer ra.Close()
	return c.convertFrom(ctx, desc, io.NewSectionReader(ra, 0, ra.Size()), nil)
}

// convertFrom is convert reading the uncompressed layer desc from src; the
// converted bytes also go to tee, when it is not nil.
func (c *converter) convertFrom(ctx context.Context, desc ocispecs.Descriptor, src io.Reader, tee io.Writer) (ocispecs.Descriptor, digest.Digest, int64, error) {
	var source digest.Digester // of a recompressed layer's files
	if c.recompresses(desc) {
		zr, err := kgzip.NewReader(src)
		if err != nil {
			return ocispecs.Descriptor{}, "", 0, fmt.Errorf("layer %s: %w", desc.Digest, err)
		}
		defer zr.Close()
		source = digest.Canonical.Digester()
		src = io.TeeReader(zr, source.Hash())
	} else if c.epoch != nil {
		rc := tarconverter.NewReader(src, clampTimes(*c.epoch))
		defer rc.Close()
		src = rc
	}
	w, err := content.OpenWriter(ctx, c.store, content.WithRef(fmt.Sprintf("strata-convert-%s-%s", c.compression, desc.Digest)))
	if err != nil {
		return ocispecs.Descriptor{}, "", 0, err
	}
	defer w.Close()
	if err := w.Truncate(0); err != nil {
		return ocispecs.Descriptor{}, "", 0, err
	}
	var dst io.Writer = w
	if tee != nil {
		dst = io.MultiWriter(w, tee)
	}
	out, err := c.compress(dst, src)
	if err != nil {
		return ocispecs.Descriptor{}, "", 0, fmt.Errorf("layer %s: %w", desc.Digest, err)
	}
	dgst := w.Digest()
	if err := w.Commit(ctx, 0, dgst); err != nil && !cerrdefs.IsAlreadyExists(err) {
		return ocispecs.Descriptor{}, "", 0, err
	}
	info, err := c.store.Info(ctx, dgst)
	if err != nil {
		return ocispecs.Descriptor{}, "", 0, err
	}
	if source != nil {
		// The plans of later builds know the base image by the diff_ids
		// of its layers.
		out.annotations[cache.AnnotationSourceDiffID] = source.Digest().String()
	}
	return ocispecs.Descriptor{MediaType: out.mediaType, Digest: dgst, Size: info.Size, Annotations: out.annotations}, out.diff, out.size, nil
}

// compressed is what compress made of a layer.
type compressed struct {
	mediaType   string
	diff        digest.Digest // of the uncompressed bytes the layer holds
	size        int64         // their size
	annotations map[string]string
}

// compress writes the tar read from src into dst in the converter's
// compression.
func (c *converter) compress(dst io.Writer, src io.Reader) (compressed, error) {
	if c.compression == "estargz" {
		l := newEstargzLayer(dst)
		if err := l.append(src); err != nil {
			return compressed{}, err
		}
		diff, n, annotations, err := l.close()
		return compressed{ocispecs.MediaTypeImageLayerGzip, diff, n, annotations}, err
	}
	mediaType, zw, err := c.compressor(dst)
	if err != nil {
		return compressed{}, err
	}
	diff := digest.Canonical.Digester()
	// Through Write, not the compressor's ReadFrom: zstd's ReadFrom, on a
	// read error, leaves a block being written that Close does not wait
	// for. The bytes are the same either way.
	n, err := io.CopyBuffer(writerOnly{zw}, io.TeeReader(src, diff.Hash()), make([]byte, 1<<20))
	if err != nil {
		zw.Close()
		return compressed{}, err
	}
	if err := zw.Close(); err != nil {
		return compressed{}, err
	}
	return compressed{mediaType, diff.Digest(), n, nil}, nil
}

// compressor wraps w in the converter's compression.
func (c *converter) compressor(w io.Writer) (string, io.WriteCloser, error) {
	switch c.compression {
	case "zstd":
		zw, err := zstd.NewWriter(w, zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)))
		return ocispecs.MediaTypeImageLayerZstd, zw, err
	case "uncompressed":
		return ocispecs.MediaTypeImageLayer, nopWriteCloser{w}, nil
	default:
		zw, err := pgzip.NewWriterLevel(w, pgzip.DefaultCompression)
		if err != nil {
			return "", nil, err
		}
		if err := zw.SetConcurrency(gzipBlock, max(2, runtime.GOMAXPROCS(0))); err != nil {
			return "", nil, err
		}
		return ocispecs.MediaTypeImageLayerGzip, zw, nil
	}
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// writerOnly hides every method of a writer but Write.
type writerOnly struct{ io.Writer }

// clampTimes sets every time in a tar header later than epoch to epoch.
func clampTimes(epoch time.Time) tarconverter.HeaderConverter {
	return func(h *tar.Header) {
		if h.ModTime.After(epoch) {
			h.ModTime = epoch
		}
		if h.AccessTime.After(epoch) {
			h.AccessTime = epoch
		}
		if h.ChangeTime.After(epoch) {
			h.ChangeTime = epoch
		}
	}
}

// convertImage replaces, in the image manifest desc, every layer the
// converter converts by the layer it becomes, and its diff_id in the
// config, converting what was not converted yet: start (c.start with no
// callback when nil) begins each layer's conversion, all before the first
// is waited for. It returns the new manifest's descriptor, or desc when
// nothing changed.
func (c *converter) convertImage(ctx context.Context, desc ocispecs.Descriptor, start func(ocispecs.Descriptor) *conversion) (ocispecs.Descriptor, error) {
	if start == nil {
		start = func(l ocispecs.Descriptor) *conversion { return c.start(ctx, l, nil) }
	}
	return rewriteImage(ctx, c.store, desc, func(mf *ocispecs.Manifest, cfg map[string]json.RawMessage) (bool, error) {
		var rootfs struct {
			Type    string          `json:"type"`
			DiffIDs []digest.Digest `json:"diff_ids"`
		}
		if err := json.Unmarshal(cfg["rootfs"], &rootfs); err != nil || len(rootfs.DiffIDs) != len(mf.Layers) {
			return false, fmt.Errorf("image config %s: its rootfs does not list one diff_id per layer", mf.Config.Digest)
		}
		cvs := make([]*conversion, len(mf.Layers))
		for i, l := range mf.Layers {
			if c.converts(l) {
				cvs[i] = start(l)
			}
		}
		changed := false
		for i, l := range mf.Layers {
			cv := cvs[i]
			if cv == nil {
				continue
			}
			if err := cv.wait(ctx); err != nil {
				return false, err
			}
			if cv.desc.Digest == l.Digest {
				continue
			}
			nl := cv.desc
			nl.Annotations = maps.Clone(cv.desc.Annotations)
			for k, v := range l.Annotations {
				if k != labels.LabelUncompressed {
					if nl.Annotations == nil {
						nl.Annotations = map[string]string{}
					}
					nl.Annotations[k] = v
				}
			}
			mf.Layers[i] = nl
			rootfs.DiffIDs[i] = cv.diff
			changed = true
		}
		if !changed {
			return false, nil
		}
		dt, err := json.Marshal(rootfs)
		cfg["rootfs"] = dt
		return err == nil, err
	})
}
