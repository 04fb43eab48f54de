package integration

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// TestCacheSharedIndexCLI runs the index and plan commands against the
// shared index in the real registry, and their usage and registry errors.
func TestCacheSharedIndexCLI(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": fmt.Sprintf("FROM %s\nRUN echo cli > /cli\nRUN echo two > /two\n", env.Busybox)})
	v1 := env.Registry.Host + "/cli/app:v1"
	if code, _, stderr := strata(t, "build", "--builder", env.Builder.Addr(), "--progress", "quiet", "-t", v1, "--push", dir); code != 0 {
		t.Fatalf("build: exit %d: %s", code, stderr)
	}
	index := env.Registry.Host + "/strata/index:cli"
	code, out, stderr := strata(t, "index", "refresh", "--registry", env.Registry.Host, "--repo", "cli/*", "--index", index)
	if code != 0 || !strings.Contains(out, "1 fetched") || !strings.Contains(out, "holds 1 images") {
		t.Fatalf("refresh: exit %d\n%s%s", code, out, stderr)
	}
	if strings.Contains(stderr, "repositories") {
		t.Errorf("progress printed without a terminal:\n%s", stderr)
	}
	code, _, stderr = strata(t, "index", "refresh", "--registry", env.Registry.Host, "--repo", "cli/*", "--index", index, "--progress", "plain")
	if code != 0 || !strings.Contains(stderr, "repositories 1/1  tags 1/1  fetched 0  unchanged 1  skipped 0") {
		t.Fatalf("plain progress: exit %d\n%s", code, stderr)
	}
	code, out, stderr = strata(t, "plan", "--index", index, dir)
	if code != 0 || !strings.Contains(out, "#1 "+v1+"  2 of 2 steps (2 exact)") || !strings.Contains(out, env.Registry.Host+"/cli/app@sha256:") {
		t.Fatalf("plan: exit %d\n%s%s", code, out, stderr)
	}

	v2 := env.Registry.Host + "/cli/app:v2"
	writeFiles(t, dir, map[string]string{"Dockerfile": fmt.Sprintf("FROM %s\nRUN echo cli > /cli\nRUN echo three > /three\n", env.Busybox)})
	if code, _, stderr := strata(t, "build", "--builder", env.Builder.Addr(), "--progress", "quiet", "-t", v2, "--push", dir); code != 0 {
		t.Fatalf("build v2: exit %d: %s", code, stderr)
	}
	if code, _, stderr := strata(t, "index", "add", "--index", index, v2); code != 0 {
		t.Fatalf("index add: exit %d: %s", code, stderr)
	}
	code, out, _ = strata(t, "plan", "--index", index, dir)
	if code != 0 || !strings.Contains(out, "#1 "+v2+"  2 of 2 steps (2 exact)") || !strings.Contains(out, "#2 "+v1+"  1 of 2 steps (1 exact)") {
		t.Fatalf("plan after add: exit %d\n%s", code, out)
	}

	file := filepath.Join(t.TempDir(), "i.idx")
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"index", "refresh"}, 2, "--registry is required"},
		{[]string{"index", "refresh", "--registry", env.Registry.Host, "--jobs", "0", "--index-file", file}, 2, "--jobs"},
		{[]string{"index", "refresh", "--registry", env.Registry.Host, "--repo", "[", "--index-file", file}, 2, "--repo"},
		{[]string{"plan", "--index", index, "--index-file", file, dir}, 2, "exclusive"},
		{[]string{"plan", "--index-file", file, t.TempDir()}, 2, "Dockerfile"},
		{[]string{"plan", "--index-file", file, "--target", "nope", dir}, 2, "target stage"},
		{[]string{"index", "refresh", "--registry", "127.0.0.1:1", "--repo", "x", "--index-file", file}, 4, "registry"},
		{[]string{"index", "add", "--index-file", file, env.Registry.Host + "/cli/missing:v1"}, 4, "registry"},
	} {
		code, _, stderr := strata(t, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.msg) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("strata %s: exit %d, want %d with %q in one line:\n%s", strings.Join(tc.args, " "), code, tc.code, tc.msg, stderr)
		}
	}
}
