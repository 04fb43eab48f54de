package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// buildx returns a command running the real buildx client as the docker CLI
// plugin when the docker CLI is installed, and standalone otherwise.
func buildx(t *testing.T, dockerConfig string, args ...string) *exec.Cmd {
	t.Helper()
	var cmd *exec.Cmd
	if docker, err := exec.LookPath("docker"); err == nil {
		cmd = exec.Command(docker, append([]string{"buildx"}, args...)...)
	} else {
		t.Logf("docker CLI not found: running buildx standalone")
		cmd = exec.Command(filepath.Join(env.BinDir, "buildx"), args...)
	}
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+dockerConfig, "BUILDX_NO_DEFAULT_ATTESTATIONS=1")
	return cmd
}

// newBuildx makes a docker config directory with the buildx plugin and a
// builder called name on the test bed's buildkitd (remote driver).
func newBuildx(t *testing.T, name string) string {
	t.Helper()
	cfg := t.TempDir()
	plugins := filepath.Join(cfg, "cli-plugins")
	if err := os.MkdirAll(plugins, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(env.BinDir, "buildx"), filepath.Join(plugins, "docker-buildx")); err != nil {
		t.Fatal(err)
	}
	run(t, buildx(t, cfg, "create", "--name", name, "--driver", "remote", env.Builder.Addr()))
	return cfg
}

func run(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, tail(string(out), 40))
	}
	return string(out)
}

// TestBuildxRemoteDriver builds the same multi-stage Dockerfile that strata
// builds, through the real docker buildx client with the remote driver on the
// test bed's buildkitd, pushes it and reads it back.
func TestBuildxRemoteDriver(t *testing.T) {
	cfg := newBuildx(t, "strata-test")
	out := run(t, buildx(t, cfg, "inspect", "--bootstrap", "strata-test"))
	if !strings.Contains(out, "running") {
		t.Fatalf("builder not running:\n%s", out)
	}

	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Dockerfile": fmt.Sprintf(multiStage, env.Busybox),
		"main.txt":   "hello from buildx\n",
	})
	ref := env.Registry.Host + "/app:buildx"
	meta := filepath.Join(t.TempDir(), "metadata.json")
	run(t, buildx(t, cfg, "build", "--builder", "strata-test", "--progress", "plain", "--provenance=false",
		"-t", ref, "--push", "--metadata-file", meta, dir))
	m := readMetadata(t, meta)
	verifyImage(t, ref, metadataString(t, m, "containerimage.digest"))
}
