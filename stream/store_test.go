package stream

import (
	"bytes"
	"os"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	cerrdefs "github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// The push's store keeps what it is given, small blobs in memory and large
// ones in a file, and refuses what containerd's local store refuses: a
// second writer of a ref, a blob that exists, a commit whose size or digest
// is not the one written.
func TestPushStore(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	s, err := newPushStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	small := []byte("a manifest")
	large := bytes.Repeat([]byte("a layer "), memLimit/4)
	for _, dt := range [][]byte{small, large} {
		desc := ocispecs.Descriptor{Digest: digest.FromBytes(dt), Size: int64(len(dt))}
		if err := content.WriteBlob(ctx, s, "ref-"+desc.Digest.String(), bytes.NewReader(dt), desc); err != nil {
			t.Fatal(err)
		}
		got, err := content.ReadBlob(ctx, s, desc)
		if err != nil || !bytes.Equal(got, dt) {
			t.Fatalf("read back %d bytes of %d: %v", len(got), len(dt), err)
		}
		if info, err := s.Info(ctx, desc.Digest); err != nil || info.Size != desc.Size {
			t.Errorf("info %+v, %v; want size %d", info, err, desc.Size)
		}
		if _, err := s.Writer(ctx, content.WithRef("again"), content.WithDescriptor(desc)); !cerrdefs.IsAlreadyExists(err) {
			t.Errorf("writer of a blob that exists: %v, want already exists", err)
		}
	}
	if files, _ := os.ReadDir(dir); len(files) != 1 {
		t.Errorf("%d files in the store's directory, want 1 (the large blob)", len(files))
	}

	w, err := s.Writer(ctx, content.WithRef("r"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Writer(ctx, content.WithRef("r")); !cerrdefs.IsUnavailable(err) {
		t.Errorf("second writer of a ref: %v, want unavailable", err)
	}
	if _, err := w.Write(bytes.Repeat([]byte("x"), memLimit+1)); err != nil {
		t.Fatal(err)
	}
	if err := w.Truncate(0); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(small); err != nil {
		t.Fatal(err)
	}
	if st, _ := w.Status(); st.Offset != int64(len(small)) {
		t.Errorf("offset %d after truncating and writing %d bytes", st.Offset, len(small))
	}
	if err := w.Commit(ctx, int64(len(small)), digest.FromBytes(small)); !cerrdefs.IsAlreadyExists(err) {
		t.Errorf("commit of a blob that exists: %v, want already exists", err)
	}
	for _, tc := range []struct {
		size int64
		d    digest.Digest
	}{{1, ""}, {0, digest.FromString("other")}} {
		w, err := s.Writer(ctx, content.WithRef("r"))
		if err != nil {
			t.Fatalf("the ref is still held after its writer ended: %v", err)
		}
		if _, err := w.Write([]byte("new")); err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(ctx, tc.size, tc.d); !cerrdefs.IsFailedPrecondition(err) {
			t.Errorf("commit of size %d digest %q: %v, want failed precondition", tc.size, tc.d, err)
		}
	}

	w, _ = s.Writer(ctx, content.WithRef("dropped"))
	w.Write(large)
	if err := s.Abort(ctx, "dropped"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, digest.FromBytes(large)); err != nil {
		t.Fatal(err)
	}
	if files, _ := os.ReadDir(dir); len(files) != 0 {
		t.Errorf("%d files left once the large blobs are deleted or aborted", len(files))
	}
	if _, err := s.ReaderAt(ctx, ocispecs.Descriptor{Digest: digest.FromBytes(large)}); !cerrdefs.IsNotFound(err) {
		t.Errorf("reading a deleted blob: %v, want not found", err)
	}
	var n int
	if err := s.Walk(ctx, func(content.Info) error { n++; return nil }); err != nil || n != 1 {
		t.Errorf("walk saw %d blobs (%v), want 1", n, err)
	}
}
