package push

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-build/strata/errs"
)

// An image goes up whole, each blob once, and a repository that holds the
// image does not make another repository of the registry hold it: pushed
// to mirror as well, every blob is sent again.
func TestPushImageSendsEveryBlobOnce(t *testing.T) {
	reg := newRegistry(t)
	store := newStore(t)
	img := newImage(t, store, nil, 3)
	for _, repo := range []string{"app", "mirror"} {
		p, evs := newPusher(t, reg, repo, store)
		if err := p.PushImage(t.Context(), img.desc, []name.Tag{tag(t, reg, repo, "v1")}); err != nil {
			t.Fatal(err)
		}
		reg.validate(repo, "v1")
		if got := reg.uploaded(repo); got != img.size() {
			t.Errorf("%s: %d bytes uploaded, want the image's %d", repo, got, img.size())
		}
		if got := p.BytesSent(); got != img.size() {
			t.Errorf("%s: BytesSent %d, want %d", repo, got, img.size())
		}
		commits := reg.commits(repo)
		for _, b := range img.blobs() {
			if commits[b.Digest.String()] != 1 {
				t.Errorf("%s: %s committed %d times, want once", repo, b.Digest, commits[b.Digest.String()])
			}
			if ev := evs.once(t, b.Digest); ev.Uploaded != b.Size || ev.MountedFrom != "" || ev.Early {
				t.Errorf("%s: event of %s: uploaded %d of %d bytes, mounted from %q, early %v", repo, b.Digest, ev.Uploaded, b.Size, ev.MountedFrom, ev.Early)
			}
		}
	}
}

// A blob the repository holds is not sent: the HEAD check finds it, for
// PushImage as for Has; one only another repository holds is not found.
func TestBlobsTheRepositoryHasAreNotSent(t *testing.T) {
	reg := newRegistry(t)
	store := newStore(t)
	base := newImage(t, store, nil, 2)
	img := newImage(t, store, base.img, 1) // base's layers and one more
	first, _ := newPusher(t, reg, "app", store)
	if err := first.PushImage(t.Context(), base.desc, []name.Tag{tag(t, reg, "app", "base")}); err != nil {
		t.Fatal(err)
	}
	before := reg.uploaded("app")

	p, evs := newPusher(t, reg, "app", store)
	if err := p.PushImage(t.Context(), img.desc, []name.Tag{tag(t, reg, "app", "v1")}); err != nil {
		t.Fatal(err)
	}
	reg.validate("app", "v1")
	want := img.config.Size + img.layers[2].Size
	if got := reg.uploaded("app") - before; got != want {
		t.Errorf("%d bytes uploaded, want %d: the new layer and the config only", got, want)
	}
	for _, l := range img.layers[:2] {
		if ev := evs.once(t, l.Digest); ev.Uploaded != 0 {
			t.Errorf("layer %s the repository holds: %d bytes uploaded", l.Digest, ev.Uploaded)
		}
	}

	// Has finds what app holds and records it as pushed: PushBlob then
	// sends nothing, and the blob is reported once.
	p2, evs2 := newPusher(t, reg, "app", store)
	if ok, err := p2.Has(t.Context(), base.layers[0]); err != nil || !ok {
		t.Fatalf("Has of a layer app holds: %v, %v", ok, err)
	}
	n := len(reg.requests("app"))
	p2.PushBlob(t.Context(), base.layers[0])
	if err := p2.Wait(t.Context(), base.layers[0].Digest); err != nil {
		t.Fatal(err)
	}
	if extra := reg.requests("app")[n:]; len(extra) != 0 {
		t.Errorf("PushBlob of a blob Has found sent %d requests (%s ...)", len(extra), extra[0].kind)
	}
	evs2.once(t, base.layers[0].Digest)

	other := newImage(t, store, nil, 1)
	pb, _ := newPusher(t, reg, "mirror", store)
	if err := pb.PushImage(t.Context(), other.desc, nil); err != nil {
		t.Fatal(err)
	}
	if ok, err := p2.Has(t.Context(), other.layers[0]); err != nil || ok {
		t.Errorf("Has in app of a layer only mirror holds: %v, %v", ok, err)
	}
}

