package builder

import (
	"strings"
	"testing"
)

func TestLazyPullHint(t *testing.T) {
	for _, tc := range []struct {
		name string
		e    Endpoint
		want string // "" for no hint
	}{
		{"local", Endpoint{Local: true, Probed: &Status{Snapshotter: "overlayfs"}}, ""},
		{"stargz", Endpoint{Addr: "tcp://bk:1234", Probed: &Status{Snapshotter: "stargz"}}, ""},
		{"unknown", Endpoint{Addr: "tcp://bk:1234", Probed: &Status{}}, ""},
		{"address", Endpoint{Addr: "tcp://bk:1234", Source: "--builder=tcp://bk:1234", Probed: &Status{Snapshotter: "overlayfs"}},
			"--builder=tcp://bk:1234 uses the overlayfs snapshotter; to pull eStargz layers only as far as steps read them, start its buildkitd with --oci-worker-snapshotter=stargz (as root, with the FUSE device /dev/fuse), at a cost to the cache (BuildKit keeps no cache record of a step that runs over lazily pulled layers); see docs/lazy-pulls.md"},
		{"buildx container", Endpoint{Addr: "docker-container://buildx_buildkit_ci0", driver: "docker-container", Probed: &Status{Snapshotter: "overlayfs"}},
			"docker buildx create --driver docker-container --buildkitd-flags '--oci-worker-snapshotter=stargz'"},
		{"buildx remote", Endpoint{Addr: "tcp://bk:1234", driver: "remote", Probed: &Status{Snapshotter: "native"}},
			"uses the native snapshotter; to pull eStargz layers only as far as steps read them, start its buildkitd with --oci-worker-snapshotter=stargz"},
		{"kubernetes", Endpoint{Addr: "kube-pod://buildkitd-0?namespace=ci", Probed: &Status{Snapshotter: "overlayfs"}},
			"/dev/fuse (buildx's kubernetes driver: docker buildx create --driver kubernetes --buildkitd-flags '--oci-worker-snapshotter=stargz'; its pods are privileged and have it unless --driver-opt rootless=true)"},
		{"container", Endpoint{Addr: "docker-container://bk", Probed: &Status{Snapshotter: "overlayfs"}},
			"start the container's buildkitd with --oci-worker-snapshotter=stargz, in a container that has the FUSE device /dev/fuse"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.e.LazyPullHint()
			if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
				t.Errorf("hint %q, want %q in it", got, tc.want)
			}
			if got != "" && (strings.Contains(got, "\n") || !strings.HasSuffix(got, "; see docs/lazy-pulls.md")) {
				t.Errorf("hint %q: want one line that names docs/lazy-pulls.md", got)
			}
		})
	}
}
