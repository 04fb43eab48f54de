package stream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	contentapi "github.com/containerd/containerd/api/services/content/v1"
	"github.com/containerd/containerd/v2/core/content"
	cerrdefs "github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// builderBlobs reads the layers BuildKit exports from buildkitd's own
// content store, through the read-only content API buildkitd serves beside
// its control API. By the time an export offers a layer to the client's
// store, BuildKit holds the layer there (the diff is done), and the cache
// record keeps it for as long as the build runs.
//
// Read this way, a layer arrives as one stream: 60 MB in about 0.12 s on
// loopback, where the same bytes written through the session's content
// store take about 1 s, one round trip per megabyte, and more CPU on both
// sides while later steps build.
type builderBlobs struct {
	cc  contentapi.ContentClient
	off atomic.Bool // the builder does not serve the content API
}

// headTimeout bounds the read of a layer's first bytes: the export that
// offered the layer waits for it.
const headTimeout = 10 * time.Second

func newBuilderBlobs(cc contentapi.ContentClient) *builderBlobs {
	if cc == nil {
		return nil
	}
	return &builderBlobs{cc: cc}
}

// head is the first 512 bytes of the blob d, or false when the builder
// cannot give them (it lacks the blob, or does not serve the content API:
// then it is not asked again).
func (b *builderBlobs) head(ctx context.Context, d digest.Digest) ([]byte, bool) {
	if b == nil || b.off.Load() {
		return nil, false
	}
	ctx, cancel := context.WithTimeout(ctx, headTimeout)
	defer cancel()
	rc, err := b.cc.Read(ctx, &contentapi.ReadContentRequest{Digest: d.String(), Size: 512})
	if err != nil {
		b.unserved(err)
		return nil, false
	}
	var hdr []byte
	for len(hdr) < 512 {
		resp, err := rc.Recv()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				b.unserved(err)
			}
			break
		}
		hdr = append(hdr, resp.Data...)
	}
	return hdr, len(hdr) >= 512
}

// served reports whether the builder serves its content store: it answers
// a question about a blob it lacks with "not found".
func (b *builderBlobs) served(ctx context.Context) bool {
	if b == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, headTimeout)
	defer cancel()
	_, err := b.cc.Info(ctx, &contentapi.InfoRequest{Digest: digest.FromString("").String()})
	if err == nil || status.Code(err) == codes.NotFound {
		return true
	}
	b.unserved(err)
	return false
}

// unserved turns the reads off when err says the builder has no content
// API (an older or proxied buildkitd).
func (b *builderBlobs) unserved(err error) {
	if c := status.Code(err); c == codes.Unimplemented || c == codes.PermissionDenied {
		b.off.Store(true)
	}
}

// open streams the blob desc from the builder. The reader ends with an
// error, not io.EOF, unless the bytes have desc's size and digest.
func (b *builderBlobs) open(ctx context.Context, desc ocispecs.Descriptor) io.ReadCloser {
	ctx, cancel := context.WithCancel(ctx)
	r := &builderReader{desc: desc, cancel: cancel, digester: digest.Canonical.Digester()}
	r.rc, r.err = b.cc.Read(ctx, &contentapi.ReadContentRequest{Digest: desc.Digest.String()})
	if r.err != nil {
		r.err = fmt.Errorf("reading layer %s from the builder: %w", desc.Digest, r.err)
	}
	return r
}

// fetch copies the blob desc from the builder into dst.
func (b *builderBlobs) fetch(ctx context.Context, desc ocispecs.Descriptor, dst io.Writer) error {
	r := b.open(ctx, desc)
	defer r.Close()
	_, err := io.CopyBuffer(dst, r, make([]byte, 1<<20))
	return err
}

type builderReader struct {
	desc     ocispecs.Descriptor
	rc       contentapi.Content_ReadClient
	cancel   context.CancelFunc
	digester digest.Digester
	buf      []byte
	n        int64
	err      error // sticky: io.EOF once verified
}

