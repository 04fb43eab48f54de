package stream

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/stargz-snapshotter/estargz"
	"github.com/klauspost/compress/zstd"
	"github.com/moby/buildkit/client"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-build/strata/cache"
)

// layerTar is an uncompressed layer with one file of size n stamped at mtime.
func layerTar(t testing.TB, mtime time.Time, n int) []byte {
	t.Helper()
	body := bytes.Repeat([]byte("strata layer "), n/13+1)[:n]
	return tarOf(t,
		tarEntry{&tar.Header{Name: "app/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mtime, Format: tar.FormatPAX, AccessTime: mtime}, nil},
		tarEntry{&tar.Header{Name: "app/data", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(n), ModTime: mtime}, body})
}

// filesTar is a layer of one file per body, f0, f1, ...
func filesTar(t testing.TB, mtime time.Time, bodies ...[]byte) []byte {
	t.Helper()
	var es []tarEntry
	for i, body := range bodies {
		es = append(es, tarEntry{&tar.Header{Name: fmt.Sprintf("f%d", i), Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body)), ModTime: mtime}, body})
	}
	return tarOf(t, es...)
}

type tarEntry struct {
	hdr  *tar.Header
	body []byte
}

func tarOf(t testing.TB, es ...tarEntry) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range es {
		if err := tw.WriteHeader(e.hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func testStore(t testing.TB) content.Store {
	t.Helper()
	s, err := newPushStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func putLayer(t *testing.T, s content.Store, dt []byte) ocispecs.Descriptor {
	t.Helper()
	d := ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageLayer, Digest: digest.FromBytes(dt), Size: int64(len(dt))}
	if err := content.WriteBlob(context.Background(), s, "t-"+d.Digest.String(), bytes.NewReader(dt), d); err != nil {
		t.Fatal(err)
	}
	return d
}

// putImage writes an image manifest with config cfg and layers into s.
func putImage(t *testing.T, s content.Store, cfg []byte, layers ...ocispecs.Descriptor) ocispecs.Descriptor {
	t.Helper()
	cfgDesc := ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageConfig, Digest: digest.FromBytes(cfg), Size: int64(len(cfg))}
	mf, _ := json.Marshal(ocispecs.Manifest{MediaType: ocispecs.MediaTypeImageManifest, Config: cfgDesc, Layers: layers})
	mfDesc := ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageManifest, Digest: digest.FromBytes(mf), Size: int64(len(mf))}
	for _, b := range []struct {
		d  ocispecs.Descriptor
		dt []byte
	}{{cfgDesc, cfg}, {mfDesc, mf}} {
		if err := content.WriteBlob(t.Context(), s, b.d.Digest.String(), bytes.NewReader(b.dt), b.d); err != nil {
			t.Fatal(err)
		}
	}
	return mfDesc
}

func convertOne(t *testing.T, compression string, epoch *time.Time, layer []byte) (*conversion, content.Store) {
	t.Helper()
	s := testStore(t)
	c := newConverter(s, compression, epoch, nil)
	cv := c.start(t.Context(), putLayer(t, s, layer), nil)
	if err := cv.wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	return cv, s
}

