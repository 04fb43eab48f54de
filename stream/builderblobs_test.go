package stream

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	contentapi "github.com/containerd/containerd/api/services/content/v1"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/plugins/services/content/contentserver"
	cerrdefs "github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// builderContent serves store with containerd's content service, as
// buildkitd does beside its control API, on a unix socket, and returns a
// client of it. With store nil, the server has no content service.
func builderContent(t *testing.T, store content.Store) contentapi.ContentClient {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "content.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	if store != nil {
		contentapi.RegisterContentServer(srv, contentserver.New(store))
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return contentapi.NewContentClient(conn)
}

// builderSetup is a layer of n bytes in a builder's store, served through
// serve (the store as it is, by default), and a converter with its own
// store that reads layers from that builder.
type builderSetup struct {
	epoch time.Time
	dt    []byte
	desc  ocispecs.Descriptor
	store content.Store // the converter's
	conv  *converter
}

func newBuilderSetup(t *testing.T, n int, serve func(content.Store) content.Store) *builderSetup {
	t.Helper()
	b := &builderSetup{epoch: time.Unix(1700000000, 0).UTC()}
	b.dt = layerTar(t, b.epoch.Add(time.Hour), n)
	remote := testStore(t)
	b.desc = putLayer(t, remote, b.dt)
	if serve != nil {
		remote = serve(remote)
	}
	b.store = testStore(t)
	b.conv = newConverter(b.store, "gzip", &b.epoch, nil)
	b.conv.builder = newBuilderBlobs(builderContent(t, remote))
	return b
}

// startFromBuilder converts desc reading it from the builder, as a
// knownStore offered desc does; it reports whether it did.
func startFromBuilder(t *testing.T, conv *converter, desc ocispecs.Descriptor, early func() *earlyUpload, done func(*conversion, time.Time)) bool {
	ks := &knownStore{conv: conv, layers: taker{t.Context(), conv, early, done}}
	return ks.fromBuilder(t.Context(), desc)
}

// converted collects what startFromBuilder's done reports.
type converted struct {
	mu  sync.Mutex
	cvs []*conversion
	at  []time.Time
}

func (c *converted) done(cv *conversion, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cvs = append(c.cvs, cv)
	c.at = append(c.at, at)
}

func (c *converted) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.cvs)
}

func TestConversionFromTheBuilderEqualsStoreConversion(t *testing.T) {
	b := newBuilderSetup(t, 3<<20, nil)
	desc, s, conv := b.desc, b.store, b.conv
	want, _ := convertOne(t, "gzip", &b.epoch, b.dt)
	got := &converted{}
	if !startFromBuilder(t, conv, desc, nil, got.done) {
		t.Fatal("the layer was not taken from the builder")
	}
	cv := conv.start(t.Context(), desc, nil) // the same conversion
	if err := cv.wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	if cv.desc.Digest != want.desc.Digest || cv.diff != want.diff || cv.size != want.size {
		t.Fatalf("conversion from the builder gave %s (diff %s, %d bytes), the store's %s (diff %s, %d bytes)", cv.desc.Digest, cv.diff, cv.size, want.desc.Digest, want.diff, want.size)
	}
	if _, err := s.Info(t.Context(), desc.Digest); !cerrdefs.IsNotFound(err) {
		t.Fatalf("the uncompressed layer was written into the local store (%v): it need not be", err)
	}
	if got.count() != 1 || got.cvs[0] != cv || got.at[0].IsZero() {
		t.Fatalf("done called %d times, want once with the conversion and a time", got.count())
	}
	if !conv.converted(desc.Digest) {
		t.Fatal("the layer is not reported converted")
	}
}

// TestBuilderIsNotAskedForWhatItCannotGive: a blob that is not a tar, one
// the builder lacks, and a builder with no content API are all left to the
// session; the last is not asked again.
func TestBuilderIsNotAskedForWhatItCannotGive(t *testing.T) {
	epoch := time.Unix(1700000000, 0).UTC()
	remote := testStore(t)
	cfg := []byte(strings.Repeat(`{"architecture":"amd64"}`, 4000))
	cfgDesc := putLayer(t, remote, cfg) // a layer's media type, but not a tar
	absent := ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageLayer, Digest: digest.FromString("absent"), Size: 1 << 20}

	conv := newConverter(testStore(t), "gzip", &epoch, nil)
	conv.builder = newBuilderBlobs(builderContent(t, remote))
	for _, d := range []ocispecs.Descriptor{cfgDesc, absent} {
		if startFromBuilder(t, conv, d, nil, nil) {
			t.Errorf("%s was taken from the builder", d.Digest)
		}
		conv.mu.Lock()
		_, claimed := conv.jobs[d.Digest]
		conv.mu.Unlock()
		if claimed {
			t.Errorf("a conversion of %s was recorded", d.Digest)
		}
	}
	if conv.builder.off.Load() {
		t.Fatal("reads from the builder were turned off by a missing blob")
	}

	dt := layerTar(t, epoch, 1<<20)
	desc := putLayer(t, testStore(t), dt)
	conv = newConverter(testStore(t), "gzip", &epoch, nil)
	conv.builder = newBuilderBlobs(builderContent(t, nil))
	if startFromBuilder(t, conv, desc, nil, nil) {
		t.Fatal("a layer was taken from a builder with no content API")
	}
	if !conv.builder.off.Load() {
		t.Fatal("reads from a builder with no content API stay on")
	}
}

