package stream

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	cerrdefs "github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// streamed writes dt into a knownStore over s in chunks, as the session
// does, calling between(i) before chunk i; it returns the conversions the
// store's stream callback reported.
type streamedLayer struct {
	mu      sync.Mutex
	done    []*conversion
	at      []time.Time
	changed chan struct{} // closed and replaced when a conversion is done
}

// wait waits until n conversions are done.
func (l *streamedLayer) wait(n int) {
	for {
		l.mu.Lock()
		finished, changed := len(l.done) >= n, l.changed
		l.mu.Unlock()
		if finished {
			return
		}
		<-changed
	}
}

// taker starts each conversion it is given on conv, with early and done.
type taker struct {
	ctx   context.Context
	conv  *converter
	early func() *earlyUpload
	done  func(*conversion, time.Time)
}

func (tk taker) take(desc ocispecs.Descriptor, src layerSource) bool {
	_, ok := tk.conv.begin(tk.ctx, desc, src, tk.early, tk.done)
	return ok
}

func writeStreamed(t testing.TB, conv *converter, s content.Store, dt []byte, chunk int, between func(i int, w content.Writer)) (*streamedLayer, error) {
	return writeStreamedEarly(t, conv, s, dt, chunk, between, nil)
}

// writeStreamedEarly is writeStreamed with early uploads from early.
func writeStreamedEarly(t testing.TB, conv *converter, s content.Store, dt []byte, chunk int, between func(i int, w content.Writer), early func() *earlyUpload) (*streamedLayer, error) {
	t.Helper()
	got := &streamedLayer{changed: make(chan struct{})}
	ks := &knownStore{Store: s, conv: conv, layers: taker{t.Context(), conv, early, func(cv *conversion, at time.Time) {
		got.mu.Lock()
		defer got.mu.Unlock()
		got.done = append(got.done, cv)
		got.at = append(got.at, at)
		close(got.changed)
		got.changed = make(chan struct{})
	}}}
	d := digest.FromBytes(dt)
	w, err := ks.Writer(t.Context(), content.WithRef("t-"+d.String()), content.WithDescriptor(ocispecs.Descriptor{Digest: d, Size: int64(len(dt))}))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i := 0; i*chunk < len(dt); i++ {
		if between != nil {
			between(i, w)
		}
		if _, err := w.Write(dt[i*chunk : min(len(dt), (i+1)*chunk)]); err != nil {
			t.Fatal(err)
		}
	}
	return got, w.Commit(t.Context(), int64(len(dt)), d)
}

