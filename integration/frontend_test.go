package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/moby/buildkit/client"

	"github.com/strata-build/strata/integration/testenv"
)

var (
	frontendOnce sync.Once
	frontendRef  string
	frontendErr  error
)

// frontendImage builds the repository's Dockerfile (target prebuilt, the
// static binary from .bin) with strata and pushes it to the test registry.
func frontendImage(t *testing.T) string {
	t.Helper()
	frontendOnce.Do(func() {
		root, err := testenv.RepoRoot()
		if err != nil {
			frontendErr = err
			return
		}
		// The context is the repository; prebuilt copies .bin/strata-frontend.
		bin := filepath.Join(root, ".bin", "strata-frontend")
		if env.BinDir != filepath.Join(root, ".bin") {
			if err := os.MkdirAll(filepath.Dir(bin), 0o755); err == nil {
				dt, err := os.ReadFile(filepath.Join(env.BinDir, "strata-frontend"))
				if err == nil {
					err = os.WriteFile(bin, dt, 0o755)
				}
				if err != nil {
					frontendErr = err
					return
				}
			}
		}
		ref := env.Registry.Host + "/strata/frontend:test"
		code, _, stderr := strata(t, "build", "--builder", env.Builder.Addr(), "--progress", "plain",
			"--target", "prebuilt", "-t", ref, "--push", root)
		if code != 0 {
			frontendErr = fmt.Errorf("building the frontend image: exit %d\n%s", code, tail(stderr, 20))
			return
		}
		frontendRef = ref
	})
	if frontendErr != nil {
		t.Fatal(frontendErr)
	}
	return frontendRef
}

// A Dockerfile with one strata finding (NonDeterministicRun) and one of
// BuildKit's own checks (FromAsCasing).
const lintedDockerfile = `FROM %s as base
RUN date > /built-at
`

// The frontend image works through the three doors users have: a syntax
// line, BUILDKIT_SYNTAX with docker buildx, and buildctl's gateway frontend;
// strata's findings arrive as build warnings beside BuildKit's.
func TestFrontendImageDoors(t *testing.T) {
	fe := frontendImage(t)
	cfg := newBuildx(t, "strata-fe")

	t.Run("syntax line with buildx", func(t *testing.T) {
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{"Dockerfile": "# syntax=" + fe + "\n" + fmt.Sprintf(lintedDockerfile, env.Busybox)})
		out := run(t, buildx(t, cfg, "build", "--builder", "strata-fe", "--progress", "plain", dir))
		wantWarnings(t, out, "NonDeterministicRun", "FromAsCasing")
	})
	t.Run("BUILDKIT_SYNTAX with buildx", func(t *testing.T) {
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{"Dockerfile": fmt.Sprintf(lintedDockerfile, env.Busybox)})
		out := run(t, buildx(t, cfg, "build", "--builder", "strata-fe", "--progress", "plain", "--build-arg", "BUILDKIT_SYNTAX="+fe, dir))
		wantWarnings(t, out, "NonDeterministicRun", "FromAsCasing")
	})
	t.Run("buildctl gateway frontend", func(t *testing.T) {
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{"Dockerfile": fmt.Sprintf(lintedDockerfile, env.Busybox)})
		// rawjson: every status BuildKit sent, warnings included. (BuildKit's
		// plain display drops a warning that reaches it before the step it
		// belongs to, which with a gateway frontend happens now and then to
		// BuildKit's own checks and to strata's alike.)
		cmd := exec.Command(filepath.Join(env.BinDir, "buildctl"), "--addr", env.Builder.Addr(), "build", "--progress", "rawjson",
			"--frontend", "gateway.v0", "--opt", "source="+fe, "--local", "context="+dir, "--local", "dockerfile="+dir)
		wantWarnings(t, strings.Join(rawWarnings(t, run(t, cmd)), "\n"), "NonDeterministicRun", "FromAsCasing")
	})
	t.Run("check returns both rule sets", func(t *testing.T) {
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{"Dockerfile": "# syntax=" + fe + "\n" + fmt.Sprintf(lintedDockerfile, env.Busybox)})
		out, _ := buildx(t, cfg, "build", "--builder", "strata-fe", "--check", dir).CombinedOutput()
		wantWarnings(t, string(out), "NonDeterministicRun", "FromAsCasing")

		js, _ := buildx(t, cfg, "build", "--builder", "strata-fe", "--call=check,format=json", dir).Output()
		var res struct {
			Warnings []struct {
				RuleName string `json:"ruleName"`
				URL      string `json:"url"`
			} `json:"warnings"`
		}
		if err := json.Unmarshal(js, &res); err != nil {
			t.Fatalf("--call=check,format=json: %v\n%s", err, js)
		}
		rules := map[string]string{}
		for _, w := range res.Warnings {
			rules[w.RuleName] = w.URL
		}
		if _, ok := rules["FromAsCasing"]; !ok {
			t.Errorf("BuildKit's FromAsCasing missing from %s", js)
		}
		if u, ok := rules["NonDeterministicRun"]; !ok || !strings.Contains(u, "NonDeterministicRun") {
			t.Errorf("strata's NonDeterministicRun missing (or without URL) in %s", js)
		}
	})
	t.Run("check=error=true fails the build", func(t *testing.T) {
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{"Dockerfile": "# syntax=" + fe + "\n# check=error=true;skip=FromAsCasing\n" + fmt.Sprintf(lintedDockerfile, env.Busybox)})
		out, err := buildx(t, cfg, "build", "--builder", "strata-fe", "--progress", "plain", dir).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "NonDeterministicRun") {
			t.Fatalf("build with check=error=true: err %v\n%s", err, tail(string(out), 20))
		}
	})
}

