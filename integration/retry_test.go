package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/strata-build/strata/errs"
	"github.com/strata-build/strata/integration/testenv"
)

// Transient registry errors are retried per blob: the failed blob is sent
// again, every blob ends up uploaded exactly once, and the image verifies.
// The repository is new, so the first PATCHes, which fail, are of layers
// uploaded while they are compressed: those go up again from the store.
func TestPushRetriesTransientErrors(t *testing.T) {
	faults := []*testenv.Fault{
		{Method: http.MethodHead, PathContains: "/blobs/", Count: 1, Status: http.StatusTooManyRequests, RetryAfter: time.Second},
		{Method: http.MethodPatch, PathContains: "/blobs/uploads/", Count: 1, Status: http.StatusServiceUnavailable},
		{Method: http.MethodPatch, PathContains: "/blobs/uploads/", Count: 1, Reset: true},
		{Method: http.MethodPut, PathContains: "/manifests/", Count: 1, Status: http.StatusInternalServerError},
	}
	proxy, err := testenv.StartProxy(env.Registry.Host, testenv.WithFaults(faults...))
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()

	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": fmt.Sprintf(heavyDockerfile, env.Busybox)})
	ref := proxy.Host + "/retry/app:v1"
	meta := filepath.Join(t.TempDir(), "m.json")
	code, _, stderr := strata(t, "build", "--builder", env.Builder.Addr(), "--progress", "plain", "-t", ref, "--push", "--metadata-file", meta, dir)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, tail(stderr, 30))
	}
	verifyImage(t, ref, metadataString(t, readMetadata(t, meta), "containerimage.digest"))
	for _, f := range faults {
		if f.Hits() != f.Count {
			t.Errorf("fault %s %s hit %d times, want %d", f.Method, f.PathContains, f.Hits(), f.Count)
		}
	}
	if n := proxy.MaxUploadsPerBlob(); n != 1 {
		t.Errorf("a blob was uploaded completely %d times, want once", n)
	}
}

// A registry that keeps failing fails the build with exit code 4, naming
// the blob, within a bounded time, and no tag is created.
func TestPushFailsWhenRegistryKeepsFailing(t *testing.T) {
	proxy := failingUploads(t, "/blobs/uploads/")
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": fmt.Sprintf("FROM %s\nRUN echo failing > /x\n", env.Busybox)})
	ref := proxy.Host + "/failing/app:v1"
	code, _, stderr := strata(t, "build", "--builder", env.Builder.Addr(), "--progress", "plain", "-t", ref, "--push", dir)
	if code != errs.ExitRegistry {
		t.Fatalf("exit %d, want %d\n%s", code, errs.ExitRegistry, tail(stderr, 20))
	}
	last := lastLine(stderr)
	if !strings.Contains(last, "blob sha256:") || !strings.Contains(last, "503") {
		t.Errorf("error line %q does not name the failed blob and the status", last)
	}
	r, _ := name.ParseReference(env.Registry.Host+"/failing/app:v1", name.Insecure)
	if _, err := remote.Head(r); err == nil {
		t.Fatal("the tag exists although the push failed")
	}
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndex(s, "\n")+1:]
}

// An image pushed to two repositories moves no tag in either unless both
// hold all of it: the second repository's failure leaves the first one's
// tag where it was.
func TestPushToTwoRepositoriesAllOrNothing(t *testing.T) {
	// The second repository refuses its blobs, or refuses its manifest
	// (a registry's 403 or an immutable tag would, at the same place).
	for i, path := range []string{"/twob%d/app/blobs/uploads/", "/twob%d/app/manifests/"} {
		path = fmt.Sprintf(path, i)
		proxy := failingUploads(t, path)
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{"Dockerfile": fmt.Sprintf("FROM %s\nRUN echo two > /x\n", env.Busybox)})
		a, b := fmt.Sprintf("twoa%d/app:v1", i), fmt.Sprintf("twob%d/app:v1", i)
		code, _, stderr := strata(t, "build", "--builder", env.Builder.Addr(), "--progress", "plain",
			"-t", proxy.Host+"/"+a, "-t", proxy.Host+"/"+b, "--push", dir)
		if code != errs.ExitRegistry {
			t.Fatalf("%s failing: exit %d, want %d\n%s", path, code, errs.ExitRegistry, tail(stderr, 20))
		}
		if last := lastLine(stderr); !strings.Contains(last, strings.TrimSuffix(b, ":v1")) {
			t.Errorf("%s failing: error line %q does not name the repository that failed", path, last)
		}
		for _, ref := range []string{a, b} {
			r, _ := name.ParseReference(env.Registry.Host+"/"+ref, name.Insecure)
			if _, err := remote.Head(r); err == nil {
				t.Errorf("%s failing: %s exists although the push to the other repository failed", path, ref)
			}
		}
	}
}

// failingUploads is a proxy in front of the test registry that answers 503
// to every blob upload whose path contains path; closed with the test.
func failingUploads(t *testing.T, path string) *testenv.Proxy {
	t.Helper()
	proxy, err := testenv.StartProxy(env.Registry.Host, testenv.WithFaults(
		&testenv.Fault{Method: http.MethodPatch, PathContains: path, Count: 1 << 30, Status: http.StatusServiceUnavailable},
		&testenv.Fault{Method: http.MethodPut, PathContains: path, Count: 1 << 30, Status: http.StatusServiceUnavailable},
	))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	return proxy
}

