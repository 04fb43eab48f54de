package cache

import "testing"

func TestPlatform(t *testing.T) {
	for in, want := range map[[3]string]string{
		{"linux", "arm64", "v8"}: "linux/arm64", {"linux", "aarch64", ""}: "linux/arm64", {"linux", "arm", "v7"}: "linux/arm/v7",
		{"linux", "amd64", ""}: "linux/amd64", {"", "amd64", ""}: "",
	} {
		if got := Platform(in[0], in[1], in[2]); got != want {
			t.Errorf("Platform%v = %q, want %q", in, got, want)
		}
	}
}