func TestStreamedConversionEqualsStoreConversion(t *testing.T) {
	epoch := time.Unix(1700000000, 0).UTC()
	dt := layerTar(t, epoch.Add(time.Hour), 3<<20)
	want, _ := convertOne(t, "gzip", &epoch, dt)

	s := testStore(t)
	conv := newConverter(s, "gzip", &epoch, nil)
	d := digest.FromBytes(dt)
	startedBeforeCommit := false
	got, err := writeStreamed(t, conv, s, dt, 256<<10, func(i int, _ content.Writer) {
		if i == 4 {
			conv.mu.Lock()
			_, startedBeforeCommit = conv.jobs[d]
			conv.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if !startedBeforeCommit {
		t.Fatal("the conversion had not started while the layer was being written")
	}
	cv := conv.start(t.Context(), ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageLayer, Digest: d, Size: int64(len(dt))}, nil)
	if err := cv.wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	if cv.desc.Digest != want.desc.Digest || cv.diff != want.diff || cv.size != want.size {
		t.Fatalf("streamed conversion gave %s (diff %s, %d bytes), the store's %s (diff %s, %d bytes)", cv.desc.Digest, cv.diff, cv.size, want.desc.Digest, want.diff, want.size)
	}
	if ra, err := s.ReaderAt(t.Context(), cv.desc); err != nil {
		t.Fatalf("converted layer not in the store: %v", err)
	} else {
		ra.Close()
	}
	got.mu.Lock()
	defer got.mu.Unlock()
	if len(got.done) != 1 || got.done[0] != cv || got.at[0].IsZero() {
		t.Fatalf("done called %d times (want once, with the conversion and the commit time)", len(got.done))
	}
}

func TestStreamedConversionFallsBackWhenTheWriteRestarts(t *testing.T) {
	epoch := time.Unix(1700000000, 0).UTC()
	dt := layerTar(t, epoch.Add(time.Hour), 2<<20)
	want, _ := convertOne(t, "zstd", &epoch, dt)

	s := testStore(t)
	conv := newConverter(s, "zstd", &epoch, nil)
	restarted := false
	_, err := writeStreamed(t, conv, s, dt, 128<<10, func(i int, w content.Writer) {
		if i == 3 && !restarted {
			// The transfer starts over, as a resumed write would.
			restarted = true
			if err := w.Truncate(0); err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(dt[:3*128<<10]); err != nil {
				t.Fatal(err)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	cv := conv.start(t.Context(), ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageLayer, Digest: digest.FromBytes(dt), Size: int64(len(dt))}, nil)
	if err := cv.wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	if cv.desc.Digest != want.desc.Digest || cv.diff != want.diff {
		t.Fatalf("after a restarted write the conversion gave %s (diff %s), want %s (diff %s)", cv.desc.Digest, cv.diff, want.desc.Digest, want.diff)
	}
}

func TestStreamedConversionOfAFailedWriteIsForgotten(t *testing.T) {
	epoch := time.Unix(1700000000, 0).UTC()
	dt := layerTar(t, epoch.Add(time.Hour), 1<<20)
	s := testStore(t)
	conv := newConverter(s, "gzip", &epoch, nil)
	d := digest.FromBytes(dt)
	ks := &knownStore{Store: s, conv: conv, layers: taker{t.Context(), conv, nil, func(*conversion, time.Time) {
		t.Error("done called for a write that was never committed")
	}}}
	w, err := ks.Writer(t.Context(), content.WithRef("t-abandoned"), content.WithDescriptor(ocispecs.Descriptor{Digest: d, Size: int64(len(dt))}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(dt[:len(dt)/2]); err != nil {
		t.Fatal(err)
	}
	conv.mu.Lock()
	cv := conv.jobs[d]
	conv.mu.Unlock()
	if cv == nil {
		t.Fatal("no conversion started for the layer being written")
	}
	w.Close() // abandoned, as when the export fails
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := cv.wait(ctx); err == nil {
		t.Fatal("the conversion of an abandoned write succeeded")
	}
	conv.mu.Lock()
	_, kept := conv.jobs[d]
	conv.mu.Unlock()
	if kept {
		t.Fatal("the failed conversion is still recorded; a new write of the layer would not be converted")
	}
}

func TestStreamingWriterLeavesOtherBlobs(t *testing.T) {
	s := testStore(t)
	conv := newConverter(s, "gzip", nil, nil)
	dt := make([]byte, 200<<10) // not a tar: a compressed layer, say
	for i := range dt {
		dt[i] = byte(i * 7)
	}
	noConversionOf(t, conv, s, dt, "a blob that is not a tar")
}

// noConversionOf writes dt streamed and fails if a conversion started from
// its transfer (once committed, a layer may be converted from the store).
func noConversionOf(t *testing.T, conv *converter, s content.Store, dt []byte, what string) {
	t.Helper()
	if _, err := writeStreamed(t, conv, s, dt, 64<<10, nil); err != nil {
		t.Fatal(err)
	}
	conv.mu.Lock()
	defer conv.mu.Unlock()
	for _, cv := range conv.jobs {
		if _, ok := cv.src.(transferSource); ok {
			t.Fatalf("a conversion from the transfer started for %s", what)
		}
	}
}

func TestSecondWriterOfABlobWaitsForTheFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := testStore(t)
		ks := &knownStore{Store: s}
		dt := layerTar(t, time.Unix(1700000000, 0), 300<<10)
		d := digest.FromBytes(dt)
		opts := []content.WriterOpt{content.WithRef("layer-" + d.String()), content.WithDescriptor(ocispecs.Descriptor{Digest: d, Size: int64(len(dt))})}
		first, err := ks.Writer(t.Context(), opts...)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := first.Write(dt[:1000]); err != nil {
			t.Fatal(err)
		}
		second := make(chan error, 1)
		go func() {
			w, err := ks.Writer(t.Context(), opts...)
			if err == nil {
				w.Close()
			}
			second <- err
		}()
		synctest.Wait() // the second writer has returned, or waits
		select {
		case err := <-second:
			t.Fatalf("the second writer did not wait for the first: %v", err)
		default:
		}
		if _, err := first.Write(dt[1000:]); err != nil {
			t.Fatal(err)
		}
		if err := first.Commit(t.Context(), int64(len(dt)), d); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-second:
			if !cerrdefs.IsAlreadyExists(err) {
				t.Fatalf("second writer after the first committed: %v, want already exists", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the second writer still waits after the first committed")
		}
	})
}

func TestNothingStreamedWhenThereIsNothingToConvert(t *testing.T) {
	s := testStore(t)
	conv := newConverter(s, "uncompressed", nil, nil)
	dt := layerTar(t, time.Unix(1700000000, 0), 300<<10)
	noConversionOf(t, conv, s, dt, "an uncompressed layer kept as it is")
}

func TestConvertedLayerIsNotSentAgain(t *testing.T) {
	epoch := time.Unix(1700000000, 0).UTC()
	s := testStore(t)
	conv := newConverter(s, "gzip", &epoch, nil)
	desc := putLayer(t, s, layerTar(t, epoch.Add(time.Hour), 300<<10))
	if err := conv.start(t.Context(), desc, nil).wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The push drops the uncompressed layer once converted; a later export
	// must still be told the store has it.
	if err := s.Delete(t.Context(), desc.Digest); err != nil {
		t.Fatal(err)
	}
	ks := &knownStore{Store: s, conv: conv}
	w, err := ks.Writer(t.Context(), content.WithRef("t-again"), content.WithDescriptor(desc))
	if err == nil {
		w.Close()
	}
	if !cerrdefs.IsAlreadyExists(err) {
		t.Fatalf("writing a layer converted in this build again: %v, want already exists", err)
	}
}

// earlyReader is an early upload with no registry behind it: the test
// reads what it would send.
func earlyReader(t *testing.T) (func() *earlyUpload, func() ([]byte, error)) {
	sp, err := newSpool(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r := sp.reader()
	res := make(chan []byte, 1)
	errc := make(chan error, 1)
	go func() {
		defer r.Close()
		b, err := io.ReadAll(r)
		res <- b
		errc <- err
	}()
	return func() *earlyUpload { return &earlyUpload{sp: sp} }, func() ([]byte, error) { return <-res, <-errc }
}

// An early upload is sent exactly the converted layer, while it is
// converted; one whose write restarts is dropped, and the layer goes up
// once converted from the store.
func TestEarlyUploadGetsTheConvertedLayer(t *testing.T) {
	epoch := time.Unix(1700000000, 0).UTC()
	dt := layerTar(t, epoch.Add(time.Hour), 2<<20)
	s := testStore(t)
	conv := newConverter(s, "gzip", &epoch, nil)
	early, sent := earlyReader(t)
	got, err := writeStreamedEarly(t, conv, s, dt, 256<<10, nil, early)
	if err != nil {
		t.Fatal(err)
	}
	b, err := sent()
	if err != nil {
		t.Fatalf("the early upload was dropped: %v", err)
	}
	cv := conv.start(t.Context(), ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageLayer, Digest: digest.FromBytes(dt), Size: int64(len(dt))}, nil)
	if err := cv.wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	if d := digest.FromBytes(b); d != cv.desc.Digest || int64(len(b)) != cv.desc.Size {
		t.Fatalf("the early upload got %d bytes (%s), the layer is %d bytes (%s)", len(b), d, cv.desc.Size, cv.desc.Digest)
	}
	got.mu.Lock()
	defer got.mu.Unlock()
	if len(got.done) != 1 {
		t.Fatalf("done called %d times, want once", len(got.done))
	}

	s2 := testStore(t)
	conv2 := newConverter(s2, "gzip", &epoch, nil)
	early2, sent2 := earlyReader(t)
	_, err = writeStreamedEarly(t, conv2, s2, dt, 256<<10, func(i int, w content.Writer) {
		if i == 2 {
			if err := w.Truncate(0); err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(dt[:2*256<<10]); err != nil {
				t.Fatal(err)
			}
		}
	}, early2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sent2(); !errors.Is(err, errEarlyDropped) {
		t.Fatalf("early upload of a restarted write ended with %v, want it dropped", err)
	}
}

// BenchmarkStreamedWrite writes a 60 MB layer (half random, as in the
// streamed-push scenario) into the store in 1 MB chunks, as BuildKit's
// export does over the session, with its conversion (timestamp clamp and
// gzip) fed as it arrives; an op ends when the layer is committed and
// converted.
func BenchmarkStreamedWrite(b *testing.B) {
	epoch := time.Unix(1700000000, 0).UTC()
	rnd := make([]byte, 30<<20)
	rng := rand.NewChaCha8([32]byte{3, 4})
	_, _ = rng.Read(rnd)
	dt := filesTar(b, epoch.Add(time.Hour), rnd, bytes.Repeat([]byte("strata layer "), (30<<20)/13))
	b.SetBytes(int64(len(dt)))
	for b.Loop() {
		s := testStore(b)
		conv := newConverter(s, "gzip", &epoch, nil)
		got, err := writeStreamed(b, conv, s, dt, 1<<20, nil)
		if err != nil {
			b.Fatal(err)
		}
		got.wait(1)
	}
}
