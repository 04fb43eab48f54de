package plan

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-build/strata/cache"
)

// staticResolver answers every base image with one config.
type staticResolver struct {
	digest string
	config []byte
}

func (r staticResolver) ResolveBase(_ context.Context, ref string, _ v1.Platform) (string, []byte, error) {
	if r.config == nil {
		return "", nil, errors.New("not found")
	}
	return r.digest, r.config, nil
}

func busyboxResolver(t testing.TB) staticResolver {
	t.Helper()
	cfg, err := os.ReadFile("testdata/history/busybox.json")
	if err != nil {
		t.Fatal(err)
	}
	return staticResolver{digest: "sha256:" + strings.Repeat("b", 64), config: cfg}
}

// TestStagesMatchCapturedConfigs checks the Dockerfile side against image
// configs BuildKit v0.33.1 wrote for the same Dockerfiles (captured by
// integration.TestCacheHistoryMatchesBuildKit).
func TestStagesMatchCapturedConfigs(t *testing.T) {
	cases, _ := filepath.Glob("testdata/history/*/Dockerfile")
	if len(cases) == 0 {
		t.Fatal("no cases")
	}
	for _, df := range cases {
		dir := filepath.Dir(df)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
			if err != nil {
				t.Fatal(err)
			}
			cf, err := v1.ParseConfigFile(bytes.NewReader(raw))
			if err != nil {
				t.Fatal(err)
			}
			want, err := cache.NormalizeHistory(cf.History, len(cf.RootFS.DiffIDs))
			if err != nil {
				t.Fatal(err)
			}
			args := map[string]string{"BASE": "localhost:5000/busybox:latest"}
			dt, _ := os.ReadFile(filepath.Join(dir, "build-args"))
			for _, kv := range strings.Fields(string(dt)) {
				k, v, _ := strings.Cut(kv, "=")
				args[k] = v
			}
			stages, err := DockerfileStages(context.Background(), StagesOptions{ContextDir: dir, BuildArgs: args, Resolver: busyboxResolver(t)})
			if err != nil {
				t.Fatal(err)
			}
			got := stages[len(stages)-1]
			if got.BaseSteps < 1 || len(got.BaseDiffIDs) != 1 || got.Skipped != "" {
				t.Fatalf("base: %d steps, %d layers, skipped %q", got.BaseSteps, len(got.BaseDiffIDs), got.Skipped)
			}
			if len(got.Steps) != len(want) {
				t.Fatalf("%d steps, want %d", len(got.Steps), len(want))
			}
			for i := range want {
				if got.Steps[i].Token != want[i].Token {
					t.Errorf("step %d: %q, image has %q", i, got.Steps[i].Token, want[i].Token)
				}
			}
			for i, s := range got.ownSteps() {
				fromContext := (strings.HasPrefix(s.Text, "COPY ") || strings.HasPrefix(s.Text, "ADD ")) && s.Text != "COPY /deps /deps"
				if fromContext != (s.Sources != "") {
					t.Errorf("own step %d %q: sources %q", i, s.Text, s.Sources)
				}
				if got.Lines[i] == 0 {
					t.Errorf("own step %d %q has no line", i, s.Text)
				}
			}
		})
	}
}

