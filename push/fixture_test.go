package push

import (
	"bytes"
	"io"
	"os"
	"sync"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	contentlocal "github.com/containerd/containerd/v2/plugins/content/local"
	cerrdefs "github.com/containerd/errdefs"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"
)

func TestMain(m *testing.M) {
	// Credentials come from the docker config: an empty one, whatever the
	// machine running the tests has.
	dir, err := os.MkdirTemp("", "strata-push-test-")
	if err != nil {
		panic(err)
	}
	os.Setenv("DOCKER_CONFIG", dir)
	logrus.SetLevel(logrus.ErrorLevel) // the content store's notes on the file system
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// newStore is a local OCI content store, as a build fills.
func newStore(t *testing.T) content.Store {
	t.Helper()
	s, err := contentlocal.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// image is an image whose blobs are in a local content store.
type image struct {
	img    v1.Image
	desc   ocispecs.Descriptor   // the manifest
	config ocispecs.Descriptor   // its config
	layers []ocispecs.Descriptor // its layers
}

// blobs returns the config and layers.
func (i image) blobs() []ocispecs.Descriptor {
	return append([]ocispecs.Descriptor{i.config}, i.layers...)
}

// size is the number of bytes of its config and layers.
func (i image) size() int64 {
	var n int64
	for _, b := range i.blobs() {
		n += b.Size
	}
	return n
}

// newImage puts in store an image of base's layers (none when base is
// nil) and n new random ones of a few kilobytes.
func newImage(t *testing.T, store content.Store, base v1.Image, n int) image {
	t.Helper()
	img, err := random.Image(4<<10, int64(n))
	if err != nil {
		t.Fatal(err)
	}
	if base != nil {
		ls, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		if img, err = mutate.AppendLayers(base, ls...); err != nil {
			t.Fatal(err)
		}
	}
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	out := image{img: img}
	for _, l := range ls {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		dt, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		mt, err := l.MediaType()
		if err != nil {
			t.Fatal(err)
		}
		out.layers = append(out.layers, putBlob(t, store, dt, mt))
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	out.config = putBlob(t, store, cfg, types.DockerConfigJSON)
	mf, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	mt, err := img.MediaType()
	if err != nil {
		t.Fatal(err)
	}
	out.desc = putBlob(t, store, mf, mt)
	return out
}

// putBlob writes dt into store.
func putBlob(t *testing.T, store content.Store, dt []byte, mt types.MediaType) ocispecs.Descriptor {
	t.Helper()
	desc := ocispecs.Descriptor{MediaType: string(mt), Digest: digest.FromBytes(dt), Size: int64(len(dt))}
	if err := content.WriteBlob(t.Context(), store, "test-"+desc.Digest.String(), bytes.NewReader(dt), desc); err != nil && !cerrdefs.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	return desc
}

// events records what a Pusher reports, by blob.
type events struct {
	mu sync.Mutex
	m  map[digest.Digest][]Event
}

func (e *events) add(ev Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.m == nil {
		e.m = map[digest.Digest][]Event{}
	}
	e.m[ev.Digest] = append(e.m[ev.Digest], ev)
}

// of returns the events of d.
func (e *events) of(d digest.Digest) []Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Event(nil), e.m[d]...)
}

// once returns the one event of d, failing the test unless there was
// exactly one.
func (e *events) once(t *testing.T, d digest.Digest) Event {
	t.Helper()
	evs := e.of(d)
	if len(evs) != 1 {
		t.Fatalf("%d events for %s, want 1", len(evs), d)
	}
	if evs[0].Err != nil {
		t.Fatalf("%s: %v", d, evs[0].Err)
	}
	return evs[0]
}

// newPusher is a Pusher of store's blobs to repo in reg, with its events.
func newPusher(t *testing.T, reg *registry, repo string, store content.Provider, opts ...Option) (*Pusher, *events) {
	t.Helper()
	evs := &events{}
	p, err := New(reg.repo(repo), store, append([]Option{WithEvents(evs.add)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return p, evs
}

// tag is tag in repo of reg.
func tag(t *testing.T, reg *registry, repo, tag string) name.Tag {
	t.Helper()
	tg, err := name.NewTag(reg.host + "/" + repo + ":" + tag)
	if err != nil {
		t.Fatal(err)
	}
	return tg
}
