package build

import (
	"context"
	"io"
	"os"

	"github.com/containerd/console"
	"github.com/moby/buildkit/client"
	gateway "github.com/moby/buildkit/frontend/gateway/client"
	"github.com/tonistiigi/fsutil"

	"github.com/strata-build/strata/buildcontext"
	"github.com/strata-build/strata/frontend"
	"github.com/strata-build/strata/stream"
)

// PendingChoice is a cache choice still being made when Run is called
// (see Options.Pending).
type PendingChoice struct {
	done   chan struct{}
	choice Choice
}

// Pending is the choice ch delivers.
func Pending(ch <-chan Choice) *PendingChoice {
	p := &PendingChoice{done: make(chan struct{})}
	go func() {
		p.choice = <-ch
		close(p.done)
	}()
	return p
}

// Wait returns the choice once it is made.
func (p *PendingChoice) Wait() Choice {
	<-p.done
	return p.choice
}

// wait is Wait, or ctx's error when it ends first.
func (p *PendingChoice) wait(ctx context.Context) (Choice, error) {
	select {
	case <-p.done:
		return p.choice, nil
	case <-ctx.Done():
		return Choice{}, ctx.Err()
	}
}

// startsBeforeChoice reports whether Run can start the solve before
// opt.Pending is made. It cannot on a builder that pulls lazily (how a
// streamed push exports depends on where the cache sources are, and the
// lazy reads are watched per cache source), nor under a terminal display,
// which the choice's notes printed meanwhile would tear.
func startsBeforeChoice(opt Options, out io.Writer, pullsLazily bool) bool {
	if opt.Pending == nil || pullsLazily {
		return false
	}
	switch opt.Progress {
	case "tty":
		return false
	case "", "auto":
		if f, ok := out.(*os.File); ok {
			if _, err := console.ConsoleFromFile(f); err == nil {
				return false
			}
		}
	}
	return true
}

// lateImports are the cache imports of the choice p, as solve options.
func lateImports(ctx context.Context, p *PendingChoice) ([]client.CacheOptionsEntry, error) {
	c, err := p.wait(ctx)
	if err != nil {
		return nil, err
	}
	var out []client.CacheOptionsEntry
	for _, im := range c.Imports {
		typ, attrs, err := cacheImport(im.Ref)
		if err != nil {
			continue // a ref the index holds that no longer parses: not a cache source
		}
		out = append(out, client.CacheOptionsEntry{Type: typ, Attrs: attrs})
	}
	return out, nil
}

// buildFunc is the Dockerfile frontend of a solve whose session serves
// dirs, taking the cache imports of the choice p when it sends the build,
// sharing its resolves of base images through shared, and showing the
// steps of its own reads with show (nil: not shown).
func buildFunc(p *PendingChoice, dirs map[string]fsutil.FS, shared *frontend.Resolves, show func(*client.SolveStatus)) gateway.BuildFunc {
	var late frontend.LateImports[client.CacheOptionsEntry]
	if p != nil {
		late = func(ctx context.Context) ([]client.CacheOptionsEntry, error) { return lateImports(ctx, p) }
	}
	return frontend.InProcess[client.CacheOptionsEntry]{Dirs: dirs, Late: late, Resolves: shared, Show: show}.BuildFunc()
}

// streamLate is stream.Config.Late for the choice p; with noCache every
// step runs, and each gets its prefix solve.
func streamLate(p *PendingChoice, noCache bool) func(context.Context) (stream.Chosen, error) {
	return func(ctx context.Context) (stream.Chosen, error) {
		imports, err := lateImports(ctx, p)
		if err != nil {
			return stream.Chosen{}, err
		}
		ch := stream.Chosen{Imports: imports}
		if !noCache {
			ch.CachedThrough = p.Wait().CachedThrough
		}
		return ch, nil
	}
}

// OpenContext opens the build context, when it is not open yet, so the
// cache choice and Run, which may start before the choice is made, share
// one walk of it and the digests of its files. A context that cannot be
// opened is left to Run to report.
func (o Options) OpenContext() Options {
	if o.BuildContext != nil {
		return o
	}
	contextDir, dockerfile, err := o.resolve()
	if err != nil {
		return o
	}
	if bc, err := buildcontext.Open(contextDir, dockerfile); err == nil {
		o.BuildContext = bc
	}
	return o
}
