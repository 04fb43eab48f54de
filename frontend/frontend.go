// Package frontend is strata's BuildKit frontend: the gateway Build function
// that both `strata build` (in-process, through the BuildKit client) and the
// strata frontend image run. It wraps BuildKit's stock Dockerfile builder, so
// every Dockerfile feature keeps working.
package frontend

import (
	"context"

	dockerfile "github.com/moby/buildkit/frontend/dockerfile/builder"
	"github.com/moby/buildkit/frontend/gateway/client"
)

// Name is the product name strata reports to BuildKit for in-process builds.
const Name = "strata"

// Build solves the Dockerfile described by c's options (filename, target,
// build-arg:*, platform, cache-imports, ...) exactly as BuildKit's stock
// Dockerfile frontend does.
func Build(ctx context.Context, c client.Client) (*client.Result, error) {
	return dockerfile.Build(ctx, c)
}

// Version is strata's version, set at link time with
// -ldflags "-X github.com/strata-build/strata/frontend.Version=...".
var Version = "dev"
