package plan

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps package plan a library the frontend can
// embed: BuildKit's Dockerfile conversion and a registry client, but not
// BuildKit's daemon client, solver or workers, nor strata's build side.
func TestDependencies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	exact := []string{"github.com/moby/buildkit/client"}
	prefixes := []string{
		"github.com/moby/buildkit/control",
		"github.com/moby/buildkit/worker",
		"github.com/moby/buildkit/solver/llbsolver/ops",
		"github.com/strata-build/strata/build",
		"github.com/strata-build/strata/builder",
		"github.com/strata-build/strata/frontend",
		"github.com/strata-build/strata/lint",
		"github.com/strata-build/strata/cmd",
		"github.com/docker/docker",
		"github.com/distribution/distribution",
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range exact {
			if dep == f {
				t.Errorf("cache/plan depends on %s", dep)
			}
		}
		for _, f := range prefixes {
			if dep == f || strings.HasPrefix(dep, f+"/") {
				t.Errorf("cache/plan depends on %s", dep)
			}
		}
	}
}
