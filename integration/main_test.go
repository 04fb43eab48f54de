// Package integration runs strata against the real test bed: a distribution
// registry and buildkitd started on loopback and unix sockets, and the real
// docker buildx client.
package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/strata-build/strata/cache/store"
	"github.com/strata-build/strata/cmd/strata/cli"
	"github.com/strata-build/strata/integration/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() || os.Getenv("STRATA_SKIP_INTEGRATION") != "" {
		fmt.Println("integration: skipped (-short or STRATA_SKIP_INTEGRATION)")
		os.Exit(0)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	var err error
	env, err = testenv.Start(ctx)
	if err == nil {
		// Builds that push record their images in the index: keep that
		// out of the user's own index file.
		os.Setenv(store.IndexFileEnv, filepath.Join(env.Dir, "index.idx"))
		// So are the layers strata remembers having compressed, and the
		// rest of its cache directory.
		os.Setenv("XDG_CACHE_HOME", filepath.Join(env.Dir, "cache"))
	}
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: test bed: %v\n", err)
		if env != nil {
			fmt.Fprint(os.Stderr, env.Logs())
		}
		os.Exit(1)
	}
	code := m.Run()
	if code != 0 {
		fmt.Fprint(os.Stderr, env.Logs())
	}
	env.Close()
	os.Exit(code)
}

// strata runs the strata command in-process and returns its exit code, stdout and stderr.
func strata(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := cli.Main(args, strings.NewReader(""), &out, &errOut)
	t.Logf("strata %s: exit %d\n%s", strings.Join(args, " "), code, tail(errOut.String(), 30))
	return code, out.String(), errOut.String()
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// writeFiles creates files (path -> content) under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// remoteImage reads ref's image from the test bed's registry.
func remoteImage(t *testing.T, ref string) (name.Reference, v1.Image) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r)
	if err != nil {
		t.Fatalf("read %s back: %v", ref, err)
	}
	return r, img
}

// layerDigests are the digests of img's layers, in order.
func layerDigests(t *testing.T, img v1.Image) []v1.Hash {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]v1.Hash, len(ls))
	for i, l := range ls {
		if out[i], err = l.Digest(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// verifyImage pulls every blob of ref back from the registry, checks each
// digest and size, and returns the image.
func verifyImage(t *testing.T, ref, wantDigest string) v1.Image {
	t.Helper()
	r, img := remoteImage(t, ref)
	if err := validate.Image(img); err != nil {
		t.Fatalf("%s does not validate: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if wantDigest != "" && d.String() != wantDigest {
		t.Fatalf("%s has digest %s, the build reported %s", ref, d, wantDigest)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		ld, _ := l.Digest()
		if _, err := remote.Layer(r.Context().Digest(ld.String())); err != nil {
			t.Fatalf("layer %s of %s: %v", ld, ref, err)
		}
	}
	return img
}

func readMetadata(t *testing.T, path string) map[string]json.RawMessage {
	t.Helper()
	dt, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(dt, &m); err != nil {
		t.Fatalf("metadata %s: %v\n%s", path, err, dt)
	}
	return m
}

func metadataString(t *testing.T, m map[string]json.RawMessage, key string) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(m[key], &s); err != nil {
		t.Fatalf("metadata %s: %v", key, err)
	}
	return s
}
