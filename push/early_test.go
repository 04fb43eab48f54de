package push

import (
	"bytes"
	"io"
	"net/http"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/google/go-containerregistry/pkg/name"
)

// An early upload sends a blob's bytes as they are made, before its digest
// is known, and commits them under the digest it is given at the end: the
// blob is then pushed, once, and PushImage does not send it again.
func TestEarlyUploadIsCommittedUnderItsDigest(t *testing.T) {
	reg := newRegistry(t)
	store := newStore(t)
	img := newImage(t, store, nil, 2)
	l := img.layers[0]
	dt := readBlob(t, store, img, 0)
	p, evs := newPusher(t, reg, "app", store)
	if empty, err := p.Empty(t.Context()); err != nil || !empty {
		t.Fatalf("Empty of a repository that does not exist: %v, %v", empty, err)
	}

	pr, pw := io.Pipe()
	e := p.Early(t.Context(), pr)
	half := len(dt) / 2
	if _, err := pw.Write(dt[:half]); err != nil {
		t.Fatal(err)
	}
	reg.until("the first half of the layer at the registry", func() bool { return reg.received >= int64(half) })
	if _, err := pw.Write(dt[half:]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	e.Finish(l)
	if err := p.Wait(t.Context(), l.Digest); err != nil {
		t.Fatal(err)
	}
	if ev := evs.once(t, l.Digest); !ev.Early || ev.Uploaded != l.Size {
		t.Errorf("event: early %v, %d bytes uploaded, want an early upload of %d bytes", ev.Early, ev.Uploaded, l.Size)
	}

	if err := p.PushImage(t.Context(), img.desc, []name.Tag{tag(t, reg, "app", "v1")}); err != nil {
		t.Fatal(err)
	}
	reg.validate("app", "v1")
	if got := reg.uploaded("app"); got != img.size() {
		t.Errorf("%d bytes uploaded, want the image's %d", got, img.size())
	}
	if n := reg.commits("app")[l.Digest.String()]; n != 1 {
		t.Errorf("the layer was committed %d times, want once", n)
	}
	if empty, err := p.Empty(t.Context()); err != nil || empty {
		t.Errorf("Empty of a repository with a tag: %v, %v", empty, err)
	}
}

// An early upload that fails is dropped, and the blob is uploaded from the
// store as PushBlob would; one aborted commits nothing.
func TestFailedEarlyUploadIsUploadedFromTheStore(t *testing.T) {
	for _, tc := range []struct {
		name      string
		fault     kind                // a request of the early upload the registry refuses
		body      func([]byte) []byte // what the early upload is sent
		cancelled bool                // the registry is told to drop the upload
	}{
		{"refused stream", uploadPatch, nil, false},
		{"refused commit", uploadCommit, nil, true},
		{"other bytes", "", func(dt []byte) []byte { return append(bytes.Clone(dt[1:]), 'x') }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := newRegistry(t)
			store := newStore(t)
			img := newImage(t, store, nil, 1)
			l := img.layers[0]
			dt := readBlob(t, store, img, 0)
			if tc.fault != "" {
				reg.fail(tc.fault, "", 1, http.StatusBadRequest) // not transient: the early upload fails
			}
			if tc.body != nil {
				dt = tc.body(dt)
			}
			p, evs := newPusher(t, reg, "app", store)
			e := p.Early(t.Context(), io.NopCloser(bytes.NewReader(dt)))
			e.Finish(l)
			if err := p.Wait(t.Context(), l.Digest); err != nil {
				t.Fatal(err)
			}
			if ev := evs.once(t, l.Digest); ev.Early {
				t.Error("the event says the failed early upload went up")
			}
			if n := reg.commits("app")[l.Digest.String()]; n != 1 {
				t.Errorf("the layer was committed %d times, want once", n)
			}
			if n := len(reg.requests("app", uploadCancel)); tc.cancelled && n != 1 {
				t.Errorf("%d uploads cancelled, want the early one", n)
			}
			if err := p.PushImage(t.Context(), img.desc, []name.Tag{tag(t, reg, "app", "v1")}); err != nil {
				t.Fatal(err)
			}
			reg.validate("app", "v1")
		})
	}

	t.Run("aborted", func(t *testing.T) {
		reg := newRegistry(t)
		store := newStore(t)
		img := newImage(t, store, nil, 1)
		p, evs := newPusher(t, reg, "app", store)
		pr, pw := io.Pipe()
		e := p.Early(t.Context(), pr)
		if _, err := pw.Write(readBlob(t, store, img, 0)); err != nil {
			t.Fatal(err)
		}
		pw.Close()
		e.Abort()
		reg.until("the aborted upload cancelled", func() bool {
			return len(reg.log) > 0 && reg.log[len(reg.log)-1].kind == uploadCancel
		})
		if n := len(reg.commits("app")); n != 0 {
			t.Errorf("an aborted early upload committed %d blobs", n)
		}
		if evs.of(img.layers[0].Digest) != nil {
			t.Error("an aborted early upload was reported")
		}
	})
}

// readBlob reads layer i of img from store.
func readBlob(t *testing.T, store content.Provider, img image, i int) []byte {
	t.Helper()
	dt, err := content.ReadBlob(t.Context(), store, img.layers[i])
	if err != nil {
		t.Fatal(err)
	}
	return dt
}
