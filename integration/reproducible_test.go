package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// With --reproducible, the same context built on two fresh builders gives
// the same image digest: SOURCE_DATE_EPOCH comes from the context's last git
// commit and layer timestamps are rewritten to it.
func TestReproducibleOnFreshBuilders(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Dockerfile": fmt.Sprintf("FROM %s\nCOPY app.txt /app/\nRUN mkdir -p /out && cp /app/app.txt /out/ && touch /out/stamp\n", env.Busybox),
		"app.txt":    "same inputs\n",
	})
	git := func(args ...string) {
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@example.com"}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_COMMITTER_DATE=2024-01-02T03:04:05Z", "GIT_AUTHOR_DATE=2024-01-02T03:04:05Z")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	git("init", "-q")
	git("add", ".")
	git("commit", "-q", "-m", "v1")

	var digests []string
	for i := range 2 {
		bk, err := env.StartBuildkitd(t.Context(), fmt.Sprintf("fresh-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		ref := fmt.Sprintf("%s/repro/app:b%d", env.Registry.Host, i)
		meta := filepath.Join(t.TempDir(), "m.json")
		code, _, stderr := strata(t, "build", "--builder", bk.Addr(), "--progress", "plain", "--reproducible", "-t", ref, "--push", "--metadata-file", meta, dir)
		_ = bk.Stop(20 * time.Second)
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, tail(stderr, 20))
		}
		m := readMetadata(t, meta)
		d := metadataString(t, m, "containerimage.digest")
		cfg, err := verifyImage(t, ref, d).ConfigName()
		if err != nil {
			t.Fatal(err)
		}
		if got := metadataString(t, m, "containerimage.config.digest"); got != cfg.String() {
			t.Errorf("metadata containerimage.config.digest = %q, the pushed config is %s", got, cfg)
		}
		digests = append(digests, d)
	}
	if digests[0] != digests[1] {
		t.Fatalf("two fresh builders gave %s and %s", digests[0], digests[1])
	}
	cf, err := verifyImage(t, env.Registry.Host+"/repro/app:b0", digests[0]).ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := cf.Created.UTC().Format(time.RFC3339); got != "2024-01-02T03:04:05Z" {
		t.Errorf("image created %s, want the commit time", got)
	}
}

// An image strata pushed serves as a cache source on a fresh builder: its
// inline cache metadata (with normalised times) is accepted by BuildKit.
func TestPushedImageIsCacheSource(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Dockerfile": fmt.Sprintf("FROM %s\nRUN echo deps > /deps\nCOPY app.txt /app/\nRUN cat /app/app.txt > /out\n", env.Busybox),
		"app.txt":    "v1\n",
	})
	ref := env.Registry.Host + "/cachesrc/app:v1"
	if code, _, stderr := strata(t, "build", "--builder", env.Builder.Addr(), "--progress", "plain", "-t", ref, "--push", dir); code != 0 {
		t.Fatalf("exit %d\n%s", code, tail(stderr, 20))
	}
	bk, err := env.StartBuildkitd(t.Context(), "cachesrc")
	if err != nil {
		t.Fatal(err)
	}
	defer bk.Stop(20 * time.Second)
	meta := filepath.Join(t.TempDir(), "m.json")
	code, _, stderr := strata(t, "build", "--builder", bk.Addr(), "--progress", "plain", "--cache-from", ref,
		"-t", env.Registry.Host+"/cachesrc/app:v2", "--push", "--metadata-file", meta, dir)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, tail(stderr, 20))
	}
	st := strataMetadata(t, readMetadata(t, meta))
	if st.Steps.Total != 3 || st.Steps.Cached != 3 {
		t.Fatalf("steps %+v on a fresh builder with --cache-from %s, want all 3 cached", st.Steps, ref)
	}
	// Every layer was in the registry already: none sent, each with the
	// time strata found it there.
	for _, l := range st.Push.Layers {
		if l.Uploaded != 0 || l.Pushed <= 0 {
			t.Errorf("layer %s of a build from cache: %+v, want nothing uploaded and a time", l.Digest, l)
		}
	}
}

