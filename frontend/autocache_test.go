package frontend

import (
	"slices"
	"testing"
)

func TestCacheImportsKeepsTheClientsOwn(t *testing.T) {
	got, err := cacheImports(`[{"Type":"registry","Attrs":{"ref":"r.example/own:cache"}}]`, []string{"r.example/app@sha256:1", "r.example/b@sha256:2"})
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"Type":"registry","Attrs":{"ref":"r.example/own:cache"}},{"Type":"registry","Attrs":{"ref":"r.example/app@sha256:1"}},{"Type":"registry","Attrs":{"ref":"r.example/b@sha256:2"}}]`
	if got != want {
		t.Errorf("cache-imports = %s\nwant %s", got, want)
	}
	if _, err := cacheImports("{not json", []string{"x"}); err == nil {
		t.Error("a malformed cache-imports option was accepted")
	}
}

func TestAutoCacheCount(t *testing.T) {
	for opts, want := range map[[2]string]int{
		{"", ""}: defaultAutoCache, {"5", ""}: 5, {"", "0"}: 0, {"2", "7"}: 2, {"-1", ""}: -1, {"many", ""}: -1,
	} {
		n, err := autoCacheCount(map[string]string{keyAutoCacheOpt: opts[0], keyAutoCacheArg: opts[1]})
		if want < 0 {
			if err == nil {
				t.Errorf("%v: accepted as %d", opts, n)
			}
			continue
		}
		if err != nil || n != want {
			t.Errorf("%v: %d, %v; want %d", opts, n, err, want)
		}
	}
}

func TestUnknownOptions(t *testing.T) {
	got := unknownOptions(map[string]string{keyIndexOpt: "r", "strata-indx": "r", "build-arg:STRATA_INDEX": "r", "target": "x"})
	if !slices.Equal(got, []string{"strata-indx"}) {
		t.Errorf("unknown options = %v", got)
	}
}
