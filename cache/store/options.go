package store

import (
	"time"

	"github.com/strata-build/strata/cache/crawl"
	"github.com/strata-build/strata/cache/internal/regopts"
)

// WithClock sets the clock the shared index dates its deltas by (default time.Now).
func WithClock(now func() time.Time) crawl.Option {
	return func(o *regopts.Options) { o.Now = now }
}

// withCacheDir sets where copies of shared index blobs are kept (default
// the user cache directory; "-" keeps none).
func withCacheDir(dir string) crawl.Option {
	return func(o *regopts.Options) { o.CacheDir = dir }
}