// With one in five of each kind of registry request failing (503s, 500s,
// connections reset in the middle of a blob's PUT; one in two of the few
// chunked PATCHes of early uploads) and the manifest's first PUT failing,
// the push still succeeds, every blob is uploaded completely exactly once,
// and the image verifies.
func TestPushSurvivesOneInFiveRequestsFailing(t *testing.T) {
	faults := []*testenv.Fault{
		{Method: http.MethodGet, PathContains: "/v2/", Every: 5, Count: 1 << 30, Status: http.StatusServiceUnavailable},
		{Method: http.MethodHead, PathContains: "/blobs/", Every: 5, Count: 1 << 30, Status: http.StatusServiceUnavailable},
		{Method: http.MethodPost, PathContains: "/blobs/uploads/", Every: 5, Count: 1 << 30, Status: http.StatusInternalServerError},
		{Method: http.MethodPatch, PathContains: "/blobs/uploads/", Every: 2, Count: 1 << 30, Reset: true},
		{Method: http.MethodPut, PathContains: "/blobs/uploads/", Every: 5, Count: 1 << 30, Reset: true},
		{Method: http.MethodPut, PathContains: "/manifests/", Count: 1, Status: http.StatusServiceUnavailable}, // there is one manifest: its first PUT fails
	}
	proxy, err := testenv.StartProxy(env.Registry.Host, testenv.WithFaults(faults...))
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": fmt.Sprintf(heavyDockerfile+"RUN echo one-in-five > /five\n", env.Busybox)})
	ref := proxy.Host + "/flaky/app:v1"
	meta := filepath.Join(t.TempDir(), "m.json")
	// --no-cache: new layers each run, so there is something to upload.
	code, _, stderr := strata(t, "build", "--builder", env.Builder.Addr(), "--progress", "plain", "--no-cache", "-t", ref, "--push", "--metadata-file", meta, dir)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, tail(stderr, 30))
	}
	verifyImage(t, ref, metadataString(t, readMetadata(t, meta), "containerimage.digest"))
	failed := 0
	for _, f := range faults {
		failed += f.Hits()
		t.Logf("%s %s: %d of %d failed", f.Method, f.PathContains, f.Hits(), f.Seen())
	}
	for _, f := range faults[1:] {
		if f.Hits() == 0 {
			t.Errorf("no %s %s request failed (%d seen): the test injected nothing there", f.Method, f.PathContains, f.Seen())
		}
	}
	if n := proxy.MaxUploadsPerBlob(); n != 1 {
		t.Errorf("a blob was uploaded completely %d times, want once", n)
	}
	t.Logf("%d requests failed", failed)
}

// A registry that will not mount a cache source's layer into the target
// repository (it answers the mount with a plain upload) gets the layer
// uploaded instead, and the image is complete.
func TestMountRefusedUploadsInstead(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": fmt.Sprintf("FROM %s\nRUN head -c 300000 /dev/urandom > /dep\n", env.Busybox)})
	refuse := &testenv.Fault{Method: http.MethodPost, PathContains: "/blobs/uploads/", QueryContains: "from=mount%2Fsrc", Count: 1 << 30, Status: http.StatusAccepted}
	proxy, err := testenv.StartProxy(env.Registry.Host, testenv.WithFaults(refuse))
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	src := proxy.Host + "/mount/src:v1"
	if code, _, stderr := strata(t, "build", "--builder", env.Builder.Addr(), "--progress", "plain", "--no-auto-cache", "-t", src, "--push", dir); code != 0 {
		t.Fatalf("exit %d\n%s", code, tail(stderr, 20))
	}
	dst := proxy.Host + "/mount/dst:v1"
	meta := filepath.Join(t.TempDir(), "m.json")
	code, _, stderr := strata(t, "build", "--builder", env.Builder.Addr(), "--progress", "plain", "--no-auto-cache",
		"--cache-from", "type=registry,ref="+src, "-t", dst, "--push", "--metadata-file", meta, dir)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, tail(stderr, 20))
	}
	verifyImage(t, dst, metadataString(t, readMetadata(t, meta), "containerimage.digest"))
	if refuse.Seen() == 0 {
		t.Fatalf("no layer was mounted from mount/src:\n%s", tail(stderr, 30))
	}
	var st struct {
		Push struct {
			Layers []struct {
				Size        int64 `json:"compressedSize"`
				Uploaded    int64 `json:"uploadedBytes"`
				MountedFrom string
			}
		}
	}
	if err := json.Unmarshal(readMetadata(t, meta)["strata"], &st); err != nil {
		t.Fatal(err)
	}
	for _, l := range st.Push.Layers {
		if l.MountedFrom != "" || (l.Size >= 300000 && l.Uploaded != l.Size) {
			t.Errorf("layer %+v: want the layer uploaded whole, none mounted", l)
		}
	}
}
