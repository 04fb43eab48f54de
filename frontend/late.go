package frontend

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"

	controlapi "github.com/moby/buildkit/api/services/control"
	"github.com/moby/buildkit/frontend/gateway/client"
)

// LateImports are cache imports still being chosen when a build starts,
// as BuildKit's client or gateway client types them. The function waits
// for them; it returns early only when ctx ends.
type LateImports[E cacheEntry] func(ctx context.Context) ([]E, error)

// cacheEntry is a cache import: client.CacheOptionsEntry, or the BuildKit
// client's type of the same fields.
type cacheEntry interface {
	~struct {
		Type  string
		Attrs map[string]string
	}
}

// withLateImports is f, the frontend of a build whose cache imports are
// still being chosen when it starts, given a gateway client on which
// reading the Dockerfile and the context and resolving the base images go
// on meanwhile, and only the solve of the build itself (the one the stock
// builder sends with the cache-imports option) waits for them. A build the
// stock builder forwards to another frontend waits for them before it is
// forwarded (settled).
func withLateImports[E cacheEntry](imports LateImports[E], f client.BuildFunc) client.BuildFunc {
	chosen := func(ctx context.Context) ([]client.CacheOptionsEntry, error) {
		es, err := imports(ctx)
		if err != nil {
			return nil, err
		}
		out := make([]client.CacheOptionsEntry, len(es))
		for i, e := range es {
			out[i] = client.CacheOptionsEntry(e)
		}
		return out, nil
	}
	return func(ctx context.Context, c client.Client) (*client.Result, error) {
		return f(ctx, &lateClient{Client: c, imports: chosen})
	}
}

// lateImport stands, in the cache-imports option the stock builder reads,
// for the imports not chosen yet; lateClient.Solve puts them in its place.
// BuildKit never sees it.
const lateImport = "strata-chosen"

// lateClient is a gateway client whose cache-imports option ends with the
// lateImport placeholder, and whose solves replace the placeholder with the
// imports once they are chosen.
type lateClient struct {
	client.Client
	imports func(context.Context) ([]client.CacheOptionsEntry, error)

	once sync.Once
	opts client.BuildOpts
	err  error
}

func (l *lateClient) BuildOpts() client.BuildOpts {
	l.once.Do(func() {
		l.opts = l.Client.BuildOpts()
		l.opts.Opts = maps.Clone(l.opts.Opts)
		l.opts.Opts, l.err = withImports(l.opts.Opts, []client.CacheOptionsEntry{{Type: lateImport}})
	})
	if l.err != nil {
		return l.Client.BuildOpts() // the stock builder reports the option
	}
	return l.opts
}

func (l *lateClient) Solve(ctx context.Context, req client.SolveRequest) (*client.Result, error) {
	i := slices.IndexFunc(req.CacheImports, func(e client.CacheOptionsEntry) bool { return e.Type == lateImport })
	if i < 0 {
		return l.Client.Solve(ctx, req)
	}
	chosen, err := l.imports(ctx)
	if err != nil {
		return nil, err
	}
	req.CacheImports = slices.Concat(req.CacheImports[:i:i], chosen, req.CacheImports[i+1:])
	return l.Client.Solve(ctx, req)
}

// settled is c with the imports chosen in its cache-imports option, for a
// build handed to another frontend, which cannot know the placeholder.
func settled(ctx context.Context, c client.Client) (client.Client, error) {
	l := lateOf(c)
	if l == nil {
		return c, nil
	}
	chosen, err := l.imports(ctx)
	if err != nil {
		return nil, err
	}
	bo := l.Client.BuildOpts()
	if bo.Opts, err = withImports(maps.Clone(bo.Opts), chosen); err != nil {
		return nil, err
	}
	return &withOpts{Client: c, opts: bo}, nil
}

// lateOf is the lateClient c is, or wraps (under the local reads), or nil.
func lateOf(c client.Client) *lateClient {
	for {
		switch w := c.(type) {
		case *lateClient:
			return w
		case *localReadsClient:
			c = w.Client
		default:
			return nil
		}
	}
}

// withImports is opts with add appended to its cache-imports option (JSON,
// as BuildKit's client writes it). opts may be nil.
func withImports(opts map[string]string, add []client.CacheOptionsEntry) (map[string]string, error) {
	if len(add) == 0 {
		return opts, nil
	}
	var entries []*controlapi.CacheOptionsEntry
	if cur := opts[keyCacheImports]; cur != "" {
		if err := json.Unmarshal([]byte(cur), &entries); err != nil {
			return nil, fmt.Errorf("cache-imports %q: %v", cur, err)
		}
	}
	for _, e := range add {
		entries = append(entries, &controlapi.CacheOptionsEntry{Type: e.Type, Attrs: e.Attrs})
	}
	dt, err := json.Marshal(entries)
	if err != nil {
		return nil, err
	}
	if opts == nil {
		opts = map[string]string{}
	}
	opts[keyCacheImports] = string(dt)
	return opts, nil
}
