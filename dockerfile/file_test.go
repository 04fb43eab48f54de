package dockerfile

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/strata-build/strata/errs"
)

func TestStagesAndSteps(t *testing.T) {
	f := parse(t, `# syntax=docker/dockerfile:1
ARG BASE=a
FROM $BASE AS Deps
RUN <<EOF
echo one
EOF
ENV A=1
COPY <<A <<B /x
1
A
2
B

FROM deps
WORKDIR /app
RUN make \
    all
ADD https://example.com/x /x
# the end
LABEL a=b
`)
	if len(f.metaArgs) != 1 || len(f.Stages) != 2 {
		t.Fatalf("%d meta args, %d stages", len(f.metaArgs), len(f.Stages))
	}
	for i, tc := range []struct {
		name       string
		start, end int
		steps      string // instruction:start-end of each layer step
	}{
		{"deps", 3, 12, "run:4-6 copy:8-12"},
		{"", 14, 20, "run:16-17 add:18-18"},
	} {
		st := f.Stages[i]
		var steps []string
		for _, s := range st.Steps {
			steps = append(steps, fmt.Sprintf("%s:%d-%d", strings.ToLower(s.Command.Name()), s.Start, s.End))
			if s.Node.StartLine != s.Start || s.Node.Value != s.Command.Name() {
				t.Errorf("step %s has node %s at line %d", s.Command.Name(), s.Node.Value, s.Node.StartLine)
			}
		}
		if st.Index != i || st.Name != tc.name || st.Start != tc.start || st.End != tc.end || strings.Join(steps, " ") != tc.steps {
			t.Errorf("stage %d: %q lines %d-%d, steps %v", i, st.Name, st.Start, st.End, steps)
		}
	}
}

// RUN --mount flags are read as written, their type included.
func TestRunMounts(t *testing.T) {
	f := parse(t, "FROM a AS tools\nFROM b\nRUN --mount=type=cache,target=/c --mount=from=tools,target=/t --mount=type=secret,id=$ID true\n")
	run := f.Stages[1].Steps[0].Command.(*instructions.RunCommand)
	var got []string
	for _, m := range instructions.GetMounts(run) {
		got = append(got, string(m.Type)+":"+m.From+":"+m.CacheID)
	}
	if strings.Join(got, " ") != "cache:: bind:tools: secret::$ID" {
		t.Errorf("mounts %v", got)
	}
	// A flag BuildKit reads only when it expands the command is left as
	// first read: a bind mount.
	f = parse(t, "FROM b\nRUN --mount=type=nope,target=/x true\n")
	if m := instructions.GetMounts(f.Stages[0].Steps[0].Command.(*instructions.RunCommand)); len(m) != 1 || m[0].Type != instructions.MountTypeBind {
		t.Errorf("mounts %+v", m)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ df, want string }{
		{"", "parse Dockerfile: "},
		{"# only a comment\n", "parse Dockerfile: "},
		{"ARG A=1\n", "Dockerfile has no FROM"},
		{"RUN x\n", "parse Dockerfile: "},
		{"FROM a b\n", "parse Dockerfile: "},
		{"FROM a\nRUN --mount=from=$X,target=/t true\n", "parse Dockerfile: "},
	} {
		_, err := Parse("Dockerfile", []byte(tc.df))
		if err == nil || !errors.Is(err, errs.ErrInput) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.df, err, tc.want)
		}
	}
	if _, err := ReadFile("testdata/none/Dockerfile"); err == nil || !errors.Is(err, errs.ErrInput) || !strings.Contains(err.Error(), "read Dockerfile") {
		t.Errorf("missing file: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add("FROM scratch\nCOPY a /a\n", "")
	f.Add("ARG B=busybox\nFROM $B AS x\nENV A=1\nRUN echo $A\nFROM x\nWORKDIR w\nCOPY --from=x /a /b\nCOPY --from=0 /a /c\n", "x")
	f.Add("FROM busybox AS t\nFROM busybox\nRUN --mount=type=bind,from=t,target=/c <<EOF\necho\nEOF\nRUN a \\\n b\n", "")
	f.Add("# escape=`\nFROM a AS b\nRUN x `\n  y\nFROM b\nCOPY --from=B . .\n", "B")
	f.Fuzz(func(t *testing.T, df, target string) {
		file, err := Parse("Dockerfile", []byte(df))
		if err != nil {
			return
		}
		b, err := file.Resolve(target, Args{BuildArgs: map[string]string{"B": target}})
		if err != nil {
			return
		}
		stages := b.Stages()
		if stages[len(stages)-1] != b.Target {
			t.Fatalf("target %d not last of %d stages", b.Target.Index, len(stages))
		}
		for _, st := range stages {
			if bs := b.BaseStage(st); bs != nil && (bs.Index >= st.Index || !slices.Contains(stages, bs)) {
				t.Fatalf("stage %d built FROM stage %d", st.Index, bs.Index)
			}
		}
		_ = b.TargetBase()
		for _, pf := range b.Prefixes(nil) {
			p := pf.Dockerfile
			if len(p) > len(df) || string(p) != df[:len(p)] {
				t.Fatalf("prefix %q is not a prefix of the Dockerfile", p)
			}
		}
	})
}
