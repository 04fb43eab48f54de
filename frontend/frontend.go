// Package frontend is strata's BuildKit frontend: the gateway Build function
// that both `strata build` (in-process, through the BuildKit client) and the
// strata frontend image run. It wraps BuildKit's stock Dockerfile builder, so
// every Dockerfile feature keeps working, and adds strata's lint findings as
// build warnings and to the frontend.lint subrequest (`--check`), and, given
// a shared cache index, the cache imports it chooses (see autocache.go).
package frontend

import (
	"context"
	"fmt"
	"strings"

	dockerfile "github.com/moby/buildkit/frontend/dockerfile/builder"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerui"
	"github.com/moby/buildkit/frontend/gateway/client"
)

// Name is the product name strata reports to BuildKit for in-process builds.
const Name = "strata"

// Version is strata's version, set at link time with
// -ldflags "-X github.com/strata-build/strata/frontend.Version=...".
var Version = "dev"

const (
	keyRequestID = "requestid"
	keyCmdline   = "cmdline"
	keySyntaxArg = "build-arg:BUILDKIT_SYNTAX"
	lintRequest  = "frontend.lint"
)

// Build solves the Dockerfile described by c's options (filename, target,
// build-arg:*, platform, cache-imports, ...) exactly as BuildKit's stock
// Dockerfile frontend does, after strata's linter has looked at it.
func Build(ctx context.Context, c client.Client) (*client.Result, error) {
	bc, err := dockerui.NewClient(c)
	if err != nil {
		return nil, err
	}
	opts := bc.BuildOpts().Opts
	src, err := bc.ReadEntrypoint(ctx, "Dockerfile")
	if err != nil {
		return nil, err
	}
	if forwarded(opts, src.Data) {
		// Another frontend builds this Dockerfile; it lints it too.
		if c, err = settled(ctx, c); err != nil {
			return nil, err
		}
		return dockerfile.Build(ctx, c)
	}
	switch opts[keyRequestID] {
	case "":
		cfg, err := checkConfig(bc, src.Data)
		if err != nil {
			return nil, err
		}
		// strata's findings fail the build only with check=error=true:
		// otherwise they are worked out and sent while the build starts.
		linted := make(chan struct{})
		if cfg.ReturnAsError {
			fs := findings(ctx, bc, src, cfg)
			sendWarnings(ctx, src, fs)
			if len(fs) > 0 {
				return nil, lintError(fs)
			}
			close(linted)
		} else {
			go func() {
				defer close(linted)
				sendWarnings(ctx, src, findings(ctx, bc, src, cfg))
			}()
		}
		notice := func(msg string) { src.Warn(ctx, msg, client.WarnOpts{Level: 1}) }
		for _, k := range unknownOptions(opts) {
			notice(fmt.Sprintf("unknown frontend option %q: strata reads %s", k, strings.Join(autoCacheOptions, ", ")))
		}
		res, err := dockerfile.Build(ctx, withAutoCache(ctx, c, bc, src, notice))
		<-linted
		return res, err
	case lintRequest:
		res, err := dockerfile.Build(ctx, c)
		if err != nil {
			return nil, err
		}
		return addLintResults(ctx, bc, src, res)
	default:
		return dockerfile.Build(ctx, c)
	}
}

// forwarded reports whether the stock builder hands this build to the
// frontend named by BUILDKIT_SYNTAX or a "# syntax=" line.
func forwarded(opts map[string]string, dt []byte) bool {
	if _, ok := opts[keyCmdline]; ok {
		return false // this frontend is the one a syntax line named
	}
	if _, ok := opts[keySyntaxArg]; ok {
		return true
	}
	_, _, _, ok := parser.DetectSyntax(dt)
	return ok
}
