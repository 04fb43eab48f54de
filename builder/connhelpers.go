package builder

// The address schemes buildctl and docker buildx accept besides unix:// and
// tcp://: docker-container://NAME (the container of a docker buildx builder),
// podman-container://, nerdctl-container://, kube-pod://NAME and ssh://.
import (
	_ "github.com/moby/buildkit/client/connhelper/dockercontainer"
	_ "github.com/moby/buildkit/client/connhelper/kubepod"
	_ "github.com/moby/buildkit/client/connhelper/nerdctlcontainer"
	_ "github.com/moby/buildkit/client/connhelper/podmancontainer"
	_ "github.com/moby/buildkit/client/connhelper/ssh"
)
