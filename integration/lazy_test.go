package integration

import (
	"bytes"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/strata-build/strata/builder"
	"github.com/strata-build/strata/cache/store"
	"github.com/strata-build/strata/cmd/strata/cli"
	"github.com/strata-build/strata/errs"
	"github.com/strata-build/strata/integration/testenv"
)

// lazyBigMB is the size of the file the base image holds beside the small
// one the build reads: random, so its layer is as large compressed.
const lazyBigMB = 16

// stargzBuilder starts a fresh buildkitd as strata starts its own when
// asked for stargz: with the stargz snapshotter where FUSE and overlayfs
// work. The test is skipped where they do not.
func stargzBuilder(t *testing.T, name string) *builder.Local {
	t.Helper()
	bk, err := env.StartBuildkitd(t.Context(), fmt.Sprintf("%s-%d", name, time.Now().UnixNano()), testenv.WithSnapshotter(builder.SnapshotterStargz))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bk.Stop(20 * time.Second) })
	st, err := bk.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Snapshotter != builder.SnapshotterStargz {
		t.Skipf("strata's builder uses %s here: %s", st.Snapshotter, st.NotStargz)
	}
	return bk
}

// lazyBuild builds, on bk, a Dockerfile FROM repo (of the test bed's
// registry, reached through proxy) whose one RUN reads the base image's
// small file and runs cmd, and fails the test when it does not build.
func lazyBuild(t *testing.T, bk *builder.Local, proxy *testenv.Proxy, repo, cmd string) {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": fmt.Sprintf("FROM %s/%s\nRUN cat /small/file && %s\n", proxy.Host, repo, cmd)})
	code, _, stderr := strata(t, "build", "--builder", bk.Addr(), "--progress", "plain", "--no-auto-cache", dir)
	if code != 0 {
		t.Fatalf("build FROM %s: exit %d\n%s", repo, code, tail(stderr, 30))
	}
	if !strings.Contains(stderr, "read-me-lazily") {
		t.Errorf("the RUN did not print the small file's content\n%s", tail(stderr, 30))
	}
	if strings.Contains(stderr, "lazy pulls are off") {
		t.Errorf("a stargz builder got the hint to turn lazy pulls on\n%s", tail(stderr, 30))
	}
}

