package integration

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/strata-build/strata/build"
	"github.com/strata-build/strata/cmd/strata/cli"
)

const multiStage = `FROM %[1]s AS deps
RUN mkdir -p /deps && echo "lib 1.0" > /deps/lock && sha256sum /deps/lock > /deps/lock.sum

FROM %[1]s AS build
WORKDIR /src
COPY --from=deps /deps /deps
COPY main.txt .
RUN cat main.txt /deps/lock > app.bin

FROM %[1]s
COPY --from=build /src/app.bin /app/app.bin
RUN test -s /app/app.bin && echo built > /app/status
CMD ["cat", "/app/app.bin"]
`

func TestBuildAndPushMultiStage(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Dockerfile": fmt.Sprintf(multiStage, env.Busybox),
		"main.txt":   "hello from strata\n",
	})
	ref := env.Registry.Host + "/app:v1"
	meta := filepath.Join(t.TempDir(), "metadata.json")
	code, out, stderr := strata(t, "build", "--builder", env.Builder.Addr(), "-t", ref, "--push",
		"--progress", "plain", "--metadata-file", meta, dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, tail(stderr, 20))
	}
	m := readMetadata(t, meta)
	digest := metadataString(t, m, "containerimage.digest")
	if !strings.HasPrefix(digest, "sha256:") || strings.TrimSpace(out) != digest {
		t.Fatalf("digest %q, stdout %q", digest, out)
	}
	st := strataMetadata(t, m)
	if st.Version != 1 || st.Timings.Total <= 0 || st.Timings.Solve > st.Timings.Total {
		t.Fatalf("strata metadata: %+v", st)
	}
	// deps: RUN; build: WORKDIR, COPY, COPY, RUN; final: COPY, RUN
	if st.Steps.Total != 7 || st.Steps.Cached != 0 {
		t.Errorf("first build steps = %+v, want 7 run, none cached", st.Steps)
	}
	checkStepNumbers(t, stderr)

	img := verifyImage(t, ref, digest)
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cf.Config.Cmd, " "); got != "cat /app/app.bin" {
		t.Errorf("CMD = %q", got)
	}
	layers, _ := img.Layers()
	// busybox + COPY --from=build + RUN
	if len(layers) != 3 {
		t.Errorf("%d layers, want 3", len(layers))
	}
	if _, ok := cf.Config.Labels["moby.buildkit.cache.v0"]; !ok {
		// inline cache lives in the config's top level, which go-containerregistry drops;
		// read the raw config instead.
		raw, err := img.RawConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(raw), "moby.buildkit.cache.v0") {
			t.Errorf("pushed config carries no inline cache metadata")
		}
	}

	// A second build of the same inputs is answered from the cache.
	code, _, stderr = strata(t, "build", "--builder", env.Builder.Addr(), "-t", ref, "--push", "--progress", "plain",
		"--metadata-file", meta, dir)
	if code != 0 {
		t.Fatalf("rebuild exit %d: %s", code, tail(stderr, 20))
	}
	if st := strataMetadata(t, readMetadata(t, meta)); st.Steps.Total != 7 || st.Steps.Cached != 7 {
		t.Errorf("rebuild steps = %+v, want all 7 cached", st.Steps)
	}
}

// stepName is a Dockerfile step in plain progress: "#12 [build 2/4] COPY ...".
var stepName = regexp.MustCompile(`(?m)^#\d+ \[([^\]]*?) ?\s*(\d+)/(\d+)\] `)

// checkStepNumbers fails when plain progress numbers the steps of one
// stage against different totals ("[2/2] RUN" beside "[3/7] WORKDIR"), as
// when a step is named after a streamed push's prefix solve.
func checkStepNumbers(t *testing.T, progress string) {
	t.Helper()
	totals := map[string]string{}
	for _, m := range stepName.FindAllStringSubmatch(progress, -1) {
		if seen, ok := totals[m[1]]; ok && seen != m[3] {
			t.Errorf("steps of stage %q counted out of %s and of %s:\n%s", m[1], seen, m[3], strings.Join(stepName.FindAllString(progress, -1), "\n"))
			return
		}
		totals[m[1]] = m[3]
	}
	if len(totals) == 0 {
		t.Error("no step in the progress")
	}
}

type strataMeta struct {
	Version int
	Timings struct{ Total, Solve float64 }
	Steps   struct{ Total, Cached int }
	Push    build.PushStats
}

func strataMetadata(t *testing.T, m map[string]json.RawMessage) strataMeta {
	t.Helper()
	var st strataMeta
	if err := json.Unmarshal(m["strata"], &st); err != nil {
		t.Fatalf("strata metadata %s: %v", m["strata"], err)
	}
	return st
}

