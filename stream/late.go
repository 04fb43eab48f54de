package stream

import (
	"context"
	"slices"

	"github.com/moby/buildkit/client"
	gwclient "github.com/moby/buildkit/frontend/gateway/client"

	"github.com/strata-build/strata/frontend"
)

// Prefix is a Dockerfile cut right after the step starting at Line.
type Prefix struct {
	Dockerfile []byte
	Line       int
}

// Chosen is what a cache choice made while the push runs says.
type Chosen struct {
	Imports []client.CacheOptionsEntry
	// CachedThrough is the line of the last step the imports are
	// expected to cache: the prefixes of the steps up to it need no
	// solve, their layers are in the registry.
	CachedThrough int
}

// settle waits for cfg.Late and adds what it chose to so and cfg.
func settle(ctx context.Context, so client.SolveOpt, cfg Config) (client.SolveOpt, Config, error) {
	if cfg.Late == nil {
		return so, cfg, nil
	}
	ch, err := cfg.Late(ctx)
	if err != nil {
		return so, cfg, err
	}
	so.CacheImports = slices.Concat(so.CacheImports, ch.Imports)
	cfg.Prefixes = uncached(cfg.Prefixes, ch.CachedThrough)
	cfg.Late = nil
	return so, cfg, nil
}

// uncached are the prefixes of the steps after line cachedThrough.
func uncached(prefixes []Prefix, cachedThrough int) []Prefix {
	return slices.DeleteFunc(slices.Clone(prefixes), func(p Prefix) bool { return p.Line <= cachedThrough })
}

// frontend is the build function of the main solve: strata's frontend,
// taking the cache imports chosen late when Config.Late is set, and
// reading the files it reads for itself from the session's directories,
// those reads shown with show (nil: not shown).
func (sp *streamedPush) frontend(show func(*client.SolveStatus)) gwclient.BuildFunc {
	var late frontend.LateImports[client.CacheOptionsEntry]
	if l := sp.cfg.Late; l != nil {
		late = func(ctx context.Context) ([]client.CacheOptionsEntry, error) {
			ch, err := l(ctx)
			return ch.Imports, err
		}
	}
	return frontend.InProcess[client.CacheOptionsEntry]{Dirs: sp.dirs, Late: late, Resolves: sp.cfg.Resolves, Show: show}.BuildFunc()
}