// rawWarnings returns the warnings in buildctl's rawjson progress output.
func rawWarnings(t *testing.T, out string) []string {
	t.Helper()
	var ws []string
	for _, l := range strings.Split(out, "\n") {
		var st client.SolveStatus
		if !strings.HasPrefix(l, "{") || json.Unmarshal([]byte(l), &st) != nil {
			continue
		}
		for _, w := range st.Warnings {
			ws = append(ws, string(w.Short))
		}
	}
	return ws
}

func wantWarnings(t *testing.T, out string, rules ...string) {
	t.Helper()
	for _, r := range rules {
		if !strings.Contains(out, r) {
			t.Errorf("output does not show %s:\n%s", r, tail(out, 30))
		}
	}
}

// Given the shared index, the frontend image chooses cache imports itself:
// a fresh builder driven by buildctl (and by docker buildx) imports the
// indexed image and reuses its steps. A malformed index reference or an
// unknown strata option is a warning, and the build goes on.
func TestFrontendAutoCache(t *testing.T) {
	fe := frontendImage(t)
	index := env.Registry.Host + "/strata/index:frontend"
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Dockerfile": fmt.Sprintf("FROM %s\nRUN head -c 1000000 /dev/urandom > /deps.bin\nCOPY src.txt /src.txt\nRUN cat /src.txt > /out\n", env.Busybox),
		"src.txt":    "v1\n",
	})
	v1 := env.Registry.Host + "/feauto/app:v1"
	if code, _, stderr := strata(t, "build", "--builder", env.Builder.Addr(), "--progress", "plain", "--index", index, "-t", v1, "--push", dir); code != 0 {
		t.Fatalf("build v1: exit %d\n%s", code, tail(stderr, 20))
	}
	if code, out, _ := strata(t, "index", "ls", "--index", index); code != 0 || !strings.Contains(out, "/feauto/app:v1") {
		t.Fatalf("the shared index does not hold v1: exit %d\n%s", code, out)
	}
	writeFiles(t, dir, map[string]string{"src.txt": "v2\n"})

	bk, err := env.StartBuildkitd(t.Context(), fmt.Sprintf("feauto-%d", time.Now().UnixNano())) // empty state, each run
	if err != nil {
		t.Fatal(err)
	}
	defer bk.Stop(20 * time.Second)
	buildctl := func(opts ...string) string {
		args := []string{"--addr", bk.Addr(), "build", "--progress", "plain", "--frontend", "gateway.v0", "--opt", "source=" + fe,
			"--local", "context=" + dir, "--local", "dockerfile=" + dir}
		for _, o := range opts {
			args = append(args, "--opt", o)
		}
		return run(t, exec.Command(filepath.Join(env.BinDir, "buildctl"), args...))
	}
	out := buildctl("build-arg:STRATA_INDEX=" + index)
	if !strings.Contains(out, "importing cache manifest from "+env.Registry.Host+"/feauto/app@sha256:") {
		t.Fatalf("the frontend did not import the indexed image:\n%s", tail(out, 40))
	}
	// The step before the changed COPY is not run again: BuildKit pulls its
	// layer, v1's, from the registry (a step that ran would write new
	// random bytes instead).
	r, _ := name.ParseReference(v1, name.Insecure)
	img, err := remote.Image(r)
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 4 {
		t.Fatalf("v1 has %d layers (%v), want 4", len(layers), err)
	}
	deps, _ := layers[1].Digest()
	if !strings.Contains(out, deps.String()) {
		t.Errorf("the step before the changed COPY did not reuse v1's layer %s:\n%s", deps, tail(out, 40))
	}
	if ran, _ := stepState(t, out, "RUN cat /src.txt > /out"); !ran {
		t.Errorf("the step after the changed COPY came from the cache:\n%s", tail(out, 40))
	}

	out = run(t, exec.Command(filepath.Join(env.BinDir, "buildctl"), "--addr", bk.Addr(), "build", "--progress", "rawjson",
		"--frontend", "gateway.v0", "--opt", "source="+fe, "--local", "context="+dir, "--local", "dockerfile="+dir,
		"--opt", "build-arg:STRATA_INDEX=not a reference", "--opt", "strata-indx="+index))
	wantWarnings(t, strings.Join(rawWarnings(t, out), "\n"), "STRATA_INDEX is not an image reference", `unknown frontend option "strata-indx"`)

	cfg := newBuildx(t, "strata-feauto")
	out = run(t, buildx(t, cfg, "build", "--builder", "strata-feauto", "--progress", "plain",
		"--build-arg", "BUILDKIT_SYNTAX="+fe, "--build-arg", "STRATA_INDEX="+index, dir))
	if !strings.Contains(out, "importing cache manifest from "+env.Registry.Host+"/feauto/app@sha256:") {
		t.Errorf("buildx: the frontend did not import the indexed image:\n%s", tail(out, 40))
	}
}