func TestBuildOutputLocal(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Dockerfile": "FROM " + env.Busybox + " AS base\nARG GREETING=hi\nRUN echo \"$GREETING\" > /greeting\nFROM scratch\nCOPY --from=base /greeting /\n",
	})
	out := t.TempDir()
	code, _, stderr := strata(t, "build", "--builder", env.Builder.Addr(), "--progress", "quiet",
		"--build-arg", "GREETING=bonjour", "--output", "type=local,dest="+out, dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	dt, err := os.ReadFile(filepath.Join(out, "greeting"))
	if err != nil || string(dt) != "bonjour\n" {
		t.Fatalf("greeting = %q, %v", dt, err)
	}
}

// --secret reaches RUN --mount=type=secret and never a layer.
func TestBuildSecret(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Dockerfile": "FROM " + env.Busybox + " AS base\n" +
			"RUN --mount=type=secret,id=token sha256sum /run/secrets/token | cut -d' ' -f1 > /token.sum && test ! -s /run/secrets/none\n" +
			"FROM scratch\nCOPY --from=base /token.sum /\n",
	})
	secret := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(secret, []byte("top-secret-sentinel"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	code, _, stderr := strata(t, "build", "--builder", env.Builder.Addr(), "--progress", "plain",
		"--secret", "id=token,src="+secret, "--output", "type=local,dest="+out, dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, tail(stderr, 20))
	}
	dt, err := os.ReadFile(filepath.Join(out, "token.sum"))
	if err != nil {
		t.Fatal(err)
	}
	// sha256 of "top-secret-sentinel": the secret reached the RUN step.
	if got := strings.TrimSpace(string(dt)); got != "d8c02b171b544d677ee152f30a347a4b0a1c2852b642df29783d1729ce7c719c" {
		t.Fatalf("secret digest in the image = %q", got)
	}
	if strings.Contains(stderr, "top-secret-sentinel") {
		t.Fatal("the secret appears in the build output")
	}
}

// The flags of docker buildx build that CI pipelines pass most (named
// contexts, labels, extra hosts, --pull, --iidfile) mean what they mean
// there, with the streamed push and with BuildKit's own.
func TestBuildxBuildFlags(t *testing.T) {
	app, shared := t.TempDir(), t.TempDir()
	writeFiles(t, app, map[string]string{"Dockerfile": "FROM base\nCOPY --from=shared common.txt /common.txt\nRUN grep ci-host /etc/hosts > /hosts.txt\n"})
	writeFiles(t, shared, map[string]string{"common.txt": "shared file\n"})
	for _, stream := range []string{"true", "false"} {
		t.Run("stream="+stream, func(t *testing.T) {
			ref := env.Registry.Host + "/buildx-flags:" + stream
			iid := filepath.Join(t.TempDir(), "iid")
			code, out, stderr := strata(t, "build", "--builder", env.Builder.Addr(), "--progress", "plain", "--stream="+stream,
				"--build-context", "base=docker-image://"+env.Busybox, "--build-context", "shared="+shared,
				"--label", "org.opencontainers.image.revision=abc123", "--add-host", "ci-host:10.1.2.3", "--pull",
				"--iidfile", iid, "-t", ref, "--push", app)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, tail(stderr, 20))
			}
			img := verifyImage(t, ref, strings.TrimSpace(out))
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if got := cf.Config.Labels["org.opencontainers.image.revision"]; got != "abc123" {
				t.Errorf("label = %q, want abc123", got)
			}
			id, err := img.ConfigName()
			if err != nil {
				t.Fatal(err)
			}
			if got, err := os.ReadFile(iid); err != nil || string(got) != id.String() {
				t.Errorf("--iidfile holds %q (%v), want the config digest %s", got, err, id)
			}
			files := imageFiles(t, img, "common.txt", "hosts.txt")
			if files["common.txt"] != "shared file\n" || !strings.Contains(files["hosts.txt"], "10.1.2.3") {
				t.Errorf("files from the named context and the extra host: %q", files)
			}
		})
	}
}

// imageFiles reads the named files (paths without the leading "/") from
// the image's flattened filesystem.
func imageFiles(t *testing.T, img v1.Image, names ...string) map[string]string {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	out := map[string]string{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if name := strings.TrimPrefix(h.Name, "./"); slices.Contains(names, name) {
			dt, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			out[name] = string(dt)
		}
	}
}

