package lint

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps lint free of BuildKit's client, gateway and
// solver, and of any registry code, so a lint-only binary stays small and
// the frontend can embed it without pulling in the builder.
func TestDependencies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
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
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, f+"/") {
				t.Errorf("lint depends on %s", dep)
			}
		}
	}
}