func uncompressed(t *testing.T, s content.Store, cv *conversion) []byte {
	t.Helper()
	dt, err := content.ReadBlob(t.Context(), s, cv.desc)
	if err != nil {
		t.Fatal(err)
	}
	var r io.Reader = bytes.NewReader(dt)
	switch cv.desc.MediaType {
	case ocispecs.MediaTypeImageLayerGzip:
		if r, err = gzip.NewReader(r); err != nil {
			t.Fatal(err)
		}
	case ocispecs.MediaTypeImageLayerZstd:
		zr, err := zstd.NewReader(r)
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		r = zr
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// tarHeaders are the headers of the tar archive dt, up to its end.
func tarHeaders(t *testing.T, dt []byte) []*tar.Header {
	t.Helper()
	var hs []*tar.Header
	tr := tar.NewReader(bytes.NewReader(dt))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return hs
		}
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
}

func TestConvertRewritesTimesAndCompresses(t *testing.T) {
	epoch := time.Unix(1700000000, 0).UTC()
	late := epoch.Add(48 * time.Hour)
	for _, comp := range []string{"estargz", "gzip", "zstd", "uncompressed"} {
		t.Run(comp, func(t *testing.T) {
			// Two layers that differ only in times later than the epoch
			// become the same layer.
			a, sa := convertOne(t, comp, &epoch, layerTar(t, late, 3<<20))
			b, _ := convertOne(t, comp, &epoch, layerTar(t, late.Add(time.Hour), 3<<20))
			if a.desc.Digest != b.desc.Digest || a.diff != b.diff {
				t.Fatalf("same files at different times gave %s and %s", a.desc.Digest, b.desc.Digest)
			}
			tarDt := uncompressed(t, sa, a)
			if got := digest.FromBytes(tarDt); got != a.diff {
				t.Errorf("diff_id %s, the layer uncompresses to %s", a.diff, got)
			}
			if a.size != int64(len(tarDt)) {
				t.Errorf("size %d, uncompressed %d bytes", a.size, len(tarDt))
			}
			for _, h := range tarHeaders(t, tarDt) {
				if !h.ModTime.Equal(epoch) || (!h.AccessTime.IsZero() && !h.AccessTime.Equal(epoch)) {
					t.Errorf("%s: mtime %s atime %s, want %s", h.Name, h.ModTime, h.AccessTime, epoch)
				}
			}
			want := map[string]string{"estargz": ocispecs.MediaTypeImageLayerGzip, "gzip": ocispecs.MediaTypeImageLayerGzip, "zstd": ocispecs.MediaTypeImageLayerZstd, "uncompressed": ocispecs.MediaTypeImageLayer}[comp]
			if a.desc.MediaType != want {
				t.Errorf("media type %s, want %s", a.desc.MediaType, want)
			}
			if comp != "uncompressed" && a.desc.Size >= a.size {
				t.Errorf("compressed %d bytes of %d", a.desc.Size, a.size)
			}
		})
	}
}

func TestConvertKeepsEarlierTimes(t *testing.T) {
	epoch := time.Unix(1700000000, 0).UTC()
	early := epoch.Add(-time.Hour)
	cv, s := convertOne(t, "gzip", &epoch, layerTar(t, early, 1000))
	h, err := tar.NewReader(bytes.NewReader(uncompressed(t, s, cv))).Next()
	if err != nil {
		t.Fatal(err)
	}
	if !h.ModTime.Equal(early) {
		t.Errorf("mtime %s, want %s kept", h.ModTime, early)
	}
	// Without an epoch, times stay and the tar is only compressed.
	late := time.Now().Truncate(time.Second)
	in := layerTar(t, late, 1000)
	cv, s = convertOne(t, "gzip", nil, in)
	if !bytes.Equal(uncompressed(t, s, cv), in) || cv.diff != digest.FromBytes(in) {
		t.Error("with no epoch the layer's tar changed")
	}
}

// A layer BuildKit did not send (the registry holds it as it is) stays.
func TestConvertLeavesLayersNotSent(t *testing.T) {
	epoch := time.Unix(0, 0)
	c := newConverter(testStore(t), "gzip", &epoch, nil)
	d := ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageLayer, Digest: digest.FromString("absent"), Size: 100}
	cv := c.start(t.Context(), d, nil)
	if err := cv.wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	if cv.desc.Digest != d.Digest || cv.diff != d.Digest {
		t.Fatalf("got %+v, want the layer unchanged", cv.desc)
	}
	if c.converts(ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageLayerGzip}) {
		t.Error("a compressed layer (base image, cache source) is converted")
	}
	if newConverter(nil, "uncompressed", nil, nil).converts(d) {
		t.Error("uncompressed with no epoch has nothing to do, yet converts")
	}
}

