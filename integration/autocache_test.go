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
		AutoCache []struct{ Ref, Reason string }
		Steps     struct{ Total, Cached int }
	}
	if err := json.Unmarshal(m["strata"], &st); err != nil {
		t.Fatal(err)
	}
	if len(st.AutoCache) == 0 || !strings.Contains(st.AutoCache[0].Ref, "/autocache/main@sha256:") {
		t.Fatalf("auto cache chose %+v, want the main image", st.AutoCache)
	}
	// RUN deps, COPY lock, RUN sum come from the main image's cache; the
	// changed COPY src and what follows run.
	if st.Steps.Total != 5 || st.Steps.Cached != 3 {
		t.Errorf("steps %+v, want 3 of 5 cached from the other repository", st.Steps)
	}
	if !strings.Contains(stderr, "strata: cache from "+env.Registry.Host+"/autocache/main@") {
		t.Errorf("the build does not say which cache it chose:\n%s", tail(stderr, 40))
	}

	// --no-auto-cache builds everything.
	bk2, err := env.StartBuildkitd(t.Context(), "autocache-off")
	if err != nil {
		t.Fatal(err)
	}
	defer bk2.Stop(20 * time.Second)
	code, _, stderr = strata(t, "build", "--builder", bk2.Addr(), "--progress", "plain", "--index-file", index, "--no-auto-cache", "--metadata-file", meta, dir)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, tail(stderr, 20))
	}
	if got := strataMetadata(t, readMetadata(t, meta)); got.Steps.Cached != 0 {
		t.Errorf("--no-auto-cache: %d steps cached on a fresh builder", got.Steps.Cached)
	}
}
