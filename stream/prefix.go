package stream

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/session/filesync"
	"github.com/tonistiigi/fsutil"

	"github.com/strata-build/strata/errs"
	"github.com/strata-build/strata/frontend"
	"github.com/strata-build/strata/push"
)

// writePrefixes writes each prefix Dockerfile into a directory of its own,
// a local mount of the session beside the build's own.
func (sp *streamedPush) writePrefixes(so client.SolveOpt) error {
	dockerfile := sp.cfg.Dockerfile
	sp.dirs = filesync.StaticDirSource{}
	for k, v := range so.LocalMounts {
		sp.dirs[k] = v
	}
	// BuildKit reads <Dockerfile>.dockerignore from beside the Dockerfile
	// before the context's .dockerignore: each prefix needs it too, or its
	// COPY layers would differ from the final image's.
	ignore, err := os.ReadFile(dockerfile + ".dockerignore")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return errs.Inputf("%s.dockerignore: %v", dockerfile, err)
	}
	for i, pf := range sp.cfg.Prefixes {
		dir := filepath.Join(sp.tmp, fmt.Sprintf("prefix-%d", i+1))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(dockerfile)), pf.Dockerfile, 0o600); err != nil {
			return err
		}
		if ignore != nil {
			if err := os.WriteFile(filepath.Join(dir, filepath.Base(dockerfile)+".dockerignore"), ignore, 0o600); err != nil {
				return err
			}
		}
		if sp.dirs[filepath.Base(dir)], err = fsutil.NewFS(dir); err != nil {
			return err
		}
	}
	return nil
}

// prefixChain solves the prefixes in order, each when the one before it has
// been exported, none once stop is closed, and converts and uploads each
// prefix's new layers.
func (sp *streamedPush) prefixChain(ctx context.Context, c *client.Client, so client.SolveOpt, stop <-chan struct{}) {
	cachedThrough := 0
	if sp.cfg.Late != nil {
		ch, err := sp.cfg.Late(ctx)
		if err != nil {
			return
		}
		so.CacheImports = slices.Concat(so.CacheImports, ch.Imports)
		cachedThrough = ch.CachedThrough
	}
	for i, pf := range sp.cfg.Prefixes {
		if pf.Line <= cachedThrough {
			continue
		}
		select {
		case <-stop:
			return
		default:
		}
		attrs := clone(so.FrontendAttrs)
		attrs["dockerfilekey"] = fmt.Sprintf("prefix-%d", i+1)
		popt := sp.withSession(so, clone(exportAttrs))
		popt.FrontendAttrs = attrs
		popt.CacheImports = so.CacheImports
		resp, err := c.Build(ctx, popt, frontend.Name, frontend.InProcess[client.CacheOptionsEntry]{Dirs: sp.dirs, Resolves: sp.cfg.Resolves}.BuildFunc(), sp.p.Quiet())
		if err != nil {
			return // the main solve reports build errors; its export covers the rest
		}
		desc, err := exportedDescriptor(resp.ExporterResponse)
		if err != nil {
			return
		}
		if err := sp.readImage(ctx, desc); err != nil {
			return
		}
		ls, err := push.Layers(ctx, sp.store, desc)
		if err != nil {
			return
		}
		at := time.Now()
		for _, l := range ls {
			if sp.conv.converts(l) {
				sp.convertAndPush(l, at)
				continue
			}
			sp.layers.builtAt(l, at)
			for _, ps := range sp.pushers {
				ps.PushBlob(sp.pushCtx, l)
			}
		}
	}
}
