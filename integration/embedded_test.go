package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/strata-build/strata/builder"
)

// strataBin runs the strata binary with vars (KEY=VALUE) added, without
// BUILDKIT_HOST, and returns its exit code and combined output.
func strataBin(t *testing.T, vars []string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(env.BinDir, "strata"), args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BUILDKIT_HOST=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, vars...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	t.Logf("strata %s: exit %d\n%s", strings.Join(args, " "), code, tail(string(out), 15))
	return code, string(out)
}

// TestEmbeddedBuilder: with no builder configured, strata starts its own
// buildkitd, a second build reuses it, and 'strata builder stop' ends it.
func TestEmbeddedBuilder(t *testing.T) {
	local := ownBuilder(t)
	vars := []string{"STRATA_BUILDER_DIR=" + local.Dir}

	code, out := strataBin(t, vars, "builder", "status")
	if code != 0 || !strings.Contains(out, "stopped") {
		t.Fatalf("status before first build: exit %d\n%s", code, out)
	}

	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": fmt.Sprintf("FROM %s\nRUN echo one > /one\n", env.Busybox)})
	if code, out := strataBin(t, vars, "build", "--progress", "plain", dir); code != 0 {
		t.Fatalf("first build: exit %d\n%s", code, out)
	}
	pid := local.PID()
	if pid == 0 {
		t.Fatal("no local buildkitd running after the first build")
	}
	code, out = strataBin(t, vars, "builder", "status")
	if code != 0 || !strings.Contains(out, "running") || !strings.Contains(out, fmt.Sprint(pid)) {
		t.Fatalf("status: exit %d\n%s", code, out)
	}

	if code, out := strataBin(t, vars, "build", "--progress", "plain", dir); code != 0 || !strings.Contains(out, "CACHED") {
		t.Fatalf("second build: exit %d, want a cached build on the same daemon\n%s", code, out)
	}
	if got := local.PID(); got != pid {
		t.Fatalf("second build started a new buildkitd (pid %d, was %d)", got, pid)
	}

	// A buildkitd killed between builds (an OOM kill, a reboot of its
	// container) leaves its pid file and socket behind; the next build
	// starts a new one.
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitExited(t, pid)
	if code, out := strataBin(t, vars, "build", "--progress", "plain", dir); code != 0 || !strings.Contains(out, "CACHED") {
		t.Fatalf("build after buildkitd was killed: exit %d, want a build on a new daemon that kept the cache on disk\n%s", code, out)
	}
	if got := local.PID(); got == 0 || got == pid {
		t.Fatalf("no new buildkitd after the old one was killed (pid %d, was %d)", got, pid)
	}

	if code, out := strataBin(t, vars, "builder", "stop"); code != 0 || !strings.Contains(out, "stopped") {
		t.Fatalf("stop: exit %d\n%s", code, out)
	}
	if local.PID() != 0 {
		t.Fatal("buildkitd still running after 'strata builder stop'")
	}
}

// ownBuilder is the state directory of a strata builder of the test's
// own (STRATA_BUILDER_DIR), stopped and removed when the test ends.
func ownBuilder(t *testing.T) *builder.Local {
	t.Helper()
	dir, err := os.MkdirTemp("", "strata-own-")
	if err != nil {
		t.Fatal(err)
	}
	local := &builder.Local{Dir: dir}
	t.Cleanup(func() {
		_ = local.Stop(20 * time.Second)
		_ = os.RemoveAll(dir)
	})
	return local
}

// waitExited waits until the killed process pid has exited.
func waitExited(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); syscall.Kill(pid, 0) == nil; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the killed process %d did not exit", pid)
		}
	}
}

// TestInsecureRegistryOnOwnBuilder: a registry BuildKit does not take for
// loopback (0.0.0.0:PORT reaches the test registry on Linux, and is not a
// loopback address) needs plain HTTP in the daemon's own configuration.
// --insecure-registry gives strata's own builder that configuration,
// restarting it once when it was started without, and not again after.
func TestInsecureRegistryOnOwnBuilder(t *testing.T) {
	local := ownBuilder(t)
	stateDir := local.Dir
	vars := []string{"STRATA_BUILDER_DIR=" + stateDir, "STRATA_BUILDER_SNAPSHOTTER=overlayfs"}
	_, port, _ := strings.Cut(env.Registry.Host, ":")
	host := "0.0.0.0:" + port
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM " + host + "/busybox:latest\nRUN echo plain > /plain\n"})

	code, out := strataBin(t, vars, "build", "--progress", "plain", dir)
	if code == 0 {
		t.Fatalf("a build from %s without --insecure-registry succeeded; the test reaches nothing it means to\n%s", host, out)
	}
	first := local.PID()
	if first == 0 {
		t.Fatal("no buildkitd running after the first build")
	}

	ref := host + "/plain/app:v1"
	code, out = strataBin(t, vars, "build", "--progress", "plain", "--insecure-registry", host, "-t", ref, "--push", dir)
	if code != 0 {
		t.Fatalf("build with --insecure-registry %s: exit %d\n%s", host, code, out)
	}
	second := local.PID()
	if second == 0 || second == first {
		t.Fatalf("buildkitd was not restarted for the registry (PID %d, was %d)", second, first)
	}
	if cfg, err := os.ReadFile(filepath.Join(stateDir, "buildkitd.toml")); err != nil || !strings.Contains(string(cfg), `[registry."`+host+`"]`) {
		t.Fatalf("buildkitd.toml has no table for %s (%v):\n%s", host, err, cfg)
	}
	if code, out := strataBin(t, vars, "builder", "status"); code != 0 || !regexp.MustCompile(`(?m)^plain HTTP: +`+regexp.QuoteMeta(host)+`$`).MatchString(out) {
		t.Fatalf("builder status: exit %d, want a line naming %s\n%s", code, host, out)
	}

	if code, out := strataBin(t, vars, "build", "--progress", "plain", "--insecure-registry", host, dir); code != 0 {
		t.Fatalf("second build with --insecure-registry: exit %d\n%s", code, out)
	}
	if got := local.PID(); got != second {
		t.Fatalf("buildkitd restarted although it already reaches %s (PID %d, was %d)", host, got, second)
	}
	if code, out := strataBin(t, vars, "build", "--insecure-registry", "http://"+host, dir); code != 2 || !strings.Contains(out, "not a registry host") {
		t.Fatalf("--insecure-registry with a scheme: exit %d, want 2 and one line saying so\n%s", code, out)
	}
}
