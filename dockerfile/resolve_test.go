package dockerfile

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-build/strata/errs"
)

func parse(t testing.TB, df string) *File {
	t.Helper()
	f, err := Parse("Dockerfile", []byte(df))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func resolve(t testing.TB, df, target string, args Args) *Build {
	t.Helper()
	b, err := parse(t, df).Resolve(target, args)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// names lists the stages the build needs, by name or index.
func names(b *Build) string {
	var out []string
	for _, st := range b.Stages() {
		out = append(out, st.Name+"#"+strconv.Itoa(st.Index))
	}
	return strings.Join(out, " ")
}

func TestNeededStages(t *testing.T) {
	for _, tc := range []struct {
		name, df, target string
		args             Args
		want             string // name#index of each needed stage, the target last
	}{
		{"last stage by default", "FROM a AS one\nFROM b AS two\n", "", Args{}, "two#1"},
		{"target by name", "FROM a AS one\nFROM b AS two\n", "one", Args{}, "one#0"},
		{"target in another case", "FROM a AS Build\nFROM b\n", "BUILD", Args{}, "build#0"},
		{"the later of two stages of one name", "FROM a AS x\nFROM b AS x\nFROM c\n", "x", Args{}, "x#1"},
		{"FROM a stage", "FROM a AS base\nFROM base AS app\nFROM c AS unused\n", "app", Args{}, "base#0 app#1"},
		{"FROM names a stage as written", "FROM a AS base\nFROM Base\n", "", Args{}, "#1"},
		{"FROM takes no index", "FROM a\nFROM 0\n", "", Args{}, "#1"},
		{"COPY --from by name, any case", "FROM a AS deps\nFROM b AS unused\nFROM c\nCOPY --from=DEPS /x /x\n", "", Args{}, "deps#0 #2"},
		{"COPY --from by index", "FROM a\nFROM b\nFROM c\nCOPY --from=1 /x /x\n", "", Args{}, "#1 #2"},
		{"COPY --from an image", "FROM a AS x\nFROM c\nCOPY --from=busybox /x /x\nCOPY --from=7 /x /x\n", "", Args{}, "#1"},
		{"COPY --from a later stage", "FROM a AS app\nCOPY --from=gen /x /x\nFROM b AS gen\n", "app", Args{}, "gen#1 app#0"},
		{"RUN --mount from=", "FROM a AS tools\nFROM b AS unused\nFROM c\nRUN --mount=type=bind,from=tools,target=/t true\n", "", Args{}, "tools#0 #2"},
		{"RUN --mount from= takes no index", "FROM a\nFROM c\nRUN --mount=from=0,target=/t true\n", "", Args{}, "#1"},
		{"stages of stages", "FROM a AS one\nFROM b AS two\nCOPY --from=one / /\nFROM two AS three\nFROM c\nCOPY --from=three / /\n", "", Args{}, "one#0 two#1 three#2 #3"},
		{"ARG in FROM, default", "ARG BASE=deps\nFROM a AS deps\nFROM b AS other\nFROM ${BASE}\n", "", Args{}, "deps#0 #2"},
		{"ARG in FROM, build arg", "ARG BASE=deps\nFROM a AS deps\nFROM b AS other\nFROM $BASE\n", "", Args{BuildArgs: map[string]string{"BASE": "other"}}, "other#1 #2"},
		{"platform args in FROM", "FROM a AS build-arm64\nFROM a AS build-amd64\nFROM build-$TARGETARCH\n", "", Args{Platform: ocispecs.Platform{OS: "linux", Architecture: "arm64"}}, "build-arm64#0 #2"},
		{"TARGETSTAGE in FROM", "FROM a AS base-app\nFROM b AS base-default\nFROM base-$TARGETSTAGE AS app\n", "app", Args{}, "base-app#0 app#2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := names(resolve(t, tc.df, tc.target, tc.args)); got != tc.want {
				t.Errorf("needs %q, want %q", got, tc.want)
			}
		})
	}
}

func TestUnknownTarget(t *testing.T) {
	_, err := parse(t, "FROM a AS one\n").Resolve("two", Args{})
	if err == nil || !errors.Is(err, errs.ErrUsage) || !strings.Contains(err.Error(), `target stage "two" not found in Dockerfile`) {
		t.Fatalf("error %v", err)
	}
}

func TestBadFromExpansion(t *testing.T) {
	_, err := parse(t, "FROM ${A:?nobase}\n").Resolve("", Args{})
	if err == nil || !errors.Is(err, errs.ErrInput) || !strings.Contains(err.Error(), "Dockerfile:1: FROM ${A:?nobase}") {
		t.Fatalf("error %v", err)
	}
}

// The target's base follows FROM <stage>, expanded as BuildKit expands it.
func TestBaseAndTargetBase(t *testing.T) {
	df := "ARG IMG\nARG REG=reg\nFROM ${REG}/base:1 AS deps\nFROM deps AS app\nFROM $IMG AS v\nFROM Scratch AS s\nFROM app\n"
	for _, tc := range []struct {
		target, img, want string
	}{
		{"", "", "reg/base:1"},
		{"v", "", ""},
		{"v", "reg/v:2", "reg/v:2"},
		{"s", "", ""},
	} {
		if got := resolve(t, df, tc.target, Args{BuildArgs: map[string]string{"IMG": tc.img}}).TargetBase(); got != tc.want {
			t.Errorf("TargetBase of %q with IMG=%s: %q, want %q", tc.target, tc.img, got, tc.want)
		}
	}
	b := resolve(t, df, "app", Args{})
	if b.Base(b.Target) != "deps" || b.BaseStage(b.Target) != b.File.Stages[0] || b.BaseStage(b.File.Stages[0]) != nil {
		t.Errorf("app: base %q, stage %v", b.Base(b.Target), b.BaseStage(b.Target))
	}
}

func TestTargetStageArg(t *testing.T) {
	df := "FROM a AS One\nFROM b\n"
	for target, want := range map[string]string{"": "default", "ONE": "ONE"} {
		if got := resolve(t, df, target, Args{}).TargetStageArg(); got != want {
			t.Errorf("target %q: TARGETSTAGE %q, want %q", target, got, want)
		}
	}
	if got := resolve(t, "FROM a AS last\n", "", Args{}).TargetStageArg(); got != "last" {
		t.Errorf("TARGETSTAGE %q", got)
	}
}

// A stage the target copies or mounts from makes no layer of its image;
// the stages of its FROM chain do.
func TestCopiesFromStages(t *testing.T) {
	f, err := Parse("Dockerfile", []byte(`FROM busybox AS deps
RUN echo deps
FROM deps AS build
RUN echo build
FROM busybox AS mounted
RUN echo m
FROM busybox AS viamount
RUN --mount=from=mounted,target=/m cat /m/etc/hostname
FROM busybox
COPY --from=build /etc/hostname /h
`))
	if err != nil {
		t.Fatal(err)
	}
	for target, want := range map[string]bool{"": true, "build": false, "deps": false, "viamount": true} {
		b, err := f.Resolve(target, Args{})
		if err != nil {
			t.Fatal(err)
		}
		if got := b.CopiesFromStages(); got != want {
			t.Errorf("target %q: CopiesFromStages %v, want %v", target, got, want)
		}
	}
}
