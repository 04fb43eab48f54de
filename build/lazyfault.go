package build

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/client"

	"github.com/strata-build/strata/cache/crawl"
	"github.com/strata-build/strata/cache/plan"
	"github.com/strata-build/strata/errs"
)

// A builder with the stargz snapshotter reads the layers a build reuses
// from the registry as its steps read their files. A registry that stops
// answering then shows inside a step, as a file that cannot be read, and
// the build fails with the step's exit code. lazyReads turns that into a
// registry error naming a layer the registry no longer gives.

// readErrors are what a step prints when a file cannot be read.
var readErrors = [][]byte{[]byte("I/O error"), []byte("Input/output error"), []byte("input/output error"),
	[]byte("Transport endpoint is not connected"), []byte("transport endpoint is not connected")}

// readFailures notes step output that reports a file that could not be read.
type readFailures struct{ seen atomic.Bool }

func (r *readFailures) observe(st *client.SolveStatus) {
	for _, l := range st.Logs {
		for _, t := range readErrors {
			if bytes.Contains(l.Data, t) {
				r.seen.Store(true)
			}
		}
	}
}

// lazyReads knows the layers of a build's cache sources, read from the
// registry when the build starts, on a builder that pulls lazily.
type lazyReads struct {
	resolver *plan.RegistryResolver
	done     chan struct{}
	mu       sync.Mutex
	layers   map[string][]v1.Hash // by cache source
	order    []string
}

// watchLazyReads starts reading the layers of the registry cache sources.
func watchLazyReads(ctx context.Context, imports []client.CacheOptionsEntry, insecure []string, platform string) *lazyReads {
	w := &lazyReads{resolver: plan.NewRegistryResolver(crawl.WithInsecureRegistries(insecure...)), done: make(chan struct{}), layers: map[string][]v1.Hash{}}
	p := plan.ImagePlatform(platform)
	for _, im := range imports {
		if ref := im.Attrs["ref"]; im.Type == "registry" && ref != "" {
			w.order = append(w.order, ref)
		}
	}
	go func() {
		defer close(w.done)
		for _, ref := range w.order {
			if img, err := w.resolver.ResolveImage(ctx, ref, p); err == nil {
				w.mu.Lock()
				w.layers[ref] = img.Layers
				w.mu.Unlock()
			}
		}
	}()
	return w
}

// fault returns a registry error naming the first layer of a cache source
// the registry does not give now, or nil when it gives them all.
func (w *lazyReads) fault(ctx context.Context) error {
	select {
	case <-w.done:
	case <-time.After(5 * time.Second):
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ref := range w.order {
		for i, l := range w.layers[ref] {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := w.resolver.CheckBlob(cctx, ref, l)
			cancel()
			if err != nil {
				return errs.WithHint(fmt.Errorf("%w: a step could not read its files: the registry does not give layer %s (%d of %d) of cache source %s, which the builder reads as steps need its files (%s)",
					errs.ErrRegistry, l, i+1, len(w.layers[ref]), ref, errs.FirstLine(err.Error())), "check that the registry answers, then build again")
			}
		}
	}
	return nil
}