// The manifest goes up under its tags once the registry has confirmed
// every blob, and only under its tags: the first tag's put is where a
// registry refuses it, before any tag has moved.
func TestPushImagePutsTagsLast(t *testing.T) {
	reg := newRegistry(t)
	store := newStore(t)
	img := newImage(t, store, nil, 3)
	p, _ := newPusher(t, reg, "app", store)
	tags := []name.Tag{tag(t, reg, "app", "v1"), tag(t, reg, "app", "latest")}
	if err := p.PushImage(t.Context(), img.desc, tags); err != nil {
		t.Fatal(err)
	}
	log := reg.requests("app", uploadCommit, manifestPut)
	first := slices.IndexFunc(log, func(r request) bool { return r.kind == manifestPut })
	if first < 0 {
		t.Fatal("the manifest was not put")
	}
	commits := 0
	for i, r := range log {
		switch {
		case r.kind == uploadCommit && i > first:
			t.Errorf("blob %s committed after the manifest", r.target)
		case r.kind == uploadCommit:
			commits++
		case r.kind == manifestPut && r.status != http.StatusCreated:
			t.Errorf("manifest put as %s refused: %d", r.target, r.status)
		case r.kind == manifestPut && r.target == img.desc.Digest.String():
			t.Errorf("manifest put by digest as well as under its tags")
		}
	}
	if commits != 4 {
		t.Errorf("%d blobs committed before the manifest, want 4 (config and 3 layers)", commits)
	}
	if got := reg.tags("app"); !slices.Equal(got, []string{"latest", "v1"}) {
		t.Errorf("tags %v, want latest and v1", got)
	}
}

// PushContent moves no tag: an image going to two repositories is tagged
// in neither when one of them refuses it, and in both once both hold it.
func TestNoTagMovesUntilEveryRepositoryHoldsTheImage(t *testing.T) {
	reg := newRegistry(t)
	store := newStore(t)
	img := newImage(t, store, nil, 2)
	reg.fail(uploadStart, "mirror", 1, http.StatusForbidden) // not transient: the push to mirror fails
	pa, _ := newPusher(t, reg, "app", store)
	pb, _ := newPusher(t, reg, "mirror", store)
	if err := pa.PushContent(t.Context(), img.desc); err != nil {
		t.Fatal(err)
	}
	reg.validate("app", img.desc.Digest.String())
	err := pb.PushContent(t.Context(), img.desc)
	if !errors.Is(err, errs.ErrRegistry) {
		t.Fatalf("PushContent to a repository that refuses a blob: %v, want a registry error", err)
	}
	for _, repo := range []string{"app", "mirror"} {
		if tags := reg.tags(repo); len(tags) != 0 {
			t.Errorf("%s has tags %v before every repository holds the image", repo, tags)
		}
	}

	pb2, _ := newPusher(t, reg, "mirror", store)
	if err := pb2.PushContent(t.Context(), img.desc); err != nil {
		t.Fatal(err)
	}
	for _, repo := range []string{"app", "mirror"} {
		if tags := reg.tags(repo); len(tags) != 0 {
			t.Errorf("PushContent tagged %s: %v", repo, tags)
		}
	}
	for _, p := range []struct {
		p    *Pusher
		repo string
	}{{pa, "app"}, {pb2, "mirror"}} {
		if err := p.p.Tag(t.Context(), img.desc, []name.Tag{tag(t, reg, p.repo, "v1")}); err != nil {
			t.Fatal(err)
		}
		reg.validate(p.repo, "v1")
	}
}

// A PushBlob of a digest whose upload is under way starts no other.
func TestPushBlobOfABlobUnderWayUploadsOnce(t *testing.T) {
	reg := newRegistry(t)
	store := newStore(t)
	img := newImage(t, store, nil, 1)
	l := img.layers[0]
	p, evs := newPusher(t, reg, "app", store)
	arrived, release := reg.hold(blobHead)
	p.PushBlob(t.Context(), l)
	<-arrived // the upload is under way: its HEAD check is at the registry
	p.PushBlob(t.Context(), l)
	release()
	if err := p.Wait(t.Context(), l.Digest); err != nil {
		t.Fatal(err)
	}
	if n := len(reg.requests("app", blobHead)); n != 1 {
		t.Errorf("%d HEAD checks, want 1", n)
	}
	if n := len(reg.requests("app", uploadStart)); n != 1 {
		t.Errorf("%d uploads started, want 1", n)
	}
	// Wait returns when the upload of the blob ends: the one event is the
	// one that sent the bytes.
	if ev := evs.once(t, l.Digest); ev.Uploaded != l.Size {
		t.Errorf("the upload's event says %d bytes of %d were sent", ev.Uploaded, l.Size)
	}
	if err := p.Wait(t.Context(), digest.FromString("never pushed")); err == nil {
		t.Error("Wait of a digest never pushed did not fail")
	}
}