// A layer rebuilt with no cache hit is the same layer: a fresh builder
// running every step again uploads nothing but the manifest, and the image
// digest is the same.
func TestRebuiltLayersUploadNothing(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Dockerfile": fmt.Sprintf("FROM %s\nCOPY app.txt /app/\nRUN head -c 300000 /dev/zero | tr '\\0' x > /out && date > /now-not-in-the-layer && rm /now-not-in-the-layer\n", env.Busybox),
		"app.txt":    "same inputs\n",
	})
	var digests []string
	var metas []strataMeta
	for i := range 2 {
		bk, err := env.StartBuildkitd(t.Context(), fmt.Sprintf("rebuilt-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		meta := filepath.Join(t.TempDir(), "m.json")
		code, _, stderr := strata(t, "build", "--builder", bk.Addr(), "--progress", "plain", "--no-cache", "--no-auto-cache", "--source-date-epoch", "1700000000",
			"-t", fmt.Sprintf("%s/rebuilt/app:b%d", env.Registry.Host, i), "--push", "--metadata-file", meta, dir)
		_ = bk.Stop(20 * time.Second)
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, tail(stderr, 20))
		}
		m := readMetadata(t, meta)
		digests = append(digests, metadataString(t, m, "containerimage.digest"))
		metas = append(metas, strataMetadata(t, m))
	}
	if digests[0] != digests[1] {
		t.Fatalf("the same inputs built twice gave %s and %s", digests[0], digests[1])
	}
	if metas[1].Steps.Cached != 0 {
		t.Fatalf("second build: %d steps cached, want none (--no-cache)", metas[1].Steps.Cached)
	}
	if len(metas[1].Push.Layers) != 3 {
		t.Fatalf("second build lists %d layers, want 3", len(metas[1].Push.Layers))
	}
	for i, l := range metas[1].Push.Layers {
		if l.Uploaded != 0 {
			t.Errorf("second build uploaded %d bytes of layer %s, which the registry held", l.Uploaded, l.Digest)
		}
		// The repository has a tag: no layer is sent before its digest
		// is known.
		if l.Early {
			t.Errorf("second build sent layer %s before its digest was known", l.Digest)
		}
		// The layers built here are compressed by strata, now or (the
		// same bytes, remembered) in the build before.
		if i > 0 && (l.Bytes <= l.Size || (l.Converted != 0 && l.Converted < l.Built)) {
			t.Errorf("layer %s: %d bytes, %d compressed, converted at %.2f s, built at %.2f s; want its uncompressed size and a time after it was built", l.Digest, l.Bytes, l.Size, l.Converted, l.Built)
		}
	}
	if l := metas[0].Push.Layers; len(l) == 3 && l[2].Uploaded != l[2].Size {
		t.Errorf("first build uploaded %d bytes of its %d-byte RUN layer", l[2].Uploaded, l[2].Size)
	}
}

// On a builder that keeps its cache, the layers strata compressed in an
// earlier build are not sent to it again when the registry holds what
// they became: the second build converts nothing.
func TestCachedLayersAreNotConvertedAgain(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Dockerfile": fmt.Sprintf("FROM %s\nRUN head -c 200000 /dev/urandom > /r\nCOPY app.txt /app/\n", env.Busybox),
		"app.txt":    "v1\n",
	})
	for i, want := range []bool{true, false} {
		ref := fmt.Sprintf("%s/memo/app:v%d", env.Registry.Host, i)
		code, _, stderr := strata(t, "build", "--builder", env.Builder.Addr(), "--progress", "plain", "--no-auto-cache", "-t", ref, "--push", dir)
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, tail(stderr, 20))
		}
		seen := map[string]bool{}
		for _, line := range strings.Split(stderr, "\n") {
			if _, rest, ok := strings.Cut(line, "[strata] layer "); ok {
				seen[rest] = true
			}
		}
		converted := len(seen)
		// The RUN layer is over the 64 KiB below which strata always
		// takes the blob; the small COPY layer is sent each time.
		if got := converted >= 2; got != want {
			t.Fatalf("build %d converted %d layers\n%s", i+1, converted, tail(stderr, 40))
		}
		verifyImage(t, ref, "")
	}
}