// The frontend image wraps BuildKit's stock builder, so the Dockerfile
// features users rely on keep working through it: heredocs, cache and bind
// mounts, COPY --link, named contexts, build args, multi-platform builds
// and the outline and targets subrequests.
func TestFrontendImageDockerfileFeatures(t *testing.T) {
	fe := frontendImage(t)
	cfg := newBuildx(t, "strata-features")
	dir, extra, out := t.TempDir(), t.TempDir(), t.TempDir()
	writeFiles(t, extra, map[string]string{"extra.txt": "from a named context\n"})
	writeFiles(t, dir, map[string]string{
		"Dockerfile": "# syntax=" + fe + "\n" + fmt.Sprintf(`FROM %s AS build
ARG GREETING=hello
RUN --mount=type=cache,target=/cache <<EOT
echo "$GREETING" > /cache/greeting
cp /cache/greeting /greeting
EOT
RUN --mount=type=bind,source=in.txt,target=/in.txt cat /in.txt > /from-bind
COPY --link --from=extra extra.txt /extra.txt

FROM scratch AS out
COPY --from=build /greeting /from-bind /extra.txt /
`, env.Busybox),
		"in.txt": "bound\n",
	})
	run(t, buildx(t, cfg, "build", "--builder", "strata-features", "--progress", "plain", "--build-arg", "GREETING=hi there",
		"--build-context", "extra="+extra, "--output", "type=local,dest="+out, dir))
	for f, want := range map[string]string{"greeting": "hi there\n", "from-bind": "bound\n", "extra.txt": "from a named context\n"} {
		if got, err := os.ReadFile(filepath.Join(out, f)); err != nil || string(got) != want {
			t.Errorf("%s = %q (%v), want %q", f, got, err, want)
		}
	}

	targets := run(t, buildx(t, cfg, "build", "--builder", "strata-features", "--call=targets", "--build-context", "extra="+extra, dir))
	if !strings.Contains(targets, "build") || !strings.Contains(targets, "out") {
		t.Errorf("--call=targets does not list the stages:\n%s", targets)
	}
	outline := run(t, buildx(t, cfg, "build", "--builder", "strata-features", "--call=outline", "--build-context", "extra="+extra, dir))
	if !strings.Contains(outline, "GREETING") {
		t.Errorf("--call=outline does not list the build argument:\n%s", outline)
	}

	// Two platforms at once: the scratch stage needs no emulation.
	multi := t.TempDir()
	writeFiles(t, multi, map[string]string{
		"Dockerfile": "# syntax=" + fe + "\nFROM scratch\nARG TARGETPLATFORM\nCOPY in.txt /\n",
		"in.txt":     "same on both\n",
	})
	outMulti := t.TempDir()
	run(t, buildx(t, cfg, "build", "--builder", "strata-features", "--progress", "plain", "--platform", "linux/amd64,linux/arm64",
		"--output", "type=local,dest="+outMulti, multi))
	for _, p := range []string{"linux_amd64", "linux_arm64"} {
		if got, err := os.ReadFile(filepath.Join(outMulti, p, "in.txt")); err != nil || string(got) != "same on both\n" {
			t.Errorf("%s/in.txt = %q (%v)", p, got, err)
		}
	}
}

