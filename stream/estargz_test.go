package stream

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/containerd/stargz-snapshotter/estargz"
	kgzip "github.com/klauspost/compress/gzip"
)

// sequentialGzip is estargz.Writer's own way to compress: one gzip
// writer per member, writing straight into the layer.
type sequentialGzip struct{ *estargz.GzipCompressor }

func (sequentialGzip) Writer(w io.Writer) (estargz.WriteFlushCloser, error) {
	return kgzip.NewWriterLevel(w, estargzLevel)
}

// eStargz layers compressed on every core are byte for byte the layers
// estargz.Writer writes compressing one member after the other: the same
// members, the same table of contents, the same offsets.
func TestEstargzParallelIsSequential(t *testing.T) {
	epoch := time.Unix(1700000000, 0).UTC()
	r := rand.New(rand.NewSource(7))
	noise := make([]byte, 9<<20+123) // three chunks
	r.Read(noise)
	var small []tarEntry
	for i := range 300 {
		body := []byte(strings.Repeat(fmt.Sprintf("file %d\n", i), i%50))
		small = append(small, tarEntry{&tar.Header{Name: fmt.Sprintf("d/f%d", i), Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body)), ModTime: epoch}, body})
	}
	mixed := []tarEntry{
		{&tar.Header{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch}, nil},
		{&tar.Header{Name: "d/empty", Typeflag: tar.TypeReg, Mode: 0o644, ModTime: epoch}, nil},
		{&tar.Header{Name: "d/big", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(noise)), ModTime: epoch}, noise},
		{&tar.Header{Name: "d/link", Typeflag: tar.TypeSymlink, Linkname: "big", ModTime: epoch}, nil},
		{&tar.Header{Name: "d/hard", Typeflag: tar.TypeLink, Linkname: "d/big", ModTime: epoch}, nil},
		{&tar.Header{Name: "d/text", Typeflag: tar.TypeReg, Mode: 0o600, Size: 11, ModTime: epoch, PAXRecords: map[string]string{"SCHILY.xattr.user.k": "v"}}, []byte("hello world")},
	}
	for name, layer := range map[string][]byte{
		"empty":       tarOf(t),
		"one small":   filesTar(t, epoch, []byte("x")),
		"many small":  tarOf(t, small...),
		"mixed":       tarOf(t, mixed...),
		"exact chunk": filesTar(t, epoch, bytes.Repeat([]byte{'a'}, 4<<20)),
	} {
		t.Run(name, func(t *testing.T) {
			var want bytes.Buffer
			sw := estargz.NewWriterWithCompressor(&want, sequentialGzip{estargz.NewGzipCompressorWithLevel(estargzLevel)})
			if err := sw.AppendTarLossLess(bytes.NewReader(layer)); err != nil {
				t.Fatal(err)
			}
			wantTOC, err := sw.Close()
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			l := newEstargzLayer(&got)
			// Short reads, as from a pipe, must not change the layer.
			if err := l.append(&shortReader{r: bytes.NewReader(layer), rnd: r}); err != nil {
				t.Fatal(err)
			}
			diff, size, annotations, err := l.close()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), want.Bytes()) {
				t.Fatalf("%d bytes, estargz.Writer wrote %d (or the same number, others)", got.Len(), want.Len())
			}
			if annotations[estargz.TOCJSONDigestAnnotation] != wantTOC.String() {
				t.Errorf("TOC digest %s, want %s", annotations[estargz.TOCJSONDigestAnnotation], wantTOC)
			}
			if diff.String() != sw.DiffID() {
				t.Errorf("diff_id %s, want %s", diff, sw.DiffID())
			}
			if size < int64(len(layer)) {
				t.Errorf("uncompressed size %d, less than the tar's %d", size, len(layer))
			}
		})
	}
}

// shortReader returns at most a few kilobytes per read.
type shortReader struct {
	r   io.Reader
	rnd *rand.Rand
}

func (s *shortReader) Read(p []byte) (int, error) {
	return s.r.Read(p[:min(len(p), 1+s.rnd.Intn(5000))])
}

// A layer whose source fails part way, or whose destination fails, ends
// with that error and leaves nothing running.
func TestEstargzLayerErrors(t *testing.T) {
	epoch := time.Unix(1700000000, 0).UTC()
	big := bytes.Repeat([]byte("some dependency "), 1<<20) // 16 MiB: four chunks
	layer := filesTar(t, epoch, big, big)
	broken := errors.New("the export stopped")

	l := newEstargzLayer(io.Discard)
	err := l.append(io.MultiReader(bytes.NewReader(layer[:len(layer)/2]), errReader{broken}))
	if !errors.Is(err, broken) && (err == nil || !strings.Contains(err.Error(), broken.Error())) {
		t.Fatalf("source error: got %v", err)
	}
	if _, _, _, err := l.close(); err == nil {
		t.Error("closing after a failed append succeeded")
	}

	full := errors.New("no space left")
	l = newEstargzLayer(&failingWriter{after: 1000, err: full})
	err = l.append(bytes.NewReader(layer))
	if err == nil {
		_, _, _, err = l.close()
	} else {
		l.comp.finish()
	}
	if !errors.Is(err, full) {
		t.Fatalf("destination error: got %v", err)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// failingWriter fails once more than after bytes were written.
type failingWriter struct {
	after int
	n     int
	err   error
}

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.n += len(p); w.n > w.after {
		return 0, w.err
	}
	return len(p), nil
}