func TestConvertImage(t *testing.T) {
	ctx := t.Context()
	s := testStore(t)
	epoch := time.Unix(1700000000, 0).UTC()
	base := []byte("base layer, compressed in the registry")
	baseDesc := ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageLayerGzip, Digest: digest.FromBytes(base), Size: int64(len(base))}
	l1 := putLayer(t, s, layerTar(t, epoch.Add(time.Hour), 5000))
	l1.Annotations = map[string]string{"containerd.io/uncompressed": l1.Digest.String(), "keep": "me"}
	cfg, _ := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"rootfs": map[string]any{"type": "layers", "diff_ids": []digest.Digest{digest.FromString("b"), l1.Digest}},
		"config": map[string]any{"Cmd": []string{"sh"}},
	})
	mfDesc := putImage(t, s, cfg, baseDesc, l1)
	c := newConverter(s, "gzip", &epoch, nil)
	nd, err := c.convertImage(ctx, mfDesc, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got ocispecs.Manifest
	dt, _ := content.ReadBlob(ctx, s, nd)
	if err := json.Unmarshal(dt, &got); err != nil {
		t.Fatal(err)
	}
	cv := c.start(ctx, l1, nil)
	if got.Layers[0].Digest != baseDesc.Digest {
		t.Errorf("base layer became %s", got.Layers[0].Digest)
	}
	if got.Layers[1].Digest != cv.desc.Digest || got.Layers[1].MediaType != ocispecs.MediaTypeImageLayerGzip {
		t.Errorf("layer 1 is %+v, want %s gzip", got.Layers[1], cv.desc.Digest)
	}
	if got.Layers[1].Annotations["keep"] != "me" || got.Layers[1].Annotations["containerd.io/uncompressed"] != "" {
		t.Errorf("annotations %v", got.Layers[1].Annotations)
	}
	var gotCfg struct {
		RootFS struct {
			DiffIDs []digest.Digest `json:"diff_ids"`
		} `json:"rootfs"`
		Config map[string]any `json:"config"`
	}
	cdt, _ := content.ReadBlob(ctx, s, got.Config)
	if err := json.Unmarshal(cdt, &gotCfg); err != nil {
		t.Fatal(err)
	}
	if gotCfg.RootFS.DiffIDs[1] != cv.diff || gotCfg.RootFS.DiffIDs[0] != digest.FromString("b") {
		t.Errorf("diff_ids %v", gotCfg.RootFS.DiffIDs)
	}
	if gotCfg.Config["Cmd"] == nil {
		t.Error("the rest of the config was lost")
	}
}

func TestLayerMemo(t *testing.T) {
	path := filepath.Join(t.TempDir(), "strata", "layers.json")
	m := openLayerMemo(path)
	e := memoEntry{Digest: digest.FromString("c"), Size: 10, MediaType: ocispecs.MediaTypeImageLayerGzip, DiffID: digest.FromString("u"), Bytes: 20}
	m.put("k1", e)
	// Another build saves in between: both are kept.
	other := openLayerMemo(path)
	other.put("k2", e)
	if err := other.save(); err != nil {
		t.Fatal(err)
	}
	if err := m.save(); err != nil {
		t.Fatal(err)
	}
	again := openLayerMemo(path)
	for _, k := range []string{"k1", "k2"} {
		if got, ok := again.get(k); !ok || got.Digest != e.Digest || got.DiffID != e.DiffID || got.Bytes != 20 {
			t.Errorf("%s: %+v %v", k, got, ok)
		}
	}
	// A corrupt or wrong entry is not used; a corrupt file starts again.
	again.put("bad", memoEntry{Digest: "sha256:nothex", Size: 1, DiffID: e.DiffID})
	if _, ok := again.get("bad"); ok {
		t.Error("an entry with an invalid digest was used")
	}
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, ok := openLayerMemo(path).get("k1"); ok {
		t.Error("a corrupt memo was read")
	}
	if openLayerMemo("") != nil {
		t.Error("no path should give no memo")
	}
}

