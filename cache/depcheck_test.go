package cache

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps the cache packages libraries the frontend can
// embed: crawl, plan and store may use BuildKit's Dockerfile conversion and
// a registry client, but not BuildKit's daemon client, solver or workers,
// nor strata's build side; the root package, what they share (the index
// and its format), uses neither BuildKit nor a registry client.
func TestDependencies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	libraries := []string{
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
	for _, tc := range []struct {
		pkg      string
		exact    []string
		prefixes []string
	}{
		{".", nil, append([]string{"github.com/moby/buildkit", "github.com/google/go-containerregistry/pkg/v1/remote"}, libraries...)},
		{"./crawl", []string{"github.com/moby/buildkit/client"}, libraries},
		{"./plan", []string{"github.com/moby/buildkit/client"}, libraries},
		{"./store", []string{"github.com/moby/buildkit/client"}, libraries},
	} {
		t.Run(tc.pkg, func(t *testing.T) {
			out, err := exec.Command("go", "list", "-deps", tc.pkg).CombinedOutput()
			if err != nil {
				t.Fatalf("go list: %v\n%s", err, out)
			}
			for _, dep := range strings.Fields(string(out)) {
				for _, f := range tc.exact {
					if dep == f {
						t.Errorf("%s depends on %s", tc.pkg, dep)
					}
				}
				for _, f := range tc.prefixes {
					if dep == f || strings.HasPrefix(dep, f+"/") {
						t.Errorf("%s depends on %s", tc.pkg, dep)
					}
				}
			}
		})
	}
}