// --network, --ulimit and --shm-size reach the RUN steps; -q prints only
// the image ID, as docker buildx build -q.
func TestRunStepFlags(t *testing.T) {
	dir := t.TempDir()
	// The registry listens on the host's loopback: a step in the host's
	// network reaches it, one with --network none does not.
	writeFiles(t, dir, map[string]string{"Dockerfile": fmt.Sprintf("FROM %s\n"+
		"RUN (wget -q -O /dev/null http://%s/v2/ && echo reached || echo unreachable) > /net; ulimit -n > /nofile; df -k /dev/shm | tail -1 | awk '{print $2}' > /shm\n",
		env.Busybox, env.Registry.Host)})
	for _, tc := range []struct{ network, net string }{{"none", "unreachable"}, {"host", "reached"}} {
		t.Run(tc.network, func(t *testing.T) {
			ref := env.Registry.Host + "/run-flags:" + tc.network
			code, out, stderr := strata(t, "build", "--builder", env.Builder.Addr(), "-q", "--network", tc.network,
				"--ulimit", "nofile=1000:2000", "--shm-size", "32m", "-t", ref, "--push", dir)
			if code != 0 || stderr != "" {
				t.Fatalf("exit %d, stderr %q (want none with -q)", code, tail(stderr, 20))
			}
			_, img := remoteImage(t, ref)
			id, err := img.ConfigName()
			if err != nil {
				t.Fatal(err)
			}
			if strings.TrimSpace(out) != id.String() {
				t.Errorf("-q printed %q, want the image ID %s", out, id)
			}
			files := imageFiles(t, img, "net", "nofile", "shm")
			if files["net"] != tc.net+"\n" || files["nofile"] != "1000\n" || files["shm"] != "32768\n" {
				t.Errorf("step saw %q, want network %s, nofile 1000, /dev/shm of 32768 kB", files, tc.net)
			}
		})
	}
}

// -f - reads the Dockerfile from standard input, the context from PATH
// (with its .dockerignore), as docker buildx build -f -.
func TestDockerfileFromStdin(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"f.txt": "from the context\n", "secret.txt": "left out\n", ".dockerignore": "secret.txt\n"})
	ref := env.Registry.Host + "/stdin:v1"
	var out, errOut bytes.Buffer
	dockerfile := fmt.Sprintf("FROM %s\nCOPY . /ctx/\nRUN cat /ctx/f.txt > /out.txt\n", env.Busybox)
	code := cli.Main([]string{"build", "--builder", env.Builder.Addr(), "--progress", "plain", "-f", "-", "-t", ref, "--push", dir},
		strings.NewReader(dockerfile), &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, tail(errOut.String(), 20))
	}
	img := verifyImage(t, ref, strings.TrimSpace(out.String()))
	files := imageFiles(t, img, "out.txt", "ctx/secret.txt")
	if files["out.txt"] != "from the context\n" || files["ctx/secret.txt"] != "" {
		t.Errorf("files %q: want out.txt from the context and no secret.txt", files)
	}
}

// The Dockerfile's warnings (BuildKit's checks and strata's) are shown
// under the step that read it, which strata reads itself, on a build that
// BuildKit exports and on a streamed push alike; rawjson carries the step
// before its warnings.
func TestBuildShowsTheDockerfilesWarnings(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": fmt.Sprintf(lintedDockerfile, env.Busybox)})
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"exported by BuildKit", nil},
		{"streamed push", []string{"-t", env.Registry.Host + "/warned:v1", "--push"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			build := func(progress string) string {
				t.Helper()
				args := append([]string{"build", "--builder", env.Builder.Addr(), "--no-auto-cache", "--progress", progress}, tc.args...)
				code, _, stderr := strata(t, append(args, dir)...)
				if code != 0 {
					t.Fatalf("exit %d", code)
				}
				return stderr
			}
			stderr := build("plain")
			if !strings.Contains(stderr, "[internal] load build definition from Dockerfile") {
				t.Errorf("the Dockerfile's step is not shown:\n%s", tail(stderr, 30))
			}
			wantWarnings(t, stderr, "NonDeterministicRun", "FromAsCasing")

			seen := map[string]bool{}
			var warned []string
			for line := range strings.Lines(build("rawjson")) {
				var st struct {
					Vertexes []struct{ Digest string }
					Warnings []struct {
						Vertex string
						Short  []byte
					}
				}
				if json.Unmarshal([]byte(line), &st) != nil {
					continue
				}
				for _, v := range st.Vertexes {
					seen[v.Digest] = true
				}
				for _, w := range st.Warnings {
					if !seen[w.Vertex] {
						t.Errorf("warning %q comes before its step %s", w.Short, w.Vertex)
					}
					warned = append(warned, string(w.Short))
				}
			}
			wantWarnings(t, strings.Join(warned, "\n"), "NonDeterministicRun", "FromAsCasing")
		})
	}
}