func TestImportedRecordsFillMissingLayers(t *testing.T) {
	s := testStore(t)
	d0, d1, d2 := digest.FromString("l0"), digest.FromString("l1"), digest.FromString("l2")
	k1, k2, k3 := digest.FromString("k1"), digest.FromString("k2"), digest.FromString("k3")
	when := time.Unix(1700000000, 0).UTC()
	enc := func(recs []map[string]any) string {
		dt, _ := json.Marshal(recs)
		return base64.StdEncoding.EncodeToString(dt)
	}
	// The source holds k1 in layer 1 and k2 in layer 2, over layers the
	// image shares up to layer 1 only.
	src := map[string]any{"os": "linux", "architecture": "amd64", "rootfs": map[string]any{"diff_ids": []digest.Digest{d0, d1, digest.FromString("other")}},
		"moby.buildkit.cache.v0": enc([]map[string]any{
			{"digest": k1, "layers": []map[string]any{{"layer": 1, "createdAt": when}}},
			{"digest": k2, "layers": []map[string]any{{"layer": 2, "createdAt": when}}},
		})}
	srcDt, _ := json.Marshal(src)
	sc, ok := parseSourceCache(srcDt)
	if !ok {
		t.Fatal("source config not read")
	}
	cfg, _ := json.Marshal(map[string]any{"os": "linux", "architecture": "amd64", "rootfs": map[string]any{"type": "layers", "diff_ids": []digest.Digest{d0, d1, d2}},
		"moby.buildkit.cache.v0": enc([]map[string]any{
			{"digest": k1, "inputs": [][]map[string]any{{{"link": 1}}}},
			{"digest": k2},
			{"digest": k3, "layers": []map[string]any{{"layer": 2, "createdAt": when}}},
		})})
	mfDesc := putImage(t, s, cfg)
	recs := appliedRecords(t, s, mfDesc, sc)
	if len(recs[0].Results) != 1 || recs[0].Results[0].LayerIndex != 1 || recs[0].raw["inputs"] == nil {
		t.Errorf("k1: %+v %s, want layer 1 from the source and its inputs kept", recs[0].Results, recs[0].raw["inputs"])
	}
	if len(recs[1].Results) != 0 {
		t.Errorf("k2 got %+v, but the source's layer 2 is not the image's", recs[1].Results)
	}
	if len(recs[2].Results) != 1 || recs[2].Results[0].LayerIndex != 2 {
		t.Errorf("k3: %+v, want its own layer kept", recs[2].Results)
	}
}

// The bytes strata pushes must not depend on the builder's core count.
func TestConvertIndependentOfCores(t *testing.T) {
	epoch := time.Unix(1700000000, 0).UTC()
	random := make([]byte, 3<<19)
	for i := range random {
		random[i] = byte(i*7919 + i/13)
	}
	layer := filesTar(t, epoch.Add(time.Hour), random, bytes.Repeat([]byte("strata layer "), 100000))
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, comp := range []string{"estargz", "gzip", "zstd"} {
		var got []digest.Digest
		for _, procs := range []int{1, 4} {
			runtime.GOMAXPROCS(procs)
			cv, _ := convertOne(t, comp, &epoch, layer)
			got = append(got, cv.desc.Digest)
		}
		if got[0] != got[1] {
			t.Errorf("%s: 1 core gave %s, 4 cores %s", comp, got[0], got[1])
		}
	}
}

