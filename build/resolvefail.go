package build

import (
	"fmt"
	"strings"
	"sync"

	"github.com/moby/buildkit/client"

	"github.com/strata-build/strata/errs"
)

// An image the build needs before its first step (a FROM's base image, a
// COPY --from image, the frontend a "# syntax=" line names) that cannot be
// resolved fails the solve with BuildKit's bare cause ("REF: not found",
// `failed to do request: Head "..."`), which says neither which line of
// the Dockerfile asked for it nor what to do. BuildKit shows each
// resolution as a vertex named after the image; resolveFailures remembers
// the first that failed, and error says what it was.

const (
	// "[internal] load metadata for REF", "[linux/arm64 internal] ..."
	metadataVertex = " load metadata for "
	// The frontend image of a "# syntax=" line or BUILDKIT_SYNTAX.
	frontendVertex = "resolve image config for docker-image://"
)

type resolveFailures struct {
	mu       sync.Mutex
	ref      string
	frontend bool
	cause    string
}

func (r *resolveFailures) observe(st *client.SolveStatus) {
	for _, v := range st.Vertexes {
		if v.Error == "" {
			continue
		}
		var ref string
		frontend := strings.HasPrefix(v.Name, frontendVertex)
		if frontend {
			ref = strings.TrimPrefix(v.Name, frontendVertex)
		} else if i := strings.Index(v.Name, metadataVertex); i > 0 && strings.HasPrefix(v.Name, "[") && strings.HasSuffix(v.Name[:i], "internal]") {
			ref = v.Name[i+len(metadataVertex):]
		}
		if ref == "" {
			continue
		}
		r.mu.Lock()
		if r.ref == "" {
			r.ref, r.frontend, r.cause = ref, frontend, v.Error
		}
		r.mu.Unlock()
	}
}

// error is the build's error when an image could not be resolved: input
// (exit 2) for an image the registry does not have, registry (exit 4) for
// one it would not give; nil when every image resolved.
func (r *resolveFailures) error() error {
	r.mu.Lock()
	ref, frontend, cause := r.ref, r.frontend, r.cause
	r.mu.Unlock()
	if ref == "" {
		return nil
	}
	what := "image " + ref
	fix := "check the image name and tag in the Dockerfile's FROM (or COPY --from) lines and the build args that set them"
	if frontend {
		what = `frontend image ` + ref + ` (named by "# syntax=" or BUILDKIT_SYNTAX)`
		fix = `delete the "# syntax=" line to build with the builder's own Dockerfile frontend`
	}
	lower := strings.ToLower(cause)
	if strings.HasSuffix(lower, ": not found") || strings.Contains(lower, "manifest unknown") {
		return errs.WithHint(fmt.Errorf("%w: %s not found in its registry", errs.ErrInput, what), fix+", and that the image was pushed")
	}
	return errs.WithHint(fmt.Errorf("%w: %s could not be pulled: %s", errs.ErrRegistry, what, requestCause(errs.FirstLine(cause))), pullHint(lower, fix))
}

// pullHint is the advice for an image the builder could not pull.
func pullHint(lower, fix string) string {
	switch {
	case strings.Contains(lower, "unauthorized"), strings.Contains(lower, "authentication required"),
		strings.Contains(lower, "authorization failed"), strings.Contains(lower, "denied"), strings.Contains(lower, "forbidden"):
		return "log in with 'docker login REGISTRY' as an account that may pull it, or " + fix
	case strings.Contains(lower, "http response to https client"):
		return "the registry serves plain HTTP: pass --insecure-registry HOST (a builder strata does not start needs [registry.\"HOST\"] http = true in its buildkitd.toml), or " + fix
	case strings.Contains(lower, "connection refused"), strings.Contains(lower, "no such host"),
		strings.Contains(lower, "i/o timeout"), strings.Contains(lower, "network is unreachable"):
		return "check the registry address and that the builder reaches it (an offline builder needs a mirror in buildkitd.toml), or " + fix
	default:
		return "check that its registry is healthy, or " + fix
	}
}

// requestCause drops the request from containerd's `failed to do request:
// Head "URL": CAUSE`, whose URL repeats the image.
func requestCause(msg string) string {
	const prefix = "failed to do request: "
	if !strings.HasPrefix(msg, prefix) {
		return msg
	}
	rest := msg[len(prefix):]
	if i := strings.Index(rest, `": `); i >= 0 && strings.Contains(rest[:i], ` "`) {
		return rest[i+3:]
	}
	return msg
}
