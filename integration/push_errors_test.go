package integration

import (
	"fmt"
	"strings"
	"testing"

	"github.com/strata-build/strata/errs"
	"github.com/strata-build/strata/integration/testenv"
)

// A registry that refuses the push, or asks for credentials strata does not
// have, fails the build with exit code 4 and one line naming the registry
// error; no tag is created.
func TestPushRefused(t *testing.T) {
	authDir := t.TempDir()
	authReg, err := testenv.StartRegistry(t.Context(), env.BinDir, authDir, testenv.WithBasicAuth("ci", "s3cret-sentinel"))
	if err != nil {
		t.Fatal(err)
	}
	defer authReg.Stop()

	closed, err := testenv.StartRegistry(t.Context(), env.BinDir, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	closed.Stop() // its port now refuses connections

	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": fmt.Sprintf("FROM %s\nRUN echo refused > /x\n", env.Busybox)})
	for _, tc := range []struct{ name, ref, want string }{
		{"credentials required", authReg.Host + "/app:v1", "docker login"},
		{"connection refused", closed.Host + "/app:v1", "is running and reachable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("DOCKER_CONFIG", t.TempDir()) // no credentials
			code, _, stderr := strata(t, "build", "--builder", env.Builder.Addr(), "--progress", "quiet",
				"-t", tc.ref, "--push", dir)
			if code != errs.ExitRegistry {
				t.Fatalf("exit %d, want %d\n%s", code, errs.ExitRegistry, stderr)
			}
			last := strings.TrimSpace(stderr[strings.LastIndex(strings.TrimSpace(stderr), "\n")+1:])
			if !strings.HasPrefix(last, "strata: registry error") || !strings.Contains(strings.ToLower(last), tc.want) {
				t.Errorf("error line %q does not name the registry error %q", last, tc.want)
			}
		})
	}
}