// strata build of a Dockerfile whose syntax line names another frontend
// (here strata's image) hands that frontend the cache imports strata chose
// from the target repository, as cache-imports, while the build starts
// before the choice is made.
func TestBuildForwardsChosenCacheToSyntaxFrontend(t *testing.T) {
	fe := frontendImage(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Dockerfile": "# syntax=" + fe + "\nFROM " + env.Busybox + "\nRUN echo deps > /deps\nCOPY src.txt /src.txt\n",
		"src.txt":    "v1\n",
	})
	repo := env.Registry.Host + "/forwarded/app"
	addr := freshRunner(t, "forwarded-v1")
	if code, _, stderr := strata(t, "build", "--builder", addr, "--progress", "plain", "-t", repo+":latest", "--push", dir); code != 0 {
		t.Fatalf("v1: exit %d\n%s", code, tail(stderr, 20))
	}
	writeFiles(t, dir, map[string]string{"src.txt": "v2\n"})
	addr = freshRunner(t, "forwarded-v2")
	meta := filepath.Join(t.TempDir(), "m.json")
	code, _, stderr := strata(t, "build", "--builder", addr, "--progress", "plain", "-t", repo+":v2", "--push", "--metadata-file", meta, dir)
	if code != 0 {
		t.Fatalf("v2: exit %d\n%s", code, tail(stderr, 20))
	}
	if !strings.Contains(stderr, "strata: cache from "+repo+"@") {
		t.Fatalf("no cache source chosen from %s:\n%s", repo, tail(stderr, 40))
	}
	if !strings.Contains(stderr, "importing cache manifest from "+repo+"@") {
		t.Errorf("the forwarded build did not import the chosen cache:\n%s", tail(stderr, 40))
	}
	if st := strataMetadata(t, readMetadata(t, meta)); st.Steps.Total != 2 || st.Steps.Cached != 1 {
		t.Errorf("steps %+v: want the RUN taken from the chosen cache on a fresh builder, the COPY of the changed file run", st.Steps)
	}
}
