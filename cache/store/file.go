package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gofrs/flock"

	"github.com/strata-build/strata/cache"
	"github.com/strata-build/strata/errs"
)

// IndexFileEnv overrides the default index file.
const IndexFileEnv = "STRATA_INDEX_FILE"

// defaultIndexFile is $STRATA_INDEX_FILE, else <user cache dir>/strata/index/default.idx.
func defaultIndexFile() (string, error) {
	if p := os.Getenv(IndexFileEnv); p != "" {
		return p, nil
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", errs.WithHint(errs.Inputf("no user cache directory: %v", err), "pass --index-file or set "+IndexFileEnv)
	}
	return filepath.Join(dir, "strata", "index", "default.idx"), nil
}

// LoadFile reads the index at path. A missing file is an empty index. A
// corrupt or incompatible file is also an empty index, with a warning
// (non-nil) saying it will be rebuilt; err is for files that cannot be read.
func LoadFile(path string) (x *cache.Index, warning error, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return cache.NewIndex(), nil, nil
	}
	if err != nil {
		return nil, nil, errs.Inputf("read index %s: %v", path, err)
	}
	x, derr := cache.Decode(data)
	if errors.Is(derr, cache.ErrNewerFormat) {
		// Left as it is: rebuilding would take the newer strata's index away.
		return nil, nil, errs.WithHint(fmt.Errorf("%w: index %s: %w", errs.ErrInput, path, derr), "upgrade strata, or pass another --index-file")
	}
	if derr != nil {
		return cache.NewIndex(), fmt.Errorf("index %s is unusable (%v); it will be rebuilt", path, derr), nil
	}
	return x, nil, nil
}

// ReplaceFile writes x over the index at path, under the lock updateFile takes.
func ReplaceFile(path string, x *cache.Index) error {
	_, err := updateFile(path, func(*cache.Index) *cache.Index { return x })
	return err
}

// updateFile changes the index at path under an exclusive lock and writes
// the result atomically (a temporary file renamed over the old one), so
// concurrent strata processes never lose each other's entries and readers
// never see half a file. It returns the index written.
func updateFile(path string, change func(cur *cache.Index) *cache.Index) (*cache.Index, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, errs.Inputf("index directory: %v", err)
	}
	lock := flock.New(path + ".lock")
	if err := lock.Lock(); err != nil {
		return nil, errs.Inputf("lock index %s: %v", path, err)
	}
	defer lock.Unlock()
	cur, _, err := LoadFile(path)
	if err != nil {
		return nil, err
	}
	out := change(cur)
	return out, writeAtomic(path, out)
}

func writeAtomic(path string, x *cache.Index) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp-*")
	if err != nil {
		return errs.Inputf("write index: %v", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := x.Encode(f); err != nil {
		f.Close()
		return errs.Inputf("write index %s: %v", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return errs.Inputf("write index %s: %v", tmp, err)
	}
	if err := f.Close(); err != nil {
		return errs.Inputf("write index %s: %v", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return errs.Inputf("write index %s: %v", path, err)
	}
	return nil
}