// corruptStore gives every blob's bytes with one changed.
type corruptStore struct{ content.Store }

func (s corruptStore) ReaderAt(ctx context.Context, desc ocispecs.Descriptor) (content.ReaderAt, error) {
	ra, err := s.Store.ReaderAt(ctx, desc)
	if err != nil {
		return nil, err
	}
	return corruptReaderAt{ra}, nil
}

type corruptReaderAt struct{ content.ReaderAt }

func (r corruptReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := r.ReaderAt.ReadAt(p, off)
	if off <= 1000 && off+int64(n) > 1000 {
		p[1000-off] ^= 0xff
	}
	return n, err
}

// TestBadBytesFromTheBuilderAreNotPushed: bytes that do not match the
// layer's digest fail the conversion (after the second read), nothing is
// reported converted, and a later write of the layer may convert it.
func TestBadBytesFromTheBuilderAreNotPushed(t *testing.T) {
	b := newBuilderSetup(t, 2<<20, func(s content.Store) content.Store { return corruptStore{s} })
	epoch, dt, desc, s, conv := b.epoch, b.dt, b.desc, b.store, b.conv
	got := &converted{}
	if !startFromBuilder(t, conv, desc, nil, got.done) {
		t.Fatal("the layer was not taken from the builder")
	}
	conv.awaitFromBuilder(t.Context(), desc.Digest)
	if got.count() != 0 {
		t.Fatal("a conversion of bad bytes was reported done")
	}
	if conv.converted(desc.Digest) {
		t.Fatal("bad bytes were reported converted")
	}
	// Until an export sends it, converting it from the store fails with
	// the read's error: it is not taken for a layer the registry holds.
	if _, _, _, err := conv.convert(t.Context(), desc); err == nil || !strings.Contains(err.Error(), "the bytes have digest") {
		t.Fatalf("converting the unread layer from the store: %v, want the read's error", err)
	}
	// Forgotten: the layer written through the session converts (the
	// builder is not asked again here).
	conv.builder = nil
	if _, err := writeStreamed(t, conv, s, dt, 256<<10, nil); err != nil {
		t.Fatal(err)
	}
	cv := conv.start(t.Context(), desc, nil)
	if err := cv.wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	want, _ := convertOne(t, "gzip", &epoch, dt)
	if cv.desc.Digest != want.desc.Digest {
		t.Fatalf("after the bad read, the layer became %s, want %s", cv.desc.Digest, want.desc.Digest)
	}
}

func TestBuilderReaderChecksSizeAndDigest(t *testing.T) {
	dt := []byte(strings.Repeat("strata ", 1<<16))
	remote := testStore(t)
	desc := putLayer(t, remote, dt)
	b := newBuilderBlobs(builderContent(t, remote))
	for _, tc := range []struct {
		name string
		desc ocispecs.Descriptor
		want string
	}{
		{"right", desc, ""},
		{"shorter than said", ocispecs.Descriptor{Digest: desc.Digest, Size: desc.Size + 1}, "bytes, not"},
		{"longer than said", ocispecs.Descriptor{Digest: desc.Digest, Size: desc.Size - 1}, "more than its"},
	} {
		var n int
		err := b.fetch(t.Context(), tc.desc, writerFunc(func(p []byte) (int, error) { n += len(p); return len(p), nil }))
		switch {
		case tc.want == "" && (err != nil || n != len(dt)):
			t.Errorf("%s: %d bytes, %v", tc.name, n, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: got %v, want an error saying %q", tc.name, err, tc.want)
		}
	}
	err := newBuilderBlobs(builderContent(t, corruptStore{remote})).fetch(t.Context(), desc, writerFunc(func(p []byte) (int, error) { return len(p), nil }))
	if err == nil || !strings.Contains(err.Error(), "the bytes have digest") {
		t.Fatalf("bad bytes: got %v, want a digest error", err)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestKnownStoreAnswersLayersTheBuilderGives: an export offering a layer
// the builder gives is answered that the store has it; a second export
// offering it meanwhile waits for the conversion and gets the same answer.
func TestKnownStoreAnswersLayersTheBuilderGives(t *testing.T) {
	b := newBuilderSetup(t, 3<<20, nil)
	desc, s, conv := b.desc, b.store, b.conv
	got := &converted{}
	ks := &knownStore{Store: s, conv: conv, layers: taker{t.Context(), conv, nil, got.done}}
	offer := func() error {
		w, err := ks.Writer(t.Context(), content.WithRef("t-"+desc.Digest.String()), content.WithDescriptor(ocispecs.Descriptor{Digest: desc.Digest, Size: desc.Size}))
		if err == nil {
			w.Close()
			return errors.New("the store asked for the layer")
		}
		return err
	}
	if err := offer(); !cerrdefs.IsAlreadyExists(err) {
		t.Fatalf("first export: %v, want already exists", err)
	}
	if err := offer(); !cerrdefs.IsAlreadyExists(err) {
		t.Fatalf("second export: %v, want already exists", err)
	}
	if !conv.converted(desc.Digest) || got.count() != 1 {
		t.Fatalf("converted %v, done called %d times; want the layer converted once", conv.converted(desc.Digest), got.count())
	}
}
