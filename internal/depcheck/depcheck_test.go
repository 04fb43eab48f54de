// Package depcheck holds the one test of what strata's packages may
// import: the rules of docs/architecture.md, checked with go list.
package depcheck

import (
	"os/exec"
	"strings"
	"testing"
)

const strata = "github.com/strata-build/strata/"

// builderSide are the packages of the build side, which the libraries
// (the cache, lint) must not reach: the frontend embeds them.
var builderSide = []string{
	"github.com/moby/buildkit/control",
	"github.com/moby/buildkit/worker",
	"github.com/moby/buildkit/solver/llbsolver/ops",
	strata + "build",
	strata + "builder",
	strata + "frontend",
	strata + "lint",
	strata + "cmd",
	"github.com/docker/docker",
	"github.com/distribution/distribution",
}

// registryAndClient are what lint never uses: BuildKit's client, gateway
// and solver, and any registry code, so a lint-only binary stays small.
var registryAndClient = []string{
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
	strata + "cache",
}

func TestDependencies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	for _, tc := range []struct {
		pkg string
		why string
		// direct: only the package's own imports are checked, not
		// what they import in turn.
		direct   bool
		exact    []string
		prefixes []string
	}{
		{pkg: "cache", why: "the index and its format use neither BuildKit nor a registry client",
			prefixes: append([]string{"github.com/moby/buildkit", "github.com/google/go-containerregistry/pkg/v1/remote"}, builderSide...)},
		{pkg: "cache/crawl", why: "the cache libraries stay embeddable in the frontend",
			exact: []string{"github.com/moby/buildkit/client"}, prefixes: builderSide},
		{pkg: "cache/plan", why: "the cache libraries stay embeddable in the frontend",
			exact: []string{"github.com/moby/buildkit/client"}, prefixes: builderSide},
		{pkg: "cache/store", why: "the cache libraries stay embeddable in the frontend",
			exact: []string{"github.com/moby/buildkit/client"}, prefixes: builderSide},
		{pkg: "lint", why: "lint never reaches the builder or a registry", prefixes: registryAndClient},
		{pkg: "dockerfile", why: "the Dockerfile model is read by lint, the cache and the build alike",
			prefixes: append([]string{strata + "lint", strata + "buildcontext", strata + "build"}, registryAndClient...)},
		{pkg: "stream", why: "the streamed push takes what it needs as a Config; it runs the frontend, which uses the rest on its own",
			direct: true, prefixes: []string{strata + "build", strata + "builder", strata + "buildcontext", strata + "lint", strata + "cmd"}},
	} {
		t.Run(tc.pkg, func(t *testing.T) {
			args := []string{"list", "-deps", strata + tc.pkg}
			if tc.direct {
				args = []string{"list", "-f", `{{join .Imports " "}}`, strata + tc.pkg}
			}
			out, err := exec.Command("go", args...).CombinedOutput()
			if err != nil {
				t.Fatalf("go list: %v\n%s", err, out)
			}
			for _, dep := range strings.Fields(string(out)) {
				for _, f := range tc.exact {
					if dep == f {
						t.Errorf("%s depends on %s: %s", tc.pkg, dep, tc.why)
					}
				}
				for _, f := range tc.prefixes {
					if dep == f || strings.HasPrefix(dep, f+"/") {
						t.Errorf("%s depends on %s: %s", tc.pkg, dep, tc.why)
					}
				}
			}
		})
	}
}