// An eStargz layer is one the stargz snapshotter can mount lazily: its
// table of contents matches the digest annotated, and each file can be
// read on its own from its chunks.
func TestEstargzLayerIsLazilyReadable(t *testing.T) {
	epoch := time.Unix(1700000000, 0).UTC()
	big := bytes.Repeat([]byte("a dependency of the build "), 400000) // 10 MB: three chunks
	small := []byte("the one file a later step reads\n")
	cv, s := convertOne(t, "estargz", &epoch, filesTar(t, epoch, big, small))
	dt, err := content.ReadBlob(t.Context(), s, cv.desc)
	if err != nil {
		t.Fatal(err)
	}
	r, err := estargz.Open(io.NewSectionReader(bytes.NewReader(dt), 0, int64(len(dt))))
	if err != nil {
		t.Fatalf("not an eStargz layer: %v", err)
	}
	toc, err := digest.Parse(cv.desc.Annotations[estargz.TOCJSONDigestAnnotation])
	if err != nil {
		t.Fatalf("TOC digest annotation: %v", err)
	}
	if _, err := r.VerifyTOC(toc); err != nil {
		t.Fatalf("the table of contents does not match its annotation: %v", err)
	}
	if got := cv.desc.Annotations[estargz.StoreUncompressedSizeAnnotation]; got != strconv.FormatInt(cv.size, 10) {
		t.Errorf("uncompressed size annotation %s, want %d", got, cv.size)
	}
	for i, want := range [][]byte{big, small} {
		f, err := r.OpenFile(fmt.Sprintf("f%d", i))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(f)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("file %d: %d bytes (%v), want %d", i, len(got), err, len(want))
		}
	}
	// Unpacked as gzip, the layer holds the files and nothing else.
	var names []string
	for _, h := range tarHeaders(t, uncompressed(t, s, cv)) {
		names = append(names, h.Name)
	}
	if !slices.Equal(names, []string{"f0", "f1"}) {
		t.Errorf("unpacked, the layer holds %v, want [f0 f1]", names)
	}
	if ents := len(cv.desc.Annotations); ents != 2 {
		t.Errorf("%d annotations, want the TOC digest and the uncompressed size", ents)
	}
}