// An index goes up after each of its images, whole, and only then under
// its tag.
func TestPushIndex(t *testing.T) {
	reg := newRegistry(t)
	store := newStore(t)
	imgs := []image{newImage(t, store, nil, 1), newImage(t, store, nil, 2)}
	idx := ocispecs.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispecs.MediaTypeImageIndex}
	for _, img := range imgs {
		idx.Manifests = append(idx.Manifests, img.desc)
	}
	dt, err := json.Marshal(idx)
	if err != nil {
		t.Fatal(err)
	}
	desc := putBlob(t, store, dt, types.OCIImageIndex)
	p, _ := newPusher(t, reg, "app", store)
	if err := p.PushImage(t.Context(), desc, []name.Tag{tag(t, reg, "app", "v1")}); err != nil {
		t.Fatal(err)
	}
	ri, err := remote.Index(tag(t, reg, "app", "v1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Index(ri); err != nil {
		t.Fatal(err)
	}
}

// A blob goes up in three requests, as distribution and containerd
// expect: a HEAD, the POST that starts the upload and one PUT with the
// whole blob. The image's config, made with its manifest, goes up without
// the HEAD.
func TestUploadIsOnePostAndOnePut(t *testing.T) {
	reg := newRegistry(t)
	store := newStore(t)
	img := newImage(t, store, nil, 2)
	p, _ := newPusher(t, reg, "app", store)
	if err := p.PushImage(t.Context(), img.desc, []name.Tag{tag(t, reg, "app", "v1")}); err != nil {
		t.Fatal(err)
	}
	reg.validate("app", "v1")
	n := len(img.blobs())
	for _, c := range []struct {
		k    kind
		want int
	}{{blobHead, n - 1}, {uploadStart, n}, {uploadPatch, 0}, {uploadCommit, n}} {
		if got := len(reg.requests("app", c.k)); got != c.want {
			t.Errorf("%d %s requests for %d blobs, want %d", got, c.k, n, c.want)
		}
	}
}

// A push pings the registry once: its blob checks, uploads and manifest
// all go on the one client, made early by Connect or by the first request.
func TestPushPingsTheRegistryOnce(t *testing.T) {
	for _, connect := range []bool{false, true} {
		reg := newRegistry(t)
		store := newStore(t)
		img := newImage(t, store, nil, 2)
		p, _ := newPusher(t, reg, "app", store)
		if connect {
			p.Connect(t.Context())
		}
		if err := p.PushImage(t.Context(), img.desc, []name.Tag{tag(t, reg, "app", "v1"), tag(t, reg, "app", "latest")}); err != nil {
			t.Fatal(err)
		}
		if got := len(reg.requests("", ping)); got != 1 {
			t.Errorf("Connect first %v: %d pings for one push, want 1", connect, got)
		}
		reg.validate("app", "v1")
	}
}

// A registry that cannot be reached when the push gets ready is reached
// again by the first request: Connect's failure is not kept.
func TestConnectFailureIsNotKept(t *testing.T) {
	reg := newRegistry(t)
	store := newStore(t)
	img := newImage(t, store, nil, 1)
	p, _ := newPusher(t, reg, "app", store)
	reg.fail(ping, "", 1, http.StatusNotFound) // not transient: no retry
	p.Connect(t.Context())
	if got := len(reg.requests("", ping)); got == 0 {
		t.Fatal("Connect sent no ping")
	}
	if err := p.PushImage(t.Context(), img.desc, []name.Tag{tag(t, reg, "app", "v1")}); err != nil {
		t.Fatalf("push after Connect failed: %v", err)
	}
	reg.validate("app", "v1")
}

// A small blob made with the manifest goes up without a HEAD first, even
// one the registry holds already; a big one is asked about first.
func TestPushNewAsksOnlyAboutBigBlobs(t *testing.T) {
	reg := newRegistry(t)
	store := newStore(t)
	small := newImage(t, store, nil, 1).layers[0]
	p, _ := newPusher(t, reg, "app", store)
	p.PushBlob(t.Context(), small)
	if err := p.Wait(t.Context(), small.Digest); err != nil {
		t.Fatal(err)
	}
	p2, _ := newPusher(t, reg, "app", store)
	p2.PushNew(t.Context(), small) // held already: sent again, unasked
	if err := p2.Wait(t.Context(), small.Digest); err != nil {
		t.Fatal(err)
	}
	if got := len(reg.requests("app", blobHead)); got != 1 {
		t.Errorf("%d HEAD requests, want 1 (PushBlob's)", got)
	}
	if got := len(reg.requests("app", uploadCommit)); got != 2 {
		t.Errorf("%d uploads, want 2", got)
	}

	big := putBlob(t, store, bytes.Repeat([]byte("x"), NewBlobUnasked+1), types.DockerLayer)
	p3, _ := newPusher(t, reg, "app", store)
	p3.PushNew(t.Context(), big)
	if err := p3.Wait(t.Context(), big.Digest); err != nil {
		t.Fatal(err)
	}
	if got := len(reg.requests("app", blobHead)); got != 2 {
		t.Errorf("%d HEAD requests, want 2: a big blob is asked about", got)
	}
}
