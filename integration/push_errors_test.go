package integration

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

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

// Credentials come from the docker config, as with docker and buildctl.
func TestPushWithDockerConfigCredentials(t *testing.T) {
	reg, err := testenv.StartRegistry(t.Context(), env.BinDir, t.TempDir(), testenv.WithBasicAuth("ci", "s3cret-sentinel"))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Stop()
	cfg := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte("ci:s3cret-sentinel"))
	writeFiles(t, cfg, map[string]string{"config.json": fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, reg.Host, auth)})
	t.Setenv("DOCKER_CONFIG", cfg)

	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": fmt.Sprintf("FROM %s\nRUN echo authenticated > /x\n", env.Busybox)})
	ref := reg.Host + "/private/app:v1"
	meta := filepath.Join(t.TempDir(), "m.json")
	index := filepath.Join(t.TempDir(), "index.idx")
	code, stdout, stderr := strata(t, "build", "--builder", env.Builder.Addr(), "--progress", "plain", "--index-file", index, "-t", ref, "--push", "--metadata-file", meta, dir)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, tail(stderr, 20))
	}
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r, remote.WithAuth(&authn.Basic{Username: "ci", Password: "s3cret-sentinel"}))
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatal(err)
	}
	// Everything strata wrote: its output, the metadata file and the index
	// it recorded the image in (which must hold the image, so the check
	// looks at a file that was written).
	written := map[string]string{"standard output": stdout, "standard error": stderr}
	for _, f := range []string{meta, index} {
		dt, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		written[f] = string(dt)
	}
	if !strings.Contains(written[index], "private/app") {
		t.Fatalf("the index does not hold the pushed image")
	}

	// A second repository takes the first image as its cache (from the
	// index) and mounts its layers from there, with the same credentials.
	branchMeta := filepath.Join(t.TempDir(), "m.json")
	code, stdout, stderr = strata(t, "build", "--builder", env.Builder.Addr(), "--progress", "plain", "--index-file", index,
		"-t", reg.Host+"/private/branch:v1", "--push", "--metadata-file", branchMeta, dir)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, tail(stderr, 20))
	}
	written["the second build's output"] = stdout + stderr
	var st struct {
		Push struct {
			Layers []struct {
				Digest      string
				MountedFrom string
			}
		}
	}
	if err := json.Unmarshal(readMetadata(t, branchMeta)["strata"], &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Push.Layers) == 0 {
		t.Fatal("the second build reports no layers")
	}
	for _, l := range st.Push.Layers {
		if l.MountedFrom != "private/app" {
			t.Errorf("layer %s of private/branch: mounted from %q, want private/app", l.Digest, l.MountedFrom)
		}
	}
	for what, text := range written {
		if strings.Contains(text, "s3cret-sentinel") || strings.Contains(text, auth) {
			t.Errorf("the credentials appear in %s", what)
		}
	}
}

// An image the Dockerfile builds on that cannot be had is one line naming
// it: exit 2 when its registry does not have it (nothing to retry), 4 when
// the registry cannot be reached, both with the streamed push and with
// BuildKit's own.
func TestBaseImageUnavailable(t *testing.T) {
	closed, err := testenv.StartRegistry(t.Context(), env.BinDir, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	closed.Stop() // its port now refuses connections
	for _, tc := range []struct {
		name, from string
		code       int
		want       []string
	}{
		{"not in the registry", env.Registry.Host + "/no-such-base:v1", errs.ExitUsage,
			[]string{"image " + env.Registry.Host + "/no-such-base:v1 not found", "FROM"}},
		{"registry down", closed.Host + "/busybox:latest", errs.ExitRegistry,
			[]string{"image " + closed.Host + "/busybox:latest could not be pulled", "connection refused", "registry address"}},
	} {
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{"Dockerfile": "ARG BASE\nFROM ${BASE}\nRUN echo unreachable > /x\n"})
		for _, stream := range []string{"true", "false"} {
			t.Run(tc.name+"/stream="+stream, func(t *testing.T) {
				code, _, stderr := strata(t, "build", "--builder", env.Builder.Addr(), "--progress", "quiet", "--stream="+stream,
					"--build-arg", "BASE="+tc.from, "-t", env.Registry.Host+"/base-missing:v1", "--push", dir)
				failsWith(t, code, stderr, tc.code, tc.want...)
			})
		}
	}
}