// pulledBuildingFrom builds FROM repo on a fresh stargz builder that
// reaches the registry through a proxy, and returns the bytes it pulled,
// the builder and the proxy.
func pulledBuildingFrom(t *testing.T, repo string) (int64, *builder.Local, *testenv.Proxy) {
	t.Helper()
	proxy, err := testenv.StartProxy(env.Registry.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	bk := stargzBuilder(t, "lazy-pull")
	lazyBuild(t, bk, proxy, repo, "true")
	return proxy.BytesDown.Load(), bk, proxy
}

// TestLazyPullOnStargzBuilder: strata's own choice of builder (stargz
// here) builds and pushes an image with a large and a small file; a second
// fresh one builds FROM it with a RUN that reads the small file. With
// gzip layers (--compression gzip) the second builder pulls the whole
// layer; with the eStargz layers strata pushes by default, only part of
// it. The builder, stopped or killed and started again, still builds on
// the lazily pulled image.
func TestLazyPullOnStargzBuilder(t *testing.T) {
	first := stargzBuilder(t, "lazy-push")
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": fmt.Sprintf("FROM %s\nRUN mkdir /small && echo read-me-lazily > /small/file && head -c %d /dev/urandom > /big\n",
		env.Busybox, lazyBigMB<<20)})
	gzipRef := env.Registry.Host + "/lazy/base:gzip"
	if code, _, stderr := strata(t, "build", "--builder", first.Addr(), "--progress", "plain", "--no-auto-cache", "--compression", "gzip", "-t", gzipRef, "--push", dir); code != 0 {
		t.Fatalf("build and push on the stargz builder: exit %d\n%s", code, tail(stderr, 30))
	}
	estargzRef := env.Registry.Host + "/lazy/base:estargz"
	if code, _, stderr := strata(t, "build", "--builder", first.Addr(), "--progress", "plain", "--no-auto-cache", "-t", estargzRef, "--push", dir); code != 0 {
		t.Fatalf("build and push eStargz on the stargz builder: exit %d\n%s", code, tail(stderr, 30))
	}

	big := lastLayerSize(t, gzipRef)
	gzipPulled, _, _ := pulledBuildingFrom(t, "lazy/base:gzip")
	t.Logf("gzip layers: the second stargz builder pulled %d bytes; the image's last layer is %d bytes", gzipPulled, big)
	estargzPulled, bk, proxy := pulledBuildingFrom(t, "lazy/base:estargz")
	t.Logf("eStargz layers: the second stargz builder pulled %d bytes; the image's last layer is %d bytes", estargzPulled, lastLayerSize(t, estargzRef))
	if gzipPulled < big {
		t.Errorf("from gzip layers the builder pulled %d bytes, less than the %d-byte layer it needs", gzipPulled, big)
	}
	if estargzPulled >= big/2 {
		t.Errorf("from eStargz layers the builder pulled %d bytes, not lazily: the layer with the file it read is %d bytes", estargzPulled, big)
	}

	for _, kill := range []bool{false, true} {
		restart(t, bk, kill)
		st, err := bk.Status(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if st.Snapshotter != builder.SnapshotterStargz || !strings.Contains(st.Emptied, "lazily pulled layers") {
			t.Errorf("restarted (killed: %v): snapshotter %q, emptied %q; want stargz with its cache of lazy layers emptied", kill, st.Snapshotter, st.Emptied)
		}
		lazyBuild(t, bk, proxy, "lazy/base:estargz", fmt.Sprintf("echo killed=%v", kill))
	}
}

