package builder

import (
	"fmt"
	"strings"
)

// stargzFlag is what turns lazy pulls on in buildkitd.
const stargzFlag = snapshotterFlag + "=" + SnapshotterStargz

// LazyPullHint says, for a builder strata did not start whose default
// worker does not use the stargz snapshotter, what it uses and how to turn
// lazy pulls on there, in one line. It is empty for strata's own builder
// (see Status.NotStargz), a builder on stargz, and one whose snapshotter
// is not known.
func (e *Endpoint) LazyPullHint() string {
	if e.Local || e.Probed == nil || e.Probed.Snapshotter == "" || e.Probed.Snapshotter == SnapshotterStargz {
		return ""
	}
	return fmt.Sprintf("%s uses the %s snapshotter; to pull eStargz layers only as far as steps read them, %s, at a cost to the cache (BuildKit keeps no cache record of a step that runs over lazily pulled layers); see docs/lazy-pulls.md",
		e.Source, e.Probed.Snapshotter, lazyPullHow(e.Addr, e.driver))
}

// lazyPullHow says how to start the builder at addr (a buildx builder of
// driver, when driver is set) with the stargz snapshotter.
func lazyPullHow(addr, driver string) string {
	switch {
	case driver == "docker-container":
		return "create the builder again with docker buildx create --driver docker-container --buildkitd-flags '" + stargzFlag + "'"
	case strings.HasPrefix(addr, "kube-pod://"):
		return "start the pod's buildkitd with " + stargzFlag + " in a container that has the FUSE device /dev/fuse (buildx's kubernetes driver: docker buildx create --driver kubernetes --buildkitd-flags '" + stargzFlag + "'; its pods are privileged and have it unless --driver-opt rootless=true)"
	case strings.HasPrefix(addr, "docker-container://"), strings.HasPrefix(addr, "podman-container://"):
		return "start the container's buildkitd with " + stargzFlag + ", in a container that has the FUSE device /dev/fuse (--privileged gives it)"
	default:
		return "start its buildkitd with " + stargzFlag + " (as root, with the FUSE device /dev/fuse)"
	}
}