func TestStagesReachabilityAndTarget(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "Dockerfile", `FROM scratch AS unused
COPY a /a
FROM localhost:5000/busybox AS deps
RUN echo deps
FROM deps AS build
COPY a /a
RUN echo build
FROM localhost:5000/busybox
COPY --from=build /a /a
`)
	write(t, dir, "a", "1")
	stages, err := DockerfileStages(context.Background(), StagesOptions{ContextDir: dir, Resolver: busyboxResolver(t)})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range stages {
		names = append(names, s.Name)
	}
	if strings.Join(names, ",") != "deps,build,3" {
		t.Fatalf("stages %v", names)
	}
	build := stages[1]
	if build.BaseStage != 1 || build.BaseSteps != 2 || len(build.ownSteps()) != 2 || build.BaseDigest == "" {
		t.Errorf("build stage: %+v", build)
	}
	stages, err = DockerfileStages(context.Background(), StagesOptions{ContextDir: dir, Target: "unused"})
	if err != nil || len(stages) != 1 || stages[0].Base != "scratch" || len(stages[0].Steps) != 1 {
		t.Fatalf("target unused: %+v %v", stages, err)
	}
	if _, err := DockerfileStages(context.Background(), StagesOptions{ContextDir: dir, Target: "nope"}); err == nil {
		t.Error("unknown target accepted")
	}
	stages, err = DockerfileStages(context.Background(), StagesOptions{ContextDir: dir, Resolver: staticResolver{}})
	if err != nil || stages[0].Skipped == "" {
		t.Errorf("unresolvable base: %+v %v", stages, err)
	}
}

func write(t testing.TB, dir, name, content string) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

type fakeMeta struct{ got sourceresolver.Opt }

func (f *fakeMeta) ResolveImageConfig(_ context.Context, ref string, opt sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	f.got = opt
	if ref == "missing" {
		return "", "", nil, errors.New("not found")
	}
	cfg, _ := os.ReadFile("testdata/history/busybox.json")
	return ref, digest.Digest("sha256:" + strings.Repeat("c", 64)), cfg, nil
}

func TestResolverFromMeta(t *testing.T) {
	m := &fakeMeta{}
	r := ResolverFromMeta(m)
	d, cfg, err := r.ResolveBase(context.Background(), "x", v1.Platform{OS: "linux", Architecture: "arm64"})
	if err != nil || !strings.HasSuffix(d, "ccc") || len(cfg) == 0 || m.got.ImageOpt.Platform.Architecture != "arm64" {
		t.Fatalf("%s %d %v %+v", d, len(cfg), err, m.got)
	}
	if _, _, err := r.ResolveBase(context.Background(), "missing", v1.Platform{}); err == nil {
		t.Error("missing image resolved")
	}
}

func TestRecordSources(t *testing.T) {
	dir := "testdata/history/copy"
	args := map[string]string{"BASE": "localhost:5000/busybox:latest"}
	stages, err := DockerfileStages(context.Background(), StagesOptions{ContextDir: dir, BuildArgs: args, Resolver: busyboxResolver(t)})
	if err != nil {
		t.Fatal(err)
	}
	st := &stages[len(stages)-1]
	raw, _ := os.ReadFile(filepath.Join(dir, "config.json"))
	var img ocispecs.Image
	if err := json.Unmarshal(raw, &img); err != nil {
		t.Fatal(err)
	}
	if n := RecordSources(img.History, st); n != 4 { // main.txt, dir/, add.txt, the heredoc; not COPY --from
		t.Fatalf("recorded %d", n)
	}
	var hist []v1.History
	for _, h := range img.History {
		hist = append(hist, v1.History{CreatedBy: h.CreatedBy, Comment: h.Comment, EmptyLayer: h.EmptyLayer})
	}
	steps, err := cache.NormalizeHistory(hist, len(st.Steps))
	if err != nil {
		t.Fatal(err)
	}
	for i := range steps {
		if steps[i].Sources != st.Steps[i].Sources {
			t.Errorf("step %d %q: image records %q, the context has %q", i, steps[i].Text, steps[i].Sources, st.Steps[i].Sources)
		}
	}
	if n := RecordSources(img.History, st); n != 0 {
		t.Errorf("recorded %d twice", n)
	}
}

