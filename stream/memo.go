package stream

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// memoLimit bounds the conversions the memo keeps; the oldest go first.
const memoLimit = 5000

// memoEntry is one remembered conversion.
type memoEntry struct {
	Digest      digest.Digest     `json:"digest"`
	Size        int64             `json:"size"`
	MediaType   string            `json:"mediaType"`
	Annotations map[string]string `json:"annotations,omitempty"` // an eStargz layer's
	DiffID      digest.Digest     `json:"diffID"`
	Bytes       int64             `json:"bytes"` // uncompressed
	Used        int64             `json:"used"`  // unix seconds
}

// descriptor is the layer e names.
func (e memoEntry) descriptor() ocispecs.Descriptor {
	return ocispecs.Descriptor{MediaType: e.MediaType, Digest: e.Digest, Size: e.Size, Annotations: e.Annotations}
}

// layerMemo remembers, across builds on this machine, which layer each
// uncompressed layer became. It only lets strata skip work: a remembered
// layer is used only when the registry confirms it holds that digest, and
// a memo that cannot be read is started again.
type layerMemo struct {
	path    string
	mu      sync.Mutex
	m       map[string]memoEntry
	changed bool
}

// openLayerMemo reads the memo at path ("" for none).
func openLayerMemo(path string) *layerMemo {
	if path == "" {
		return nil
	}
	m := &layerMemo{path: path, m: map[string]memoEntry{}}
	dt, err := os.ReadFile(path)
	if err == nil && json.Unmarshal(dt, &m.m) != nil {
		m.m = map[string]memoEntry{} // corrupt: start again
	}
	return m
}

// DefaultMemoPath is the memo's file in the user cache directory, or ""
// when there is none.
func DefaultMemoPath() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "strata", "layers.json")
}

func (m *layerMemo) get(key string) (memoEntry, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.m[key]
	if ok && e.Digest.Validate() == nil && e.DiffID.Validate() == nil && e.Size > 0 {
		e.Used = time.Now().Unix()
		m.m[key] = e
		m.changed = true
		return e, true
	}
	return memoEntry{}, false
}

func (m *layerMemo) put(key string, e memoEntry) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e.Used = time.Now().Unix()
	m.m[key] = e
	m.changed = true
}

// save writes the memo back, keeping the newest memoLimit entries. It
// replaces the file whole, so a reader never sees half of it.
func (m *layerMemo) save() error {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.changed {
		return nil
	}
	// Another build may have saved since this one read the file: keep
	// what it learned.
	if dt, err := os.ReadFile(m.path); err == nil {
		var on map[string]memoEntry
		if json.Unmarshal(dt, &on) == nil {
			for k, e := range on {
				if cur, ok := m.m[k]; !ok || cur.Used < e.Used {
					m.m[k] = e
				}
			}
		}
	}
	if len(m.m) > memoLimit {
		keys := make([]string, 0, len(m.m))
		for k := range m.m {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return m.m[keys[i]].Used > m.m[keys[j]].Used })
		for _, k := range keys[memoLimit:] {
			delete(m.m, k)
		}
	}
	dt, err := json.Marshal(m.m)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(m.path), 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(m.path), ".layers-*.json")
	if err != nil {
		return err
	}
	if _, err := f.Write(dt); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), m.path); err != nil {
		os.Remove(f.Name())
		return err
	}
	m.changed = false
	return nil
}
