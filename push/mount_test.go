package push

import (
	"context"
	"net/http"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/google/go-containerregistry/pkg/name"
	digest "github.com/opencontainers/go-digest"
)

// pushed puts img into repo of reg, tagged v1, with a pusher of its own.
func pushed(t *testing.T, reg *registry, repo string, store content.Provider, img image) {
	t.Helper()
	p, _ := newPusher(t, reg, repo, store)
	if err := p.PushImage(t.Context(), img.desc, []name.Tag{tag(t, reg, repo, "v1")}); err != nil {
		t.Fatal(err)
	}
}

// A base image's blobs are mounted from its repository (WithMountFrom):
// nothing is uploaded, and the image is whole in the new repository.
func TestMountFromBaseImage(t *testing.T) {
	reg := newRegistry(t)
	store := newStore(t)
	img := newImage(t, store, nil, 3)
	pushed(t, reg, "base", store, img)

	p, evs := newPusher(t, reg, "app", store, WithMountFrom(tag(t, reg, "base", "v1")))
	if err := p.PushImage(t.Context(), img.desc, []name.Tag{tag(t, reg, "app", "v1")}); err != nil {
		t.Fatal(err)
	}
	reg.validate("app", "v1")
	if n := reg.uploaded("app"); n != 0 {
		t.Errorf("%d bytes uploaded, want every blob mounted", n)
	}
	mounted := 0
	for _, r := range reg.requests("app", mountRequest) {
		if r.status == http.StatusCreated {
			mounted++
		}
	}
	if mounted != len(img.blobs()) {
		t.Errorf("%d blobs mounted, want %d", mounted, len(img.blobs()))
	}
	for _, b := range img.blobs() {
		if ev := evs.once(t, b.Digest); ev.Uploaded != 0 {
			t.Errorf("%s: %d bytes uploaded", b.Digest, ev.Uploaded)
		}
	}
}

// A blob WithBlobSources names a repository for is mounted from there,
// by PushImage or ahead of it by Mount; its event says where from.
func TestMountFromBlobSources(t *testing.T) {
	reg := newRegistry(t)
	store := newStore(t)
	img := newImage(t, store, nil, 2)
	pushed(t, reg, "cache", store, img)
	cache := reg.repo("cache")
	sources := func(_ context.Context, repo name.Repository, _ digest.Digest) (name.Repository, bool) {
		if repo.RepositoryStr() != "app" {
			t.Errorf("sources asked about %s", repo)
		}
		return cache, true
	}
	p, evs := newPusher(t, reg, "app", store, WithBlobSources(sources))
	if ok, err := p.Mount(t.Context(), img.layers[0]); err != nil || !ok {
		t.Fatalf("Mount: %v, %v", ok, err)
	}
	if err := p.PushImage(t.Context(), img.desc, []name.Tag{tag(t, reg, "app", "v1")}); err != nil {
		t.Fatal(err)
	}
	reg.validate("app", "v1")
	if n := reg.uploaded("app"); n != 0 {
		t.Errorf("%d bytes uploaded, want every blob mounted", n)
	}
	if n := len(reg.requests("app", mountRequest)); n != len(img.blobs()) {
		t.Errorf("%d mount requests, want one per blob (%d)", n, len(img.blobs()))
	}
	for _, b := range img.blobs() {
		if ev := evs.once(t, b.Digest); ev.Uploaded != 0 || ev.MountedFrom != "cache" {
			t.Errorf("%s: %d bytes uploaded, mounted from %q, want 0 and cache", b.Digest, ev.Uploaded, ev.MountedFrom)
		}
	}
}

// A mount the registry declines (the named repository lacks the blob: 202
// and an upload session) falls back to an upload, and the image is whole.
func TestDeclinedMountFallsBackToUpload(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  func(reg *registry) Option
	}{
		{"blob sources", func(reg *registry) Option {
			return WithBlobSources(func(context.Context, name.Repository, digest.Digest) (name.Repository, bool) {
				return reg.repo("cache"), true
			})
		}},
		{"base image", func(reg *registry) Option { return WithMountFrom(tag(t, reg, "cache", "v1")) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := newRegistry(t)
			store := newStore(t)
			pushed(t, reg, "cache", store, newImage(t, store, nil, 1)) // another image
			img := newImage(t, store, nil, 2)
			p, evs := newPusher(t, reg, "app", store, tc.opt(reg))
			if err := p.PushImage(t.Context(), img.desc, []name.Tag{tag(t, reg, "app", "v1")}); err != nil {
				t.Fatal(err)
			}
			reg.validate("app", "v1")
			declined := 0
			for _, r := range reg.requests("app", mountRequest) {
				if r.status != http.StatusAccepted {
					t.Errorf("mount of %s: %d, want 202", r.target, r.status)
				}
				declined++
			}
			if declined != len(img.blobs()) {
				t.Errorf("%d mounts asked for, want one per blob (%d)", declined, len(img.blobs()))
			}
			if got := reg.uploaded("app"); got != img.size() {
				t.Errorf("%d bytes uploaded, want the image's %d", got, img.size())
			}
			for _, b := range img.blobs() {
				if ev := evs.once(t, b.Digest); ev.Uploaded != b.Size || ev.MountedFrom != "" {
					t.Errorf("%s: %d of %d bytes uploaded, mounted from %q", b.Digest, ev.Uploaded, b.Size, ev.MountedFrom)
				}
			}
		})
	}
}
