package build

import (
	"errors"
	"strings"
	"testing"

	"github.com/moby/buildkit/client"

	"github.com/strata-build/strata/errs"
)

// The vertices BuildKit v0.33.1 shows when an image does not resolve, and
// what strata makes of them.
func TestResolveFailures(t *testing.T) {
	for _, tc := range []struct {
		name, vertex, cause string
		want                error // nil: not an image resolution
		line, hint          string
	}{
		{
			name: "base image missing", vertex: "[internal] load metadata for registry.example.com/team/base:v1",
			cause: "registry.example.com/team/base:v1: not found",
			want:  errs.ErrInput, line: "image registry.example.com/team/base:v1 not found", hint: "FROM",
		},
		{
			name: "base image of another platform, registry down", vertex: "[linux/arm64 internal] load metadata for registry.example.com/team/base:v1",
			cause: `failed to do request: Head "https://registry.example.com/v2/team/base/manifests/v1": dial tcp 10.0.0.5:443: connect: connection refused`,
			want:  errs.ErrRegistry, line: "could not be pulled: dial tcp 10.0.0.5:443: connect: connection refused", hint: "registry address",
		},
		{
			name: "base image on a plain-HTTP registry", vertex: "[internal] load metadata for registry.internal:5000/team/base:v1",
			cause: `failed to do request: Head "https://registry.internal:5000/v2/team/base/manifests/v1": http: server gave HTTP response to HTTPS client`,
			want:  errs.ErrRegistry, line: "could not be pulled: http: server gave HTTP response to HTTPS client", hint: "--insecure-registry HOST",
		},
		{
			name: "base image needs credentials", vertex: "[internal] load metadata for registry.example.com/team/base:v1",
			cause: "failed to authorize: failed to fetch oauth token: unexpected status: 401 Unauthorized",
			want:  errs.ErrRegistry, line: "image registry.example.com/team/base:v1 could not be pulled", hint: "docker login",
		},
		{
			name: "syntax image offline", vertex: "resolve image config for docker-image://docker.io/docker/dockerfile:1",
			cause: `failed to do request: Head "https://registry-1.docker.io/v2/docker/dockerfile/manifests/1": dial tcp: lookup registry-1.docker.io: no such host`,
			want:  errs.ErrRegistry, line: `frontend image docker.io/docker/dockerfile:1 (named by "# syntax="`, hint: `delete the "# syntax=" line`,
		},
		{name: "a step failed", vertex: "[2/2] RUN exit 3", cause: `process "/bin/sh -c exit 3" did not complete successfully: exit code: 3`},
		{name: "a cache import failed", vertex: "importing cache manifest from registry.example.com/team/app:latest", cause: "not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r resolveFailures
			r.observe(&client.SolveStatus{Vertexes: []*client.Vertex{{Name: "[internal] load build definition from Dockerfile"}, {Name: tc.vertex, Error: tc.cause}}})
			err := r.error()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("got %v, want no resolution error", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.line) {
				t.Errorf("error %q does not say %q", err, tc.line)
			}
			var h *errs.Hint
			if !errors.As(err, &h) || !strings.Contains(h.Error(), tc.hint) {
				t.Errorf("error %q has no hint with %q", err, tc.hint)
			}
		})
	}
}
