package integration

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A fresh builder finds its cache in another repository: strata build
// records every pushed image in the index, and the next build of a branch
// that changed one source file imports cache from the image that shares the
// most steps, with no cache flag at all.
func TestAutoCacheAcrossRepositories(t *testing.T) {
	index := filepath.Join(t.TempDir(), "index.idx")
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Dockerfile": fmt.Sprintf(`FROM %s
RUN head -c 2000000 /dev/urandom > /deps.bin
COPY lock.txt /app/lock.txt
RUN sha256sum /app/lock.txt > /app/deps.sum
COPY src/ /app/src/
RUN cat /app/src/* > /app/out
`, env.Busybox),
		"lock.txt":  "dep 1.0\n",
		"src/a.txt": "version 1\n",
	})
	main := env.Registry.Host + "/autocache/main:v1"
	if code, _, stderr := strata(t, "build", "--builder", env.Builder.Addr(), "--progress", "plain", "--index-file", index, "-t", main, "--push", dir); code != 0 {
		t.Fatalf("exit %d\n%s", code, tail(stderr, 20))
	}
	recordedAsIndexAdd(t, index, main)

	writeFiles(t, dir, map[string]string{"src/a.txt": "version 2 on a branch\n"})
	bk, err := env.StartBuildkitd(t.Context(), "autocache")
	if err != nil {
		t.Fatal(err)
	}
	defer bk.Stop(20 * time.Second)
	meta := filepath.Join(t.TempDir(), "m.json")
	code, _, stderr := strata(t, "build", "--builder", bk.Addr(), "--progress", "plain", "--index-file", index,
		"-t", env.Registry.Host+"/autocache/branch:v2", "--push", "--metadata-file", meta, dir)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, tail(stderr, 20))
	}
	m := readMetadata(t, meta)
	var st struct {
		AutoCache []struct {
			Ref, Reason              string
			StepsMatched, StepsExact int
			BytesReusable            int64
		}
		Steps  struct{ Total, Cached int }
		Pulled struct{ Bytes, Blobs int64 }
		Push   struct {
			BytesPushed int64
			Layers      []struct {
				Digest      string
				Size        int64 `json:"compressedSize"`
				Uploaded    int64 `json:"uploadedBytes"`
				MountedFrom string
			}
		}
	}
	if err := json.Unmarshal(m["strata"], &st); err != nil {
		t.Fatal(err)
	}
	if len(st.AutoCache) == 0 || !strings.Contains(st.AutoCache[0].Ref, "/autocache/main@sha256:") {
		t.Fatalf("auto cache chose %+v, want the main image", st.AutoCache)
	}
	if a := st.AutoCache[0]; a.StepsMatched != 5 || a.StepsExact != 3 || a.BytesReusable < 2000000 {
		t.Errorf("the chosen image %+v: want 5 steps matched, 3 exactly, with the 2 MB dependency layer", a)
	}
	// The fresh builder pulled the base image and the reused layers (the
	// 2 MB of random data among them).
	if st.Pulled.Bytes < 2000000 || st.Pulled.Blobs < 2 {
		t.Errorf("pulled %+v, want the base layer and the reused 2 MB dependency layer", st.Pulled)
	}
	// RUN deps, COPY lock, RUN sum come from the main image's cache; the
	// changed COPY src and what follows run.
	if st.Steps.Total != 5 || st.Steps.Cached != 3 {
		t.Errorf("steps %+v, want 3 of 5 cached from the other repository", st.Steps)
	}
	if !strings.Contains(stderr, "strata: cache from "+env.Registry.Host+"/autocache/main@") {
		t.Errorf("the build does not say which cache it chose:\n%s", tail(stderr, 40))
	}
	// The reused layers are mounted from the main image's repository, not
	// uploaded again: the push sends only the layers of the steps that ran.
	mounted := 0
	for _, l := range st.Push.Layers {
		if l.Size >= 2000000 && (l.MountedFrom != "autocache/main" || l.Uploaded != 0) {
			t.Errorf("the reused dependency layer %+v: want it mounted from autocache/main, nothing uploaded", l)
		}
		if l.MountedFrom != "" {
			mounted++
		}
	}
	if mounted < 3 || st.Push.BytesPushed >= 2000000 {
		t.Errorf("%d layers mounted, %d bytes pushed: want the 3 reused layers mounted and only the new ones uploaded", mounted, st.Push.BytesPushed)
	}
	if !strings.Contains(stderr, "mounted from autocache/main") {
		t.Errorf("the progress does not say a layer was mounted:\n%s", tail(stderr, 40))
	}

	// --no-auto-cache builds everything.
	bk2, err := env.StartBuildkitd(t.Context(), "autocache-off")
	if err != nil {
		t.Fatal(err)
	}
	defer bk2.Stop(20 * time.Second)
	off := env.Registry.Host + "/autocache/off:v3"
	code, _, stderr = strata(t, "build", "--builder", bk2.Addr(), "--progress", "plain", "--index-file", index, "--no-auto-cache",
		"-t", off, "--push", "--metadata-file", meta, dir)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, tail(stderr, 20))
	}
	if got := strataMetadata(t, readMetadata(t, meta)); got.Steps.Cached != 0 {
		t.Errorf("--no-auto-cache: %d steps cached on a fresh builder", got.Steps.Cached)
	}
	if err := json.Unmarshal(readMetadata(t, meta)["strata"], &st); err != nil {
		t.Fatal(err)
	}
	if st.Pulled.Bytes == 0 || st.Pulled.Bytes >= 2000000 {
		t.Errorf("--no-auto-cache pulled %+v, want only the base image", st.Pulled)
	}
	// Choosing no cache still records what was pushed.
	if code, out, stderr := strata(t, "index", "ls", "--index-file", index); code != 0 || !strings.Contains(out, off) {
		t.Errorf("the index does not hold the image pushed with --no-auto-cache: exit %d\n%s%s", code, out, stderr)
	}
}
