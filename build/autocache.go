package build

import (
	"context"
	"fmt"
	"time"

	"github.com/strata-build/strata/buildcontext"
	"github.com/strata-build/strata/cache"
)

// AutoCache chooses cache sources from the index of registry images.
type AutoCache struct {
	Store   cache.Store    // where the index lives (a file, or a registry artifact)
	Max     int            // how many cache imports at most
	Options []cache.Option // registry access for resolving base images
	// Warn receives problems that do not stop the build: an unreachable or
	// unreadable index only means building without automatic cache.
	Warn func(string)
}

// AutoImport is one cache import strata chose, why, and what the plan
// expects it to save.
type AutoImport = cache.Import

// Choose plans opt against the index and returns the imports, best first.
// It never fails the build: problems are warnings and give no imports.
// The build context it opened is left in opt.BuildContext for the build.
func (a *AutoCache) Choose(ctx context.Context, opt *Options) []AutoImport {
	if a == nil || a.Store == nil || a.Max <= 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	x, err := a.Store.Load(ctx)
	if err != nil {
		a.warn("cache index %s: %v; building without automatic cache", a.Store, err)
		return nil
	}
	if x.Len() == 0 {
		return nil
	}
	contextDir, dockerfile, err := opt.resolve()
	if err != nil {
		return nil // Run reports it
	}
	bc := opt.BuildContext
	if bc == nil {
		if bc, err = buildcontext.Open(contextDir, dockerfile); err == nil {
			opt.BuildContext = bc
		} else {
			bc = nil // the plan reports it
		}
	}
	plan, err := cache.PlanBuild(ctx, cache.PlanOptions{
		ContextDir: contextDir, Context: bc, Dockerfile: dockerfile, BuildArgs: opt.BuildArgs,
		Target: opt.Target, Platforms: opt.Platforms, Index: x, Options: a.Options,
	})
	if err != nil {
		a.warn("planning cache sources: %v; building without automatic cache", err)
		return nil
	}
	return plan.Imports(a.Max)
}

// Record adds the pushed images to the index, so the next build anywhere
// can use them as cache sources.
func (a *AutoCache) Record(ctx context.Context, refs []string) {
	if a == nil || a.Store == nil || len(refs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := cache.AddImages(ctx, a.Store, refs, a.Options...); err != nil {
		a.warn("adding %s to the cache index %s: %v", refs[0], a.Store, err)
	}
}

func (a *AutoCache) warn(format string, args ...any) {
	if a.Warn != nil {
		a.Warn(fmt.Sprintf(format, args...))
	}
}
