package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
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

// TestCacheFromBuildxDefaults: v1 is pushed by docker buildx build as a
// user runs it, with its default provenance attestation (an image index
// holding the image and an attestation manifest) and inline cache. v2, one
// source file changed in a new commit, is built by strata with no flags on
// a fresh runner: it reads the target repository and reuses every step
// before the changed COPY.
func TestCacheFromBuildxDefaults(t *testing.T) {
	cfg := newBuildx(t, "strata-defaults")
	t0 := time.Date(2026, 4, 1, 10, 0, 0, 0, time.UTC)
	dir := gitApp(t, commitsDockerfile(), t0)
	repo := env.Registry.Host + "/buildx-defaults/app"
	cmd := buildx(t, cfg, "build", "--builder", "strata-defaults", "--progress", "plain",
		"--cache-to", "type=inline", "-t", repo+":latest", "--push", dir)
	cmd.Env = slices.DeleteFunc(cmd.Env, func(kv string) bool { return strings.HasPrefix(kv, "BUILDX_NO_DEFAULT_ATTESTATIONS=") })
	run(t, cmd)
	ref, err := name.ParseReference(repo+":latest", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(ref)
	if err != nil {
		t.Fatalf("v1 by buildx is not an image index (default attestations): %v", err)
	}
	if m, err := idx.IndexManifest(); err != nil || len(m.Manifests) < 2 {
		t.Fatalf("v1 by buildx: index with %v manifests (%v), want the image and its attestation", m, err)
	}

	changeSource(t, dir, t0.Add(time.Hour))
	addr := freshRunner(t, "buildx-defaults-v2")
	meta := filepath.Join(t.TempDir(), "m.json")
	code, _, stderr := strata(t, "build", "--builder", addr, "--progress", "plain", "-t", repo+":v2", "--push", "--metadata-file", meta, dir)
	if code != 0 {
		t.Fatalf("v2: exit %d\n%s", code, tail(stderr, 20))
	}
	if !strings.Contains(stderr, "cache sources from target repository "+repo) {
		t.Errorf("the progress does not say the target repository was read:\n%s", tail(stderr, 40))
	}
	if st := strataMetadata(t, readMetadata(t, meta)); st.Steps.Total != 6 || st.Steps.Cached != 4 {
		t.Errorf("v2 from buildx's v1 on a fresh runner: steps %+v, want 4 of 6 cached\n%s", st.Steps, tail(stderr, 40))
	}
}