// BenchmarkConvert compresses a 40 MB layer of many small files and a few
// large ones, in each compression, from the store.
func BenchmarkConvert(b *testing.B) {
	epoch := time.Unix(1700000000, 0).UTC()
	var bodies [][]byte
	for i := range 2000 {
		bodies = append(bodies, []byte(strings.Repeat(fmt.Sprintf("module %d exports a function\n", i), 100+i%300)))
	}
	noise := make([]byte, 8<<20)
	for i := range noise {
		noise[i] = byte((i*7919 + i/13) ^ (i >> 7))
	}
	bodies = append(bodies, noise, bytes.Repeat([]byte("a large text file of a dependency "), 400000))
	layer := filesTar(b, epoch, bodies...)
	for _, comp := range []string{"estargz", "gzip", "zstd"} {
		b.Run(comp, func(b *testing.B) {
			b.SetBytes(int64(len(layer)))
			for b.Loop() {
				s := testStore(b)
				c := newConverter(s, comp, &epoch, nil)
				d := digest.FromBytes(layer)
				if err := content.WriteBlob(b.Context(), s, "l", bytes.NewReader(layer), ocispecs.Descriptor{Digest: d, Size: int64(len(layer))}); err != nil {
					b.Fatal(err)
				}
				if err := c.start(b.Context(), ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageLayer, Digest: d, Size: int64(len(layer))}, nil).wait(b.Context()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// A gzip layer with no table of contents (a base image's) becomes eStargz
// with its files and their times as they were; one that is eStargz
// already, or any layer in another compression, is left alone.
func TestRecompressGzipLayer(t *testing.T) {
	epoch := time.Unix(1700000000, 0).UTC()
	late := epoch.Add(48 * time.Hour)
	in := filesTar(t, late, []byte("a file of the base image\n"))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(in); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	s := testStore(t)
	c := newConverter(s, "estargz", &epoch, nil)
	base := putLayer(t, s, gz.Bytes())
	base.MediaType = ocispecs.MediaTypeImageLayerGzip
	if c.converts(base) {
		t.Fatal("a gzip base layer is rewritten for a builder that does not pull lazily")
	}
	c.lazy = true
	if !c.converts(base) {
		t.Fatal("a gzip base layer is not rewritten as eStargz")
	}
	cv := c.start(t.Context(), base, nil)
	if err := cv.wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	if cv.desc.Annotations[estargz.TOCJSONDigestAnnotation] == "" {
		t.Fatalf("not eStargz: %+v", cv.desc)
	}
	hs := tarHeaders(t, uncompressed(t, s, cv))
	if len(hs) != 1 || !hs[0].ModTime.Equal(late) {
		t.Errorf("the base layer's files or times changed: %+v", hs)
	}
	for _, tc := range []struct {
		comp string
		desc ocispecs.Descriptor
	}{
		{"estargz", cv.desc},
		{"gzip", base},
		{"zstd", base},
	} {
		other := newConverter(s, tc.comp, &epoch, nil)
		other.lazy = true
		if other.converts(tc.desc) {
			t.Errorf("%s: %s layer %+v would be converted", tc.comp, tc.desc.MediaType, tc.desc.Annotations)
		}
	}
}

// Gzip layers are rewritten as eStargz up to rewriteLimit bytes in all (per
// platform when platforms share the converter), in the order they are
// asked about, each answered the same every time; the others are
// reported. With no limit, every one is.
func TestRecompressLimit(t *testing.T) {
	gz := func(n int64, b byte) ocispecs.Descriptor {
		return ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageLayerGzip, Digest: digest.FromBytes([]byte{b}), Size: n}
	}
	small, mid, big, last := gz(rewriteLimit/4, 1), gz(rewriteLimit/2, 2), gz(rewriteLimit/2, 3), gz(rewriteLimit/8, 4)
	c := newConverter(testStore(t), "estargz", nil, nil)
	c.lazy = true
	for _, tc := range []struct {
		desc ocispecs.Descriptor
		want bool
	}{{small, true}, {mid, true}, {big, false}, {last, true}, {big, false}, {small, true}} {
		if got := c.recompresses(tc.desc); got != tc.want {
			t.Errorf("layer of %d bytes: rewritten %v, want %v", tc.desc.Size, got, tc.want)
		}
	}
	if n, size := c.keptAsGzip(); n != 1 || size != big.Size {
		t.Errorf("kept as gzip: %d layers, %d bytes; want 1, %d", n, size, big.Size)
	}
	all := newConverter(testStore(t), "estargz", nil, nil)
	all.lazy, all.rewriteLeft = true, -1
	for _, d := range []ocispecs.Descriptor{big, mid, gz(4*rewriteLimit, 5)} {
		if !all.recompresses(d) {
			t.Errorf("with no limit, a layer of %d bytes is not rewritten", d.Size)
		}
	}
	if n, _ := all.keptAsGzip(); n != 0 {
		t.Errorf("with no limit, %d layers kept as gzip", n)
	}
	// Two platforms, each with a base of three quarters of the limit and
	// one layer they share: every layer of both is rewritten, as each
	// platform's alone would be.
	shared := newConverter(testStore(t), "estargz", nil, nil)
	shared.lazy = true
	shared.sharedBy(2)
	for _, d := range []ocispecs.Descriptor{small, mid, gz(rewriteLimit/2, 6), small, gz(rewriteLimit/4, 7)} {
		if !shared.recompresses(d) {
			t.Errorf("shared by two platforms: a layer of %d bytes is not rewritten", d.Size)
		}
	}
	if n, _ := shared.keptAsGzip(); n != 0 {
		t.Errorf("shared by two platforms: %d layers kept as gzip", n)
	}
}

// Reused layers are read in place only when the cache sources are on the
// registry of every tag.
func TestOneRegistry(t *testing.T) {
	imports := func(refs ...string) []client.CacheOptionsEntry {
		var out []client.CacheOptionsEntry
		for _, r := range refs {
			out = append(out, client.CacheOptionsEntry{Type: "registry", Attrs: map[string]string{"ref": r}})
		}
		return out
	}
	for _, tc := range []struct {
		tags, refs []string
		want       bool
	}{
		{[]string{"r.example/app:v2"}, []string{"r.example/app:v1", "r.example/other@sha256:1"}, true},
		{[]string{"r.example/app:v2", "r.example/app:latest"}, nil, true},
		{[]string{"r.example/app:v2"}, []string{"cache.example/app:v1"}, false},
		{[]string{"r.example/app:v2", "mirror.example/app:v2"}, []string{"r.example/app:v1"}, false},
	} {
		if got := oneRegistry(Config{Tags: tc.tags, Base: "docker.io/library/busybox"}, imports(tc.refs...)); got != tc.want {
			t.Errorf("tags %v, cache %v: %v, want %v", tc.tags, tc.refs, got, tc.want)
		}
	}
}

// An image whose base layer strata rewrote as eStargz (its diff_id is the
// rewrite's, its manifest names the diff_id it was rewritten from) takes
// the records of a source built on the gzip base, and the other way round.
func TestImportedRecordsAcrossRewrittenBase(t *testing.T) {
	gzipBase, estargzBase, d1 := digest.FromString("gzip base"), digest.FromString("estargz base"), digest.FromString("l1")
	k1 := digest.FromString("k1")
	when := time.Unix(1700000000, 0).UTC()
	enc := func(recs []map[string]any) string {
		dt, _ := json.Marshal(recs)
		return base64.StdEncoding.EncodeToString(dt)
	}
	config := func(base digest.Digest, recs []map[string]any) []byte {
		dt, _ := json.Marshal(map[string]any{"os": "linux", "architecture": "amd64", "rootfs": map[string]any{"type": "layers", "diff_ids": []digest.Digest{base, d1}},
			"moby.buildkit.cache.v0": enc(recs)})
		return dt
	}
	withRecord := []map[string]any{{"digest": k1, "layers": []map[string]any{{"layer": 1, "createdAt": when}}}}
	without := []map[string]any{{"digest": k1}}
	rewritten := ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageLayerGzip, Digest: digest.FromString("estargz blob"), Size: 1,
		Annotations: map[string]string{cache.AnnotationSourceDiffID: gzipBase.String()}}
	plain := ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageLayerGzip, Digest: digest.FromString("gzip blob"), Size: 1}
	top := ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageLayerGzip, Digest: digest.FromString("top blob"), Size: 1}

	for _, tc := range []struct {
		name                string
		image, source       digest.Digest
		imageBase           ocispecs.Descriptor
		sourceRewrittenFrom string
	}{
		{name: "image rewritten", image: estargzBase, imageBase: rewritten, source: gzipBase},
		{name: "source rewritten", image: gzipBase, imageBase: plain, source: estargzBase, sourceRewrittenFrom: gzipBase.String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := testStore(t)
			sc, ok := parseSourceCache(config(tc.source, withRecord))
			if !ok {
				t.Fatal("source config not read")
			}
			sc.diffIDs = baseDiffIDs(sc.diffIDs, func(i int) string {
				if i == 0 {
					return tc.sourceRewrittenFrom
				}
				return ""
			})
			mfDesc := putImage(t, s, config(tc.image, without), tc.imageBase, top)
			recs := appliedRecords(t, s, mfDesc, sc)
			if len(recs[0].Results) != 1 || recs[0].Results[0].LayerIndex != 1 {
				t.Errorf("k1: %+v, want layer 1 from the source", recs[0].Results)
			}
		})
	}
}

// appliedRecords applies the records of sources to the image desc in s and
// returns the inline cache records of the image that gives.
func appliedRecords(t *testing.T, s content.Store, desc ocispecs.Descriptor, sources ...sourceCache) []cacheRecord {
	t.Helper()
	ctx := t.Context()
	r := &importedRecords{done: make(chan struct{}), sources: sources}
	close(r.done)
	nd, err := r.apply(ctx, s, desc)
	if err != nil {
		t.Fatal(err)
	}
	var got ocispecs.Manifest
	dt, _ := content.ReadBlob(ctx, s, nd)
	_ = json.Unmarshal(dt, &got)
	cdt, _ := content.ReadBlob(ctx, s, got.Config)
	var c imageConfigCache
	if err := json.Unmarshal(cdt, &c); err != nil {
		t.Fatal(err)
	}
	recs, err := decodeInlineCache(c.Cache)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}