// restart stops bk (kills it, with kill) and starts it again on its state.
func restart(t *testing.T, bk *builder.Local, kill bool) {
	t.Helper()
	if kill {
		pid := bk.PID()
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitExited(t, pid)
	} else if err := bk.Stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := bk.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// lastLayerSize is the compressed size of ref's last layer.
func lastLayerSize(t *testing.T, ref string) int64 {
	t.Helper()
	_, img := remoteImage(t, ref)
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	return m.Layers[len(m.Layers)-1].Size
}

// A build on a builder strata did not start, and that does not use the
// stargz snapshotter, does not ask for lazy pulls, which cost the cache
// records of the steps that run over lazily pulled layers; strata builder
// status says how to turn them on, and at what cost.
func TestLazyPullHintOnOtherBuilders(t *testing.T) {
	st, err := env.Builder.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Snapshotter == builder.SnapshotterStargz {
		t.Skip("the test bed's builder uses stargz")
	}
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": fmt.Sprintf("FROM %s\nRUN echo hint > /hint\n", env.Busybox)})
	code, _, stderr := strata(t, "build", "--builder", env.Builder.Addr(), "--progress", "plain", "--no-auto-cache", dir)
	if code != 0 || strings.Contains(stderr, "lazy pulls") {
		t.Errorf("exit %d; want no word on lazy pulls\n%s", code, tail(stderr, 30))
	}
	want := "lazy pulls:  off: --builder=" + env.Builder.Addr() + " uses the " + st.Snapshotter + " snapshotter; to pull eStargz layers only as far as steps read them, start its buildkitd with --oci-worker-snapshotter=stargz"
	code, out, stderr := strata(t, "builder", "status", "--builder", env.Builder.Addr())
	if code != 0 || !strings.Contains(out, want) || !strings.Contains(out, "no cache record of a step that runs over lazily pulled layers") {
		t.Errorf("builder status: exit %d; want %q and the cost\n%s%s", code, want, out, stderr)
	}
}

// lazyAppDockerfile reuses a large dependency layer of which the last step
// reads one small file.
func lazyAppDockerfile() string {
	return fmt.Sprintf(`FROM %s
WORKDIR /app
COPY deps.lock ./
RUN mkdir deps && head -c %d /dev/urandom > deps/big.so && cat deps.lock > deps/small.txt
COPY src/ ./src/
RUN cat deps/small.txt src/* > /out
`, env.Busybox, lazyBigMB<<20)
}

// TestStreamedPushKeepsLayersLazy: the one-change loop on fresh stargz
// runners. v1 is pushed by strata (eStargz by default); v2, one source file
// changed in a new commit, is built and pushed by strata on a fresh stargz
// builder with an empty HOME. Its last step reads one small file of the
// reused dependency layer: neither the build nor the streamed push may
// download that layer whole, and v2's image must pull and run on a plain
// overlayfs builder.
func TestStreamedPushKeepsLayersLazy(t *testing.T) {
	proxy, err := testenv.StartProxy(env.Registry.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": lazyAppDockerfile(), "deps.lock": "dep 1.0\n", "src/main.sh": "v1\n"})
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	gitCommit(t, dir, t0, "v1")
	repo := proxy.Host + "/lazy/app"
	// Fresh runners: no shared index (it would offer other tests' images).
	t.Setenv(store.IndexFileEnv, filepath.Join(t.TempDir(), "index.idx"))
	v1 := stargzBuilder(t, "lazy-v1")
	t.Setenv("HOME", t.TempDir())
	if code, _, stderr := strata(t, "build", "--builder", v1.Addr(), "--progress", "plain", "-t", repo+":v1", "-t", repo+":latest", "--push", dir); code != 0 {
		t.Fatalf("v1: exit %d\n%s", code, tail(stderr, 30))
	}
	big := int64(lazyBigMB << 20)

	writeFiles(t, dir, map[string]string{"src/main.sh": "v2\n"})
	gitCommit(t, dir, t0.Add(time.Hour), "v2")
	v2 := stargzBuilder(t, "lazy-v2")
	t.Setenv("HOME", t.TempDir())
	down := proxy.BytesDown.Load()
	meta := filepath.Join(t.TempDir(), "m.json")
	code, _, stderr := strata(t, "build", "--builder", v2.Addr(), "--progress", "plain", "-t", repo+":v2", "--push", "--metadata-file", meta, dir)
	if code != 0 {
		t.Fatalf("v2: exit %d\n%s", code, tail(stderr, 30))
	}
	// WORKDIR, COPY deps.lock and the dependency RUN come from v1.
	if st := strataMetadata(t, readMetadata(t, meta)); st.Steps.Total != 5 || st.Steps.Cached != 3 {
		t.Errorf("v2: steps %+v, want 3 of 5 cached from v1\n%s", st.Steps, tail(stderr, 40))
	}
	pulled := proxy.BytesDown.Load() - down
	t.Logf("v2 on a fresh stargz builder pulled %d bytes; the reused dependency layer holds %d", pulled, big)
	if pulled >= big/2 {
		t.Errorf("v2 pulled %d bytes: the %d-byte dependency layer it reads one small file of was downloaded whole", pulled, big)
	}

	// Pushed where no repository holds the reused layers (the registry
	// under another name), they are exported once more and sent.
	other := env.Registry.Host + "/lazy/elsewhere:v2"
	if code, _, stderr := strata(t, "build", "--builder", v2.Addr(), "--progress", "plain", "--no-auto-cache", "--cache-from", repo+":v1", "-t", other, "--push", dir); code != 0 {
		t.Fatalf("v2 to another registry: exit %d\n%s", code, tail(stderr, 30))
	}
	_, img := remoteImage(t, other)
	if ls, err := img.Layers(); err != nil || len(ls) != 6 {
		t.Fatalf("%s: %d layers (%v), want 6", other, len(ls), err)
	} else {
		for _, l := range ls {
			rc, err := l.Compressed()
			if err == nil {
				_, err = io.Copy(io.Discard, rc)
				rc.Close()
			}
			if err != nil {
				t.Errorf("%s: a layer cannot be read: %v", other, err)
			}
		}
	}

	// The image runs where layers are pulled whole, too.
	check := t.TempDir()
	writeFiles(t, check, map[string]string{"Dockerfile": fmt.Sprintf("FROM %s:v2\nRUN grep -q v2 /out && test -s /app/deps/big.so\n", repo)})
	if code, _, stderr := strata(t, "build", "--builder", env.Builder.Addr(), "--progress", "plain", "--no-auto-cache", check); code != 0 {
		t.Fatalf("v2 on the overlayfs builder: exit %d\n%s", code, tail(stderr, 30))
	}
}

// watchWriter keeps what is written, and closes seen once it holds needle.
type watchWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	needle string
	seen   chan struct{}
	once   sync.Once
}

func (w *watchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.needle) {
		w.once.Do(func() { close(w.seen) })
	}
	return len(p), nil
}

