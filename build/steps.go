package build

import (
	"strings"

	"github.com/moby/buildkit/client"
	digest "github.com/opencontainers/go-digest"
)

// stepCounter follows the status stream and counts the Dockerfile steps that
// completed, and how many of them came from the cache.
type stepCounter struct {
	done map[digest.Digest]bool // vertex -> cached
}

func (s *stepCounter) observe(st *client.SolveStatus) {
	for _, v := range st.Vertexes {
		if v.Completed == nil || !IsStep(v.Name) {
			continue
		}
		if s.done == nil {
			s.done = map[digest.Digest]bool{}
		}
		s.done[v.Digest] = s.done[v.Digest] || v.Cached
	}
}

func (s *stepCounter) result() Steps {
	var r Steps
	for _, cached := range s.done {
		r.Total++
		if cached {
			r.Cached++
		}
	}
	return r
}

// IsStep reports whether a vertex name is a Dockerfile step such as
// "[build 2/5] RUN make", as opposed to "[internal] load ..." or an export.
func IsStep(name string) bool {
	if !strings.HasPrefix(name, "[") || strings.HasPrefix(name, "[internal]") {
		return false
	}
	i := strings.IndexByte(name, ']')
	if i < 0 {
		return false
	}
	f := strings.Fields(name[1:i])
	if len(f) == 0 || !strings.Contains(f[len(f)-1], "/") {
		return false
	}
	// FROM steps resolve the base image; they are not built.
	return !strings.HasPrefix(strings.TrimSpace(name[i+1:]), "FROM ")
}
