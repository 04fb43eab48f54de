package build

import (
	"strings"
	"testing"

	"github.com/strata-build/strata/dockerfile"
)

// resolved is df read for a build of target; nil when there is no such
// target.
func resolved(t *testing.T, df, target string) *dockerfile.Build {
	t.Helper()
	f, err := dockerfile.Parse("Dockerfile", []byte(df))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := f.Resolve(target, dockerfile.Args{})
	return b
}

func TestPrefixDockerfiles(t *testing.T) {
	df := `# syntax=docker/dockerfile:1
FROM busybox AS deps
RUN echo deps > /deps

FROM busybox AS app
WORKDIR /app
COPY --from=deps /deps /deps
RUN <<EOF
echo one
echo two
EOF
ENV A=1
COPY . .
RUN make \
    all

FROM app AS test
RUN make test
`
	cases := []struct {
		target string
		want   []string // last line of each prefix
	}{
		{"app", []string{"COPY --from=deps /deps /deps", "EOF", "COPY . ."}},
		{"", nil}, // the last stage has one layer step: nothing to stream before it
		{"deps", nil},
		{"APP", []string{"COPY --from=deps /deps /deps", "EOF", "COPY . ."}},
	}
	for _, tc := range cases {
		ps := prefixDockerfiles(resolved(t, df, tc.target), nil)
		if len(ps) != len(tc.want) {
			t.Fatalf("target %q: %d prefixes, want %d", tc.target, len(ps), len(tc.want))
		}
		for i, p := range ps {
			s := strings.TrimRight(string(p.Dockerfile), "\n")
			if last := s[strings.LastIndex(s, "\n")+1:]; last != tc.want[i] {
				t.Errorf("target %q prefix %d ends with %q, want %q", tc.target, i, last, tc.want[i])
			}
			if !strings.HasPrefix(s, "# syntax=docker/dockerfile:1\n") {
				t.Errorf("prefix %d lost the parser directive", i)
			}
			if strings.Contains(s, "make test") || strings.Contains(s, "make \\") {
				t.Errorf("prefix %d goes past its step:\n%s", i, s)
			}
		}
	}
}

// Steps the plan expects from the cache get no prefix.
func TestPrefixDockerfilesSkipCachedSteps(t *testing.T) {
	df := "FROM busybox\nRUN a\nWORKDIR /app\nCOPY lock ./\nRUN b\nCOPY . .\nRUN c\n"
	for _, tc := range []struct {
		through int
		want    int
	}{{0, 4}, {2, 3}, {5, 1}, {6, 0}, {99, 0}} {
		ps := prefixDockerfiles(resolved(t, df, ""), prefixSkipper(tc.through, nil))
		if len(ps) != tc.want {
			t.Errorf("cached through line %d: %d prefixes, want %d", tc.through, len(ps), tc.want)
		}
		if len(ps) > 0 && !strings.HasSuffix(string(ps[len(ps)-1].Dockerfile), "COPY . .\n") {
			t.Errorf("cached through line %d: the last prefix is\n%s", tc.through, ps[len(ps)-1].Dockerfile)
		}
		for _, p := range ps {
			// A choice made while the build runs skips by line (see
			// stream.Chosen): each prefix's line is its step's first.
			last := strings.Split(strings.TrimSuffix(string(p.Dockerfile), "\n"), "\n")
			if p.Line <= tc.through || p.Line != len(last) {
				t.Errorf("cached through line %d: a prefix of %d lines has line %d", tc.through, len(last), p.Line)
			}
		}
	}
}

func TestTargetBase(t *testing.T) {
	df := "FROM reg/base:1 AS deps\nRUN x\nFROM --platform=$BUILDPLATFORM reg/go:1.26 AS build\nFROM deps AS app\nFROM scratch AS out\nFROM $IMG AS v\nFROM app\n"
	for target, want := range map[string]string{
		"":      "reg/base:1", // the last stage is FROM app, which is FROM deps
		"deps":  "reg/base:1",
		"build": "reg/go:1.26",
		"app":   "reg/base:1",
		"out":   "",
		"v":     "",
		"none":  "",
	} {
		if got := targetBase(resolved(t, df, target)); got != want {
			t.Errorf("targetBase(%q) = %q, want %q", target, got, want)
		}
	}
}
