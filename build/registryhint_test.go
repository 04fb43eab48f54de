package build

import (
	"strings"
	"testing"
)

// BuildKit reports registry refusals as text; the hint follows its words.
func TestRegistryHint(t *testing.T) {
	for msg, want := range map[string]string{
		"failed to push r/app:v1: push access denied, repository does not exist or may require authorization: server message: insufficient_scope: authorization failed": "may not push to this repository",
		"failed to push r/app:v1: unexpected status from POST request: 401 Unauthorized":                                                                                "docker login",
		"failed to push r/app:v1: denied: requested access to the resource is denied":                                                                                   "may not push to this repository",
	} {
		if got := registryHint(strings.ToLower(msg)); !strings.Contains(got, want) {
			t.Errorf("%q: hint %q, want %q", msg, got, want)
		}
	}
}
