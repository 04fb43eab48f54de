package build

import (
	"strings"
	"sync"

	"github.com/moby/buildkit/client"
	digest "github.com/opencontainers/go-digest"
)

// stepCounter follows the status streams and counts the Dockerfile steps
// that completed in the main solve, and how many of them came from the
// cache. A streamed push runs prefix solves beside the main one; BuildKit
// shares a step between them, and the solve that reaches it first may be
// the only one told it was cached, so every stream is observed.
type stepCounter struct {
	mu     sync.Mutex
	done   map[digest.Digest]bool // vertex of the main solve -> completed
	cached map[digest.Digest]bool // vertex reported cached in any solve
}

// observe takes a status of the main solve (main) or of a prefix solve.
func (s *stepCounter) observe(st *client.SolveStatus, main bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range st.Vertexes {
		if v.Completed == nil || !IsStep(v.Name) {
			continue
		}
		if s.done == nil {
			s.done, s.cached = map[digest.Digest]bool{}, map[digest.Digest]bool{}
		}
		if main {
			s.done[v.Digest] = true
		}
		if v.Cached {
			s.cached[v.Digest] = true
		}
	}
}

func (s *stepCounter) result() Steps {
	s.mu.Lock()
	defer s.mu.Unlock()
	var r Steps
	for d := range s.done {
		r.Total++
		if s.cached[d] {
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