func TestBindMountRunIsTextOnly(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "Dockerfile", "FROM scratch AS src\nCOPY a /a\nFROM localhost:5000/busybox\nRUN --mount=type=bind,target=/ctx cat /ctx/a > /a\nRUN --mount=type=cache,target=/c echo > /b\n")
	write(t, dir, "a", "1")
	stages, err := DockerfileStages(context.Background(), StagesOptions{ContextDir: dir, Resolver: busyboxResolver(t)})
	if err != nil {
		t.Fatal(err)
	}
	own := stages[len(stages)-1].ownSteps()
	if len(own) != 2 || !own[0].TextOnly || own[1].TextOnly {
		t.Errorf("steps %+v", own)
	}
}

func TestRunMountFromMakesStageReachable(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "Dockerfile", "FROM scratch AS tools\nCOPY a /a\nFROM scratch AS unused\nCOPY a /b\nFROM localhost:5000/busybox\nRUN --mount=type=bind,from=tools,target=/t cat /t/a > /a\n")
	write(t, dir, "a", "1")
	stages, err := DockerfileStages(context.Background(), StagesOptions{ContextDir: dir, Resolver: busyboxResolver(t)})
	if err != nil {
		t.Fatal(err)
	}
	if len(stages) != 2 || stages[0].Name != "tools" {
		t.Errorf("stages %+v", stages)
	}
}

func FuzzDockerfileStages(f *testing.F) {
	for _, df := range []string{
		"FROM scratch\nCOPY a /a\n",
		"ARG B=localhost:5000/busybox\nFROM $B AS x\nENV A=1\nRUN echo $A\nFROM x\nWORKDIR w\nCOPY --from=x /a /b\n",
		"FROM localhost:5000/busybox\nRUN --mount=type=bind,target=/c <<EOF\necho\nEOF\n",
	} {
		f.Add(df)
	}
	f.Fuzz(func(t *testing.T, df string) {
		dir := t.TempDir()
		write(t, dir, "Dockerfile", df)
		write(t, dir, "a", "1")
		stages, err := DockerfileStages(context.Background(), StagesOptions{ContextDir: dir, Resolver: busyboxResolver(t)})
		if err != nil {
			return
		}
		for _, s := range stages {
			if s.BaseSteps > len(s.Steps) || len(s.Lines) != len(s.ownSteps()) {
				t.Fatalf("stage %+v", s)
			}
		}
	})
}

func TestTargetStageArg(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "Dockerfile", "FROM localhost:5000/busybox AS deps\nARG TARGETSTAGE\nRUN echo $TARGETSTAGE\nFROM deps AS final\nRUN echo final\n")
	stages, err := DockerfileStages(context.Background(), StagesOptions{ContextDir: dir, Resolver: busyboxResolver(t)})
	if err != nil {
		t.Fatal(err)
	}
	if got := stages[0].ownSteps()[0].Text; got != "RUN |1 TARGETSTAGE=final /bin/sh -c echo $TARGETSTAGE" {
		t.Errorf("deps step %q", got)
	}
}

func TestUnnamedStagesArePlanned(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "Dockerfile", "FROM localhost:5000/busybox\nRUN echo zero > /z\n\nFROM localhost:5000/busybox \\\n  AS last\nCOPY --from=0 /z /z\n")
	stages, err := DockerfileStages(context.Background(), StagesOptions{ContextDir: dir, Resolver: busyboxResolver(t)})
	if err != nil {
		t.Fatal(err)
	}
	if len(stages) != 2 || stages[0].Name != "0" || stages[0].Skipped != "" || len(stages[0].ownSteps()) != 1 || stages[0].ownSteps()[0].Text != "RUN /bin/sh -c echo zero > /z" {
		t.Fatalf("stages %+v", stages)
	}
	if got, ok := nameStage([]byte("FROM a \\\n  b\nRUN x\n"), instructions.Stage{Location: []parser.Range{{Start: parser.Position{Line: 1}, End: parser.Position{Line: 2}}}}, "n"); !ok || string(got) != "FROM a \\\n  b AS n\nRUN x\n" {
		t.Errorf("nameStage: %q %v", got, ok)
	}
}
