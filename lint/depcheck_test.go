package lint

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps lint, and the Dockerfile model a build shares its
// parse with, free of BuildKit's client, gateway and solver, and of any
// registry code, so a lint-only binary stays small and the frontend can
// embed them without pulling in the builder.
func TestDependencies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	forbidden := []string{
		"github.com/moby/buildkit/client",
		"github.com/moby/buildkit/frontend/gateway",
		"github.com/moby/buildkit/frontend/dockerui",
		"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb",
		"github.com/moby/buildkit/solver",
		"github.com/moby/buildkit/session",
		"github.com/moby/buildkit/util/resolver",
		"github.com/google/go-containerregistry",
		"github.com/regclient/regclient",
		"github.com/containerd/containerd",
		"github.com/docker/docker",
		"github.com/docker/cli",
		"github.com/distribution/distribution",
		"google.golang.org/grpc",
		"github.com/strata-build/strata/cache",
	}
	for _, tc := range []struct {
		pkg   string
		extra []string
	}{
		{".", nil},
		// The model reads the Dockerfile alone.
		{"../dockerfile", []string{"github.com/strata-build/strata/lint", "github.com/strata-build/strata/buildcontext", "github.com/strata-build/strata/build"}},
	} {
		t.Run(tc.pkg, func(t *testing.T) {
			out, err := exec.Command("go", "list", "-deps", tc.pkg).CombinedOutput()
			if err != nil {
				t.Fatalf("go list: %v\n%s", err, out)
			}
			for _, dep := range strings.Fields(string(out)) {
				for _, f := range append(forbidden, tc.extra...) {
					if dep == f || strings.HasPrefix(dep, f+"/") {
						t.Errorf("%s depends on %s", tc.pkg, dep)
					}
				}
			}
		})
	}
}
