package cache

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps the cache package what its packages share: the
// index and its format, with neither BuildKit nor a registry client, nor
// strata's build side.
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
		"github.com/moby/buildkit",
		"github.com/google/go-containerregistry/pkg/v1/remote",
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range exact {
			if dep == f {
				t.Errorf("cache depends on %s", dep)
			}
		}
		for _, f := range prefixes {
			if dep == f || strings.HasPrefix(dep, f+"/") {
				t.Errorf("cache depends on %s", dep)
			}
		}
	}
}
