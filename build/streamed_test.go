package build

import (
	"slices"
	"testing"
)

func TestPlatformStepName(t *testing.T) {
	for _, tc := range []struct {
		name, want string
	}{
		{"[2/5] RUN make", "[linux/arm64 2/5] RUN make"},
		{"[build 2/5] RUN make", "[linux/arm64 build 2/5] RUN make"},
		{"[1/5] FROM docker.io/library/alpine", "[linux/arm64 1/5] FROM docker.io/library/alpine"},
		{"[internal] load metadata for docker.io/library/alpine:3", "[linux/arm64 internal] load metadata for docker.io/library/alpine:3"},
		{"exporting to image", ""},
		{"importing cache manifest from r/a:1", ""},
		{"[strata] push 1234", ""},
		{"[", ""},
		{"[] x", ""},
	} {
		got, ok := platformStepName(tc.name, "linux/arm64")
		if ok != (tc.want != "") || got != tc.want {
			t.Errorf("platformStepName(%q) = %q, %v; want %q", tc.name, got, ok, tc.want)
		}
	}
}

func TestDistinctPlatforms(t *testing.T) {
	plats, names, err := distinctPlatforms([]string{"linux/amd64", "linux/arm64/v8", "linux/arm64", "linux/386", "linux/amd64"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"linux/amd64", "linux/arm64", "linux/386"}; !slices.Equal(names, want) {
		t.Errorf("names %v, want %v", names, want)
	}
	if len(plats) != 3 || plats[1].Architecture != "arm64" || plats[1].Variant != "v8" && plats[1].Variant != "" {
		t.Errorf("platforms %+v", plats)
	}
	if _, _, err := distinctPlatforms([]string{"linux/amd64", "not a/platform/at/all"}); err == nil {
		t.Error("a platform that does not parse was taken")
	}
}
