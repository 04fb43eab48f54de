package build

import (
	"slices"
	"testing"

	"github.com/strata-build/strata/dockerfile"
)

// The secret gate looks at the lines of the stages the build needs, as the
// Dockerfile model reads them.
func TestSecretLinesOfTheBuiltStages(t *testing.T) {
	df, err := dockerfile.Parse("Dockerfile", []byte(`ARG TOKEN=x
FROM busybox AS dev
COPY . /src

FROM busybox AS App
COPY --from=DEV /src /src
FROM busybox AS tools
RUN true
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		target    string
		platforms []string
		in        []int // the lines the gate looks at, of 1..8
	}{
		{"app", nil, []int{1, 2, 3, 5, 6}}, // line 4 is between stages
		{"", nil, []int{1, 7, 8}},
		{"tools", []string{"linux/amd64", "linux/arm64"}, []int{1, 7, 8}},
		{"none", nil, []int{1, 2, 3, 4, 5, 6, 7, 8}},                       // unknown: the build says so
		{"app", []string{"linux/nope/x/y"}, []int{1, 2, 3, 4, 5, 6, 7, 8}}, // bad platform: the same
	} {
		opt := Options{Target: tc.target, Platforms: tc.platforms}
		built := builtStages(df, opt)
		var in []int
		for line := 1; line <= 8; line++ {
			if inStages(df, built, line) {
				in = append(in, line)
			}
		}
		if !slices.Equal(in, tc.in) {
			t.Errorf("target %q %v: lines %v, want %v", tc.target, tc.platforms, in, tc.in)
		}
	}
}
