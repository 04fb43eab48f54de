package build

import (
	"testing"

	"github.com/strata-build/strata/cache/plan"
)

// The prefixes skipped are those the chosen imports are expected to give
// exactly; a better candidate that was not chosen does not count.
func TestCachedThrough(t *testing.T) {
	pl := &plan.Plan{Stages: []plan.StagePlan{
		{Stage: "deps", Lines: []int{2}, Candidates: []plan.Candidate{{CacheRef: "r/deps@sha256:1", Exact: 1}}},
		{Stage: "app", Lines: []int{6, 7, 8, 9}, Candidates: []plan.Candidate{
			{CacheRef: "r/other@sha256:2", Exact: 4},
			{CacheRef: "r/app@sha256:1", Exact: 2},
		}},
	}}
	for _, tc := range []struct {
		imports []string
		want    int
	}{
		{[]string{"r/app@sha256:1"}, 7},
		{[]string{"r/app@sha256:1", "r/other@sha256:2"}, 9},
		{[]string{"r/deps@sha256:1"}, 0}, // another stage's source
		{nil, 0},
	} {
		var ims []AutoImport
		for _, r := range tc.imports {
			ims = append(ims, AutoImport{Ref: r})
		}
		if got := cachedThrough(pl, ims); got != tc.want {
			t.Errorf("imports %v: cached through line %d, want %d", tc.imports, got, tc.want)
		}
	}
}
