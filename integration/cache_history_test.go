package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/strata-build/strata/cache"
	"github.com/strata-build/strata/cache/plan"
	"github.com/strata-build/strata/integration/testenv"
)

// TestCacheHistoryMatchesBuildKit builds each case of cache/plan/testdata/history
// with strata on the real buildkitd, and checks that the steps strata
// derives from the Dockerfile are exactly the steps of the pushed image's
// history. With STRATA_UPDATE_TESTDATA=1 it stores the configs as testdata
// for the offline table tests.
func TestCacheHistoryMatchesBuildKit(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "cache", "plan", "testdata", "history")
	cases, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	update := os.Getenv("STRATA_UPDATE_TESTDATA") != ""
	if update {
		raw := rawConfig(t, env.Busybox)
		writeJSON(t, filepath.Join(dir, "busybox.json"), raw)
	}
	for _, c := range cases {
		if !c.IsDir() {
			continue
		}
		t.Run(c.Name(), func(t *testing.T) {
			ctxDir := filepath.Join(dir, c.Name())
			args := []string{"build", "--builder", env.Builder.Addr(), "--progress", "plain", "--push",
				"-t", env.Registry.Host + "/history/" + c.Name() + ":v1", "--build-arg", "BASE=" + env.Busybox}
			buildArgs := map[string]string{"BASE": env.Busybox}
			dt, _ := os.ReadFile(filepath.Join(ctxDir, "build-args"))
			for _, kv := range strings.Fields(string(dt)) {
				args = append(args, "--build-arg", kv)
				k, v, _ := strings.Cut(kv, "=")
				buildArgs[k] = v
			}
			if code, _, stderr := strata(t, append(args, ctxDir)...); code != 0 {
				t.Fatalf("build: exit %d: %s", code, tail(stderr, 20))
			}
			raw := rawConfig(t, env.Registry.Host+"/history/"+c.Name()+":v1")
			if _, err := os.Stat(filepath.Join(ctxDir, "config.json")); update || os.IsNotExist(err) {
				writeJSON(t, filepath.Join(ctxDir, "config.json"), raw)
			}
			cf, err := v1.ParseConfigFile(bytes.NewReader(raw))
			if err != nil {
				t.Fatal(err)
			}
			got, err := cache.NormalizeHistory(cf.History, len(cf.RootFS.DiffIDs))
			if err != nil {
				t.Fatal(err)
			}
			stages, err := plan.DockerfileStages(context.Background(), plan.StagesOptions{
				ContextDir: ctxDir, BuildArgs: buildArgs, Resolver: plan.NewRegistryResolver(),
			})
			if err != nil {
				t.Fatal(err)
			}
			want := stages[len(stages)-1]
			if want.Skipped != "" {
				t.Fatalf("target stage skipped: %s", want.Skipped)
			}
			if len(got) != len(want.Steps) {
				t.Fatalf("image has %d steps, the Dockerfile %d:\nimage:      %q\ndockerfile: %q", len(got), len(want.Steps), tokens(got), tokens(want.Steps))
			}
			for i := range got {
				if got[i].Token != want.Steps[i].Token {
					t.Errorf("step %d: image %q, Dockerfile %q", i, got[i].Token, want.Steps[i].Token)
				}
			}
		})
	}
}

func tokens(steps []cache.Step) []string {
	out := make([]string, len(steps))
	for i, s := range steps {
		out[i] = s.Token
	}
	return out
}

func rawConfig(t *testing.T, ref string) []byte {
	t.Helper()
	_, img := remoteImage(t, ref)
	raw, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func writeJSON(t *testing.T, path string, raw []byte) {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		t.Fatal(err)
	}
	buf.WriteByte('\n')
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
