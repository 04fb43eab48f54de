package store

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/strata-build/strata/cache"
	"github.com/strata-build/strata/cache/internal/cachetest"
)

func TestFileStoreCorruptAndConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "index.idx")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	var warned []string
	st := &FileStore{Path: path, Warn: func(s string) { warned = append(warned, s) }}
	x, err := st.Load(t.Context())
	if err != nil || x.Len() != 0 || len(warned) != 1 || !strings.Contains(warned[0], "rebuilt") {
		t.Fatalf("corrupt file: %v %v %v", x, err, warned)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ch := cache.NewIndex()
			for j := range 20 {
				ch.Put(cachetest.Image(fmt.Sprintf("r/w%d:%d", i, j), "linux/amd64", "base", fmt.Sprint("RUN ", j)))
			}
			if _, err := st.Update(t.Context(), ch); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	x, err = st.Load(t.Context())
	if err != nil || x.Len() != 160 {
		t.Fatalf("after 8 concurrent updates: %d images, %v", x.Len(), err)
	}
	if matches, _ := filepath.Glob(path + ".tmp-*"); len(matches) != 0 {
		t.Errorf("temporary files left: %v", matches)
	}
}
