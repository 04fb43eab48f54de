package integration

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/strata-build/strata/errs"
)

// A secret that would reach the image fails `strata build` before anything
// is built or pushed, with one line that names the file, the line and the
// way out; the check's own skip directives let the build go on.
func TestSecretFindingsFailTheBuild(t *testing.T) {
	base := "FROM " + env.Busybox + "\n"
	// dev copies the whole context; app needs dev, tools needs nothing of it.
	multi := "FROM " + env.Busybox + " AS dev\nCOPY . /src\n" +
		"FROM " + env.Busybox + " AS app\nCOPY --from=dev /src /src\n" +
		"FROM " + env.Busybox + " AS tools\nRUN true\n"
	cases := []struct {
		name      string
		files     map[string]string
		buildArgs []string
		target    string
		rule      string // "" means the build succeeds
	}{
		{"env file copied", map[string]string{"Dockerfile": base + "COPY . /app\n", ".env": "API_KEY=1\n", "main.txt": "x"}, nil, "", "SecretInContext"},
		{"private key copied", map[string]string{"Dockerfile": base + "COPY keys/ /keys/\n", "keys/id_ed25519": "-----BEGIN OPENSSH PRIVATE KEY-----\n"}, nil, "", "SecretInContext"},
		{"token in an ARG", map[string]string{"Dockerfile": base + "ARG API_TOKEN=abc\nRUN true\n"}, nil, "", "SecretsUsedInArgOrEnv"},
		{"in a stage the target copies from", map[string]string{"Dockerfile": multi, ".env": "API_KEY=1\n"}, nil, "app", "SecretInContext"},
		{"env file ignored", map[string]string{"Dockerfile": base + "COPY . /app\n", ".env": "API_KEY=1\n", ".dockerignore": ".env\n"}, nil, "", ""},
		{"skipped in the Dockerfile", map[string]string{"Dockerfile": "# check=skip=SecretInContext\n" + base + "COPY . /app\n", ".env": "API_KEY=1\n"}, nil, "", ""},
		{"skipped by build argument", map[string]string{"Dockerfile": base + "ARG API_TOKEN=abc\nRUN true\n"}, []string{"BUILDKIT_DOCKERFILE_CHECK=skip=SecretsUsedInArgOrEnv"}, "", ""},
		{"in a stage the target does not need", map[string]string{"Dockerfile": multi, ".env": "API_KEY=1\n"}, nil, "tools", ""},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, tc.files)
			ref := env.Registry.Host + "/secret-findings/app:v" + string(rune('a'+i))
			args := []string{"build", "--builder", env.Builder.Addr(), "--progress", "plain", "-t", ref, "--push"}
			for _, a := range tc.buildArgs {
				args = append(args, "--build-arg", a)
			}
			if tc.target != "" {
				args = append(args, "--target", tc.target)
			}
			code, _, stderr := strata(t, append(args, dir)...)
			r, _ := name.ParseReference(ref, name.Insecure)
			_, headErr := remote.Head(r)
			if tc.rule == "" {
				if code != 0 || headErr != nil {
					t.Fatalf("exit %d (image: %v), want a pushed image\n%s", code, headErr, tail(stderr, 10))
				}
				return
			}
			if code != errs.ExitFailed {
				t.Fatalf("exit %d, want %d\n%s", code, errs.ExitFailed, tail(stderr, 10))
			}
			last := lastLine(stderr)
			if !strings.Contains(last, tc.rule) || !strings.Contains(last, "Dockerfile:") || !strings.Contains(last, "check=skip="+tc.rule) {
				t.Errorf("error line %q does not name the rule, the line and the skip", last)
			}
			if strings.Contains(stderr, "#1 ") {
				t.Errorf("the build started before the secret check failed it:\n%s", tail(stderr, 10))
			}
			if headErr == nil {
				t.Error("an image was pushed although the build failed on a secret")
			}
		})
	}
}

// Secrets passed with --secret (from a file and from the environment) are
// seen by RUN steps but reach no layer, no config or history entry, no
// metadata file and no output of a streamed push.
func TestSecretNeverReachesPushedImage(t *testing.T) {
	const fileSecret, envSecret = "file-secret-sentinel-5a1c", "env-secret-sentinel-9d2e"
	sum := func(s string) string { return fmt.Sprintf("%x", sha256.Sum256([]byte(s))) }
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		// The Dockerfile names only the secrets' digests: the steps prove
		// they saw the secrets without the text holding them.
		"Dockerfile": "FROM " + env.Busybox + "\n" +
			"RUN --mount=type=secret,id=file --mount=type=secret,id=tok,env=TOK " +
			"sha256sum /run/secrets/file | grep -q " + sum(fileSecret) + " && printf %s \"$TOK\" | sha256sum | grep -q " + sum(envSecret) + " && echo used > /used\n" +
			"RUN --mount=type=secret,id=file,target=/etc/app.key cp /etc/app.key /tmp/ && rm /tmp/app.key && head -c 100000 /dev/urandom > /data\n",
	})
	secret := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(secret, []byte(fileSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("STRATA_TEST_TOKEN", envSecret)
	ref := env.Registry.Host + "/secrets/app:v1"
	meta := filepath.Join(t.TempDir(), "meta.json")
	code, stdout, stderr := strata(t, "build", "--builder", env.Builder.Addr(), "--progress", "plain",
		"--secret", "id=file,src="+secret, "--secret", "id=tok,env=STRATA_TEST_TOKEN",
		"-t", ref, "--push", "--metadata-file", meta, dir)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, tail(stderr, 20))
	}
	metaData, err := os.ReadFile(meta)
	if err != nil {
		t.Fatal(err)
	}
	img := verifyImage(t, ref, metadataString(t, readMetadata(t, meta), "containerimage.digest"))
	cfg, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	written := map[string][]byte{"stdout": []byte(stdout), "stderr": []byte(stderr), "metadata file": metaData, "config": cfg, "manifest": manifest}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		dt, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		d, _ := l.Digest()
		written["layer "+d.String()] = dt
	}
	if len(layers) < 3 {
		t.Fatalf("%d layers, want the base and two RUN layers", len(layers))
	}
	for what, dt := range written {
		for _, s := range []string{fileSecret, envSecret} {
			if bytes.Contains(dt, []byte(s)) {
				t.Errorf("the secret %q is in the %s", s, what)
			}
		}
	}
	if !bytes.Contains(cfg, []byte("sha256sum /run/secrets/file")) {
		t.Error("the history does not show the RUN steps that used the secrets")
	}
}
