package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/strata-build/strata/cache"
	"github.com/strata-build/strata/cache/internal/cachetest"
)

func TestRegistryStoreDeltasAndCollection(t *testing.T) {
	host := cachetest.FaultyRegistry(t)
	ctx := t.Context()
	clock := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	cacheDir := t.TempDir()
	st, err := NewRegistryStore(host+"/strata/index:main", WithClock(func() time.Time { return clock }), withCacheDir(cacheDir))
	if err != nil {
		t.Fatal(err)
	}
	update := func(refs ...string) {
		t.Helper()
		x := cache.NewIndex()
		for _, r := range refs {
			m := cachetest.Image(host+"/app:"+r, "linux/amd64", "base", "RUN "+r)
			m.Indexed = clock
			x.Put(m)
		}
		if _, err := st.Update(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	load := func(want int) {
		t.Helper()
		x, err := st.Load(ctx)
		if err != nil || x.Len() != want {
			t.Fatalf("Load: %s images, %v; want %d", imagesOf(x), err, want)
		}
	}
	if x, err := st.Load(ctx); err != nil || x.Len() != 0 {
		t.Fatalf("empty store: %v %v", x, err)
	}
	update("a")
	load(1)
	mainRef, _ := name.ParseReference(host + "/strata/index:main")
	old, err := remote.Get(mainRef)
	if err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(time.Second)
	update("b")
	load(2)
	// A slow compaction that read before b's update overwrites REF: b's
	// delta still holds its entries.
	if err := remote.Put(mainRef, cachetest.RawManifest{MT: old.MediaType, Body: old.Manifest}); err != nil {
		t.Fatal(err)
	}
	load(2)

	clock = clock.Add(deltaGrace + time.Minute)
	update("c")
	load(3)
	tags, err := remote.List(mainRef.Context())
	if err != nil {
		t.Fatal(err)
	}
	var deltas []string
	for _, tag := range tags {
		if strings.Contains(tag, deltaInfix) {
			deltas = append(deltas, tag)
		}
	}
	if len(deltas) != 1 {
		t.Errorf("deltas left after collection: %v", deltas)
	}
	// What REF alone holds (what a frontend reads) is complete.
	p, _ := st.o.Puller(ctx)
	x, held, _, err := st.readImage(ctx, p, st.ref, true)
	if err != nil || x.Len() != 3 || len(held) != 3 {
		t.Errorf("REF holds %s images and %d deltas, %v", imagesOf(x), len(held), err)
	}

	// The compacted index is kept locally and read from there while REF's
	// layer is the same; a damaged copy is fetched again.
	blobs, _ := filepath.Glob(filepath.Join(cacheDir, "strata", "index", "blobs", "*"))
	if len(blobs) == 0 {
		t.Fatal("no local copy of the index")
	}
	for _, b := range blobs {
		if err := os.WriteFile(b, []byte("damaged"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	load(3)

	if _, err := NewRegistryStore(host + "/strata/index@sha256:" + strings.Repeat("a", 64)); err == nil {
		t.Error("digest ref accepted")
	}
	if _, err := NewRegistryStore(host + "/strata/index:" + strings.Repeat("t", 120)); err == nil {
		t.Error("overlong tag accepted")
	}
}

func imagesOf(x *cache.Index) string {
	if x == nil {
		return "no index"
	}
	return fmt.Sprint(x.Len())
}

// A damaged REF is read as empty and written anew by the next update; one
// written by a newer strata is an error, and is left as it is.
func TestRegistryStoreDamagedAndNewerIndex(t *testing.T) {
	host := cachetest.FaultyRegistry(t)
	ctx := t.Context()
	ref := host + "/strata/index:damaged"
	tag, _ := name.NewTag(ref)
	var good bytes.Buffer
	x := cache.NewIndex()
	x.Put(cachetest.Image(host+"/app:old", "linux/amd64", "base", "RUN old"))
	if err := x.Encode(&good); err != nil {
		t.Fatal(err)
	}
	put := func(data []byte) {
		t.Helper()
		img, err := encodedIndexImage(data, nil, "")
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.WriteIndex(tag, img); err != nil {
			t.Fatal(err)
		}
	}
	damaged := bytes.Clone(good.Bytes())
	damaged[len(damaged)/2] ^= 0xff
	put(damaged)

	st, err := NewRegistryStore(ref, withCacheDir("-"))
	if err != nil {
		t.Fatal(err)
	}
	if x, err := st.Load(ctx); err != nil || x.Len() != 0 {
		t.Fatalf("damaged index: %s, %v; want empty and no error", imagesOf(x), err)
	}
	changes := cache.NewIndex()
	changes.Put(cachetest.Image(host+"/app:new", "linux/amd64", "base", "RUN new"))
	if _, err := st.Update(ctx, changes); err != nil {
		t.Fatal(err)
	}
	if x, err := st.Load(ctx); err != nil || x.Len() != 1 {
		t.Fatalf("after the update: %s, %v; want app:new", imagesOf(x), err)
	}

	newer := bytes.Clone(good.Bytes())
	magic := len("STRATAIX") // the format version follows the file's magic
	binary.BigEndian.PutUint16(newer[magic:], binary.BigEndian.Uint16(newer[magic:])+1)
	put(newer)
	before, err := remote.Head(tag)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Load(ctx); !errors.Is(err, cache.ErrNewerFormat) || !strings.Contains(err.Error(), "upgrade strata") {
		t.Fatalf("newer index: %v, want ErrNewerFormat with a hint", err)
	}
	if _, err := st.Update(ctx, changes); !errors.Is(err, cache.ErrNewerFormat) {
		t.Fatalf("update over a newer index: %v, want ErrNewerFormat", err)
	}
	if after, err := remote.Head(tag); err != nil || after.Digest != before.Digest {
		t.Fatalf("the newer index was replaced: %v %v", after, err)
	}

	// An image strata did not write (no label) is never taken for a
	// damaged index and written over.
	appTag, _ := name.NewTag(host + "/team/app:latest")
	data, _ := tarFiles(map[string][]byte{"app": []byte("binary")})
	l, _ := layerFromBytes(data)
	app, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(appTag, app); err != nil {
		t.Fatal(err)
	}
	appDigest, _ := app.Digest()
	other, err := NewRegistryStore(appTag.String(), withCacheDir("-"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Load(ctx); err == nil || !strings.Contains(err.Error(), "is not a strata index") {
		t.Fatalf("an app image read as an index: %v", err)
	}
	if _, err := other.Update(ctx, changes); err == nil {
		t.Fatal("an update wrote over an app image")
	}
	if after, err := remote.Head(appTag); err != nil || after.Digest != appDigest {
		t.Fatalf("the app image was replaced: %v %v", after, err)
	}
	if tags, _ := remote.List(appTag.Context()); len(tags) != 1 {
		t.Errorf("tags beside the app image: %v", tags)
	}

	// An index larger than strata reads is refused, and never replaced.
	put(good.Bytes())
	defer func(n int64) { maxSharedIndex = n }(maxSharedIndex)
	maxSharedIndex = int64(good.Len() / 2)
	before, _ = remote.Head(tag)
	if _, err := st.Load(ctx); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("oversized index: %v, want it refused", err)
	}
	if _, err := st.Update(ctx, changes); err == nil {
		t.Fatal("an update wrote over an oversized index")
	}
	if after, err := remote.Head(tag); err != nil || after.Digest != before.Digest {
		t.Fatalf("the oversized index was replaced: %v %v", after, err)
	}
}

// A delta the registry lists but does not serve yet (its writer's tag is
// still being written) is not counted as merged by another writer's
// compaction: its entries are merged once it can be read, never lost.
func TestRegistryStoreDeltaNotYetReadable(t *testing.T) {
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	var mu sync.Mutex
	hidden := map[string]bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hide := false
		for tag := range hidden {
			hide = hide || r.Method != http.MethodPut && strings.HasSuffix(r.URL.Path, "/manifests/"+tag)
		}
		mu.Unlock()
		if hide {
			http.Error(w, `{"errors":[{"code":"MANIFEST_UNKNOWN"}]}`, http.StatusNotFound)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	ctx := t.Context()
	st, err := NewRegistryStore(host+"/strata/index:main", withCacheDir("-"))
	if err != nil {
		t.Fatal(err)
	}
	// Writer A's delta is listed but not yet served.
	a := cache.NewIndex()
	a.Put(cachetest.Image(host+"/app:a", "linux/amd64", "base", "RUN a"))
	tagA := st.deltaTag()
	img, err := indexImage(a, nil, tagA)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(st.ref.Context().Tag(tagA), img); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	hidden[tagA] = true
	mu.Unlock()
	// Writer B compacts meanwhile.
	b := cache.NewIndex()
	b.Put(cachetest.Image(host+"/app:b", "linux/amd64", "base", "RUN b"))
	if _, err := st.Update(ctx, b); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	delete(hidden, tagA)
	mu.Unlock()
	x, err := st.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := x.Get(host+"/app:a", "linux/amd64"); !ok || x.Len() != 2 {
		t.Fatalf("after the compaction: %s; want app:a and app:b", imagesOf(x))
	}
}