func (r *builderReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		resp, err := r.rc.Recv()
		switch {
		case errors.Is(err, io.EOF):
			r.err = r.verify()
		case err != nil:
			r.err = fmt.Errorf("reading layer %s from the builder: %w", r.desc.Digest, err)
		default:
			r.buf = resp.Data
			r.n += int64(len(resp.Data))
			if r.n > r.desc.Size {
				r.err = fmt.Errorf("reading layer %s from the builder: more than its %d bytes", r.desc.Digest, r.desc.Size)
				r.buf = nil
			}
		}
	}
	n := copy(p, r.buf)
	r.digester.Hash().Write(r.buf[:n])
	r.buf = r.buf[n:]
	return n, nil
}

func (r *builderReader) verify() error {
	if r.n != r.desc.Size {
		return fmt.Errorf("reading layer %s from the builder: %d bytes, not %d", r.desc.Digest, r.n, r.desc.Size)
	}
	if got := r.digester.Digest(); got != r.desc.Digest {
		return fmt.Errorf("reading layer %s from the builder: the bytes have digest %s", r.desc.Digest, got)
	}
	return io.EOF
}

func (r *builderReader) Close() error {
	r.cancel()
	return nil
}

// builderSource reads a layer from buildkitd's content store (see
// builderBlobs). The export offering the layer need not send it. A read
// that fails is done again once, into the store, before the source counts
// the layer lost: then a later export's write of the layer starts another
// conversion, and if none sends it, its conversion from the store fails
// with the read's error (see convert).
type builderSource struct{ b *builderBlobs }

// fromBuilder is the builder as the source of desc, when it can give it: it
// holds desc, and desc is an uncompressed tar (or a gzip layer the
// converter recompresses).
func (c *converter) fromBuilder(ctx context.Context, desc ocispecs.Descriptor) (layerSource, bool) {
	if c.builder == nil {
		return nil, false
	}
	hdr, _ := c.builder.head(ctx, desc.Digest)
	if c.recompresses(desc) {
		if len(hdr) < 2 || hdr[0] != 0x1f || hdr[1] != 0x8b {
			return nil, false
		}
	} else if !isTarHeader(hdr) {
		return nil, false
	}
	return builderSource{c.builder}, true
}

func (builderSource) paced() bool { return true }

func (s builderSource) read(ctx context.Context, c *converter, desc ocispecs.Descriptor, cv *conversion, tee io.Writer) (time.Time, error) {
	cv.started = time.Now()
	r := s.b.open(ctx, desc)
	defer r.Close()
	cv.desc, cv.diff, cv.size, cv.err = c.convertFrom(ctx, desc, r, tee)
	if cv.err == nil {
		// The conversion may stop at the archive's end: the rest is
		// read, so the digest is checked.
		if _, err := io.Copy(io.Discard, r); err != nil {
			cv.err = err
		}
	}
	cv.finished = time.Now()
	return cv.finished, nil
}

func (s builderSource) again(ctx context.Context, c *converter, desc ocispecs.Descriptor, cv *conversion) (time.Time, error) {
	if err := c.fetchAndConvert(ctx, s.b, desc, cv); err != nil {
		c.mu.Lock()
		if c.unread == nil {
			c.unread = map[digest.Digest]error{}
		}
		c.unread[desc.Digest] = err
		c.mu.Unlock()
		return time.Time{}, err
	}
	return time.Now(), nil
}

// fetchAndConvert copies desc from the builder into the store, then
// converts it from there into cv.
func (c *converter) fetchAndConvert(ctx context.Context, b *builderBlobs, desc ocispecs.Descriptor, cv *conversion) error {
	w, err := content.OpenWriter(ctx, c.store, content.WithRef("strata-fetch-"+desc.Digest.String()), content.WithDescriptor(desc))
	if cerrdefs.IsAlreadyExists(err) {
		c.convertInTurn(ctx, desc, cv)
		return cv.err
	}
	if err != nil {
		return err
	}
	defer w.Close()
	if err := w.Truncate(0); err != nil {
		return err
	}
	if err := b.fetch(ctx, desc, w); err != nil {
		return err
	}
	if err := w.Commit(ctx, desc.Size, desc.Digest); err != nil && !cerrdefs.IsAlreadyExists(err) {
		return err
	}
	c.convertInTurn(ctx, desc, cv)
	return cv.err
}
