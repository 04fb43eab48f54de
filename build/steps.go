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
// shares their steps, so the streams disagree: a step one solve built is
// "cached" to the solves that reach it later, a step the cache gave may be
// reported cached only to the solve that reached it first (the others may
// see it complete uncached in an instant), and a cached step whose layers
// BuildKit pulls at export completes again, uncached. A step is counted
// cached when some solve was told so and no solve saw it run before that.
type stepCounter struct {
	mu    sync.Mutex
	done  map[digest.Digest]bool       // vertex of the main solve -> completed
	steps map[digest.Digest]*stepTimes // vertex -> what any solve saw
}

// minRun is the least time a step that really ran can take.
const minRun = time.Millisecond

type stepTimes struct {
	cachedAt time.Time // earliest completion reported cached
	ranFrom  time.Time // earliest start of a completion not reported cached
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
			s.done, s.steps = map[digest.Digest]bool{}, map[digest.Digest]*stepTimes{}
		}
		if main {
			s.done[v.Digest] = true
		}
		t := s.steps[v.Digest]
		if t == nil {
			t = &stepTimes{}
			s.steps[v.Digest] = t
		}
		if v.Cached {
			if t.cachedAt.IsZero() || v.Completed.Before(t.cachedAt) {
				t.cachedAt = *v.Completed
			}
			continue
		}
		// BuildKit also completes a step it takes from the cache as
		// uncached, in microseconds; running takes milliseconds at least
		// (a snapshot for a COPY, a container for a RUN).
		if v.Started == nil || v.Completed.Sub(*v.Started) < minRun {
			continue
		}
		if t.ranFrom.IsZero() || v.Started.Before(t.ranFrom) {
			t.ranFrom = *v.Started
		}
	}
}

func (s *stepCounter) result() Steps {
	s.mu.Lock()
	defer s.mu.Unlock()
	var r Steps
	for d := range s.done {
		r.Total++
		if t := s.steps[d]; !t.cachedAt.IsZero() && (t.ranFrom.IsZero() || !t.ranFrom.Before(t.cachedAt)) {
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
