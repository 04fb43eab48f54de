package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/strata-build/strata/integration/testenv"
)

var (
	frontendOnce sync.Once
	frontendRef  string
	frontendErr  error
)

// frontendImage builds the repository's Dockerfile (target prebuilt, the
// static binary from .bin) with strata and pushes it to the test registry.
func frontendImage(t *testing.T) string {
	t.Helper()
	frontendOnce.Do(func() {
		root, err := testenv.RepoRoot()
		if err != nil {
			frontendErr = err
			return
		}
		// The context is the repository; prebuilt copies .bin/strata-frontend.
		bin := filepath.Join(root, ".bin", "strata-frontend")
		if env.BinDir != filepath.Join(root, ".bin") {
			if err := os.MkdirAll(filepath.Dir(bin), 0o755); err == nil {
				dt, err := os.ReadFile(filepath.Join(env.BinDir, "strata-frontend"))
				if err == nil {
					err = os.WriteFile(bin, dt, 0o755)
				}
				if err != nil {
					frontendErr = err
					return
				}
			}
		}
		ref := env.Registry.Host + "/strata/frontend:test"
		code, _, stderr := strata(t, "build", "--builder", env.Builder.Addr(), "--progress", "plain",
			"--target", "prebuilt", "-t", ref, "--push", root)
		if code != 0 {
			frontendErr = fmt.Errorf("building the frontend image: exit %d\n%s", code, tail(stderr, 20))
			return
		}
		frontendRef = ref
	})
	if frontendErr != nil {
		t.Fatal(frontendErr)
	}
	return frontendRef
}

// A Dockerfile with one strata finding (NonDeterministicRun) and one of
// BuildKit's own checks (FromAsCasing).
const lintedDockerfile = `FROM %s as base
RUN date > /built-at
`

// The frontend image works through the three doors users have: a syntax
// line, BUILDKIT_SYNTAX with docker buildx, and buildctl's gateway frontend;
// strata's findings arrive as build warnings beside BuildKit's.
func TestFrontendImageDoors(t *testing.T) {
	fe := frontendImage(t)
	cfg := newBuildx(t, "strata-fe")

	t.Run("syntax line with buildx", func(t *testing.T) {
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{"Dockerfile": "# syntax=" + fe + "\n" + fmt.Sprintf(lintedDockerfile, env.Busybox)})
		out := run(t, buildx(t, cfg, "build", "--builder", "strata-fe", "--progress", "plain", dir))
		wantWarnings(t, out, "NonDeterministicRun", "FromAsCasing")
	})
	t.Run("BUILDKIT_SYNTAX with buildx", func(t *testing.T) {
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{"Dockerfile": fmt.Sprintf(lintedDockerfile, env.Busybox)})
		out := run(t, buildx(t, cfg, "build", "--builder", "strata-fe", "--progress", "plain", "--build-arg", "BUILDKIT_SYNTAX="+fe, dir))
		wantWarnings(t, out, "NonDeterministicRun", "FromAsCasing")
	})
	t.Run("buildctl gateway frontend", func(t *testing.T) {
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{"Dockerfile": fmt.Sprintf(lintedDockerfile, env.Busybox)})
		cmd := exec.Command(filepath.Join(env.BinDir, "buildctl"), "--addr", env.Builder.Addr(), "build", "--progress", "plain",
			"--frontend", "gateway.v0", "--opt", "source="+fe, "--local", "context="+dir, "--local", "dockerfile="+dir)
		wantWarnings(t, run(t, cmd), "NonDeterministicRun", "FromAsCasing")
	})
	t.Run("check returns both rule sets", func(t *testing.T) {
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{"Dockerfile": "# syntax=" + fe + "\n" + fmt.Sprintf(lintedDockerfile, env.Busybox)})
		out, _ := buildx(t, cfg, "build", "--builder", "strata-fe", "--check", dir).CombinedOutput()
		wantWarnings(t, string(out), "NonDeterministicRun", "FromAsCasing")

		js, _ := buildx(t, cfg, "build", "--builder", "strata-fe", "--call=check,format=json", dir).Output()
		var res struct {
			Warnings []struct {
				RuleName string `json:"ruleName"`
				URL      string `json:"url"`
			} `json:"warnings"`
		}
		if err := json.Unmarshal(js, &res); err != nil {
			t.Fatalf("--call=check,format=json: %v\n%s", err, js)
		}
		rules := map[string]string{}
		for _, w := range res.Warnings {
			rules[w.RuleName] = w.URL
		}
		if _, ok := rules["FromAsCasing"]; !ok {
			t.Errorf("BuildKit's FromAsCasing missing from %s", js)
		}
		if u, ok := rules["NonDeterministicRun"]; !ok || !strings.Contains(u, "NonDeterministicRun") {
			t.Errorf("strata's NonDeterministicRun missing (or without URL) in %s", js)
		}
	})
	t.Run("check=error=true fails the build", func(t *testing.T) {
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{"Dockerfile": "# syntax=" + fe + "\n# check=error=true;skip=FromAsCasing\n" + fmt.Sprintf(lintedDockerfile, env.Busybox)})
		out, err := buildx(t, cfg, "build", "--builder", "strata-fe", "--progress", "plain", dir).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "NonDeterministicRun") {
			t.Fatalf("build with check=error=true: err %v\n%s", err, tail(string(out), 20))
		}
	})
}

func wantWarnings(t *testing.T, out string, rules ...string) {
	t.Helper()
	for _, r := range rules {
		if !strings.Contains(out, r) {
			t.Errorf("output does not show %s:\n%s", r, tail(out, 30))
		}
	}
}
