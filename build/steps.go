package build

import (
	"strings"
	"sync"
	"time"

	"github.com/moby/buildkit/client"
	digest "github.com/opencontainers/go-digest"
)

// stepCounter follows the status streams and counts the Dockerfile steps
// that completed in the main solve, and how many of them came from the
// cache. A streamed push runs prefix solves beside the main one and BuildKit
// shares their steps, so whether a step was cached is decided by the first
// completion any solve saw: a step one solve built is "cached" to the solves
// that reach it later, and a step the cache gave may be reported cached
// only to the solve that reached it first.
type stepCounter struct {
	mu    sync.Mutex
	done  map[digest.Digest]bool       // vertex of the main solve -> completed
	first map[digest.Digest]completion // vertex -> its earliest completion in any solve
}

type completion struct {
	at     time.Time
	cached bool
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
			s.done, s.first = map[digest.Digest]bool{}, map[digest.Digest]completion{}
		}
		if main {
			s.done[v.Digest] = true
		}
		c, seen := s.first[v.Digest]
		switch {
		case !seen || v.Completed.Before(c.at):
			s.first[v.Digest] = completion{at: *v.Completed, cached: v.Cached}
		case v.Completed.Equal(c.at) && !v.Cached:
			// The same completion told one solve it ran: it ran.
			s.first[v.Digest] = completion{at: c.at}
		}
	}
}

func (s *stepCounter) result() Steps {
	s.mu.Lock()
	defer s.mu.Unlock()
	var r Steps
	for d := range s.done {
		r.Total++
		if s.first[d].cached {
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
