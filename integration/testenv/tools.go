// Package testenv is strata's test bed: a real distribution registry and a
// real buildkitd on loopback and unix sockets in temporary directories,
// stopped by PID, seeded with base images made without internet access.
//
// It is used by the integration tests, the benchmarks and the demo, so it
// does not depend on package testing.
package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Tool packages, pinned by the tool lines of go.mod.
var toolPackages = map[string]string{
	"buildkitd": "github.com/moby/buildkit/cmd/buildkitd",
	"buildctl":  "github.com/moby/buildkit/cmd/buildctl",
	"registry":  "github.com/distribution/distribution/v3/cmd/registry",
	"buildx":    "github.com/docker/buildx/cmd/buildx",
}

// RepoRoot returns the directory holding strata's go.mod.
func RepoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside the strata module")
	}
	return filepath.Dir(mod), nil
}

// BinDir is where the test bed's binaries live: STRATA_BIN_DIR, else <repo>/.bin.
func BinDir() (string, error) {
	if d := os.Getenv("STRATA_BIN_DIR"); d != "" {
		return filepath.Abs(d)
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, ".bin"), nil
}

// EnsureTools builds strata and the pinned tools into dir with the go
// command; Go's build cache makes this quick when nothing changed. It
// returns the directory.
func EnsureTools(ctx context.Context) (string, error) {
	dir, err := BinDir()
	if err != nil {
		return "", err
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	pkgs := []string{"./cmd/strata"}
	for _, p := range toolPackages {
		pkgs = append(pkgs, p)
	}
	args := append([]string{"build", "-ldflags", "-X github.com/moby/buildkit/version.Version=v0.33.1", "-o", dir + string(os.PathSeparator)}, pkgs...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build tools: %v\n%s", err, out)
	}
	// The frontend runs in a scratch image: build it static.
	cmd = exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", filepath.Join(dir, "strata-frontend"), "./cmd/strata-frontend")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build strata-frontend: %v\n%s", err, out)
	}
	return dir, nil
}