func (w *watchWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestLazyReadFailsOnRegistryError: the registry stops answering while a
// step reads a file of a layer the stargz builder mounted lazily. The
// build fails with a registry error (exit 4) that names a layer, no tag
// is pushed, and once the registry answers again the next build works.
func TestLazyReadFailsOnRegistryError(t *testing.T) {
	proxy, err := testenv.StartProxy(env.Registry.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Dockerfile": strings.Replace(lazyAppDockerfile(), "RUN cat deps/small.txt", "RUN sleep 5 && head -c 100000 deps/big.so >/dev/null && cat deps/small.txt", 1),
		"deps.lock":  "dep 1.0\n", "src/main.sh": "v1\n",
	})
	repo := proxy.Host + "/lazy/fault"
	t.Setenv("HOME", t.TempDir())
	// No shared index: the cache source must be the registry behind proxy.
	t.Setenv(store.IndexFileEnv, filepath.Join(t.TempDir(), "index.idx"))
	if code, _, stderr := strata(t, "build", "--builder", stargzBuilder(t, "fault-v1").Addr(), "--progress", "plain", "-t", repo+":v1", "-t", repo+":latest", "--push", dir); code != 0 {
		t.Fatalf("v1: exit %d\n%s", code, tail(stderr, 30))
	}
	writeFiles(t, dir, map[string]string{"src/main.sh": "v2\n"})
	bk := stargzBuilder(t, "fault-v2")
	t.Setenv("HOME", t.TempDir())
	w := &watchWriter{needle: "RUN sleep 5 && head -c", seen: make(chan struct{})}
	go func() {
		select {
		case <-w.seen:
			// The step has mounted its layers and sleeps: its read comes
			// after this.
			time.Sleep(2 * time.Second)
			proxy.Silence(true)
		case <-t.Context().Done():
		}
	}()
	var out bytes.Buffer
	code := cli.Main([]string{"build", "--builder", bk.Addr(), "--progress", "plain", "-t", repo + ":v2", "--push", dir}, strings.NewReader(""), &out, w)
	proxy.Silence(false)
	stderr := w.String()
	if code != errs.ExitRegistry || !regexp.MustCompile(`registry error: .*layer sha256:[0-9a-f]{64} .*of cache source`).MatchString(lastLine(stderr)) {
		t.Fatalf("exit %d, want %d with a registry error naming a layer\n%s", code, errs.ExitRegistry, tail(stderr, 30))
	}
	t.Logf("the build that lost the registry: %s", lastLine(stderr))
	if ref, err := name.ParseReference(env.Registry.Host+"/lazy/fault:v2", name.Insecure); err != nil {
		t.Fatal(err)
	} else if _, err := remote.Head(ref); err == nil {
		t.Error("the failed build pushed its tag")
	}
	if code, _, stderr := strata(t, "build", "--builder", bk.Addr(), "--progress", "plain", "-t", repo+":v2", "--push", dir); code != 0 {
		t.Fatalf("the next build, the registry answering again: exit %d\n%s", code, tail(stderr, 30))
	}
}
