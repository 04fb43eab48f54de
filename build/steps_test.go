package build

import (
	"testing"
	"time"

	"github.com/moby/buildkit/client"
	digest "github.com/opencontainers/go-digest"
)

func TestIsStep(t *testing.T) {
	for name, want := range map[string]bool{
		"[build 2/5] RUN make":                      true,
		"[2/2] COPY . /src":                         true,
		"[stage-2 3/3] RUN test -s /app/app.bin":    true,
		"[1/2] FROM docker.io/library/busybox":      false,
		"[internal] load build definition from Df":  false,
		"[internal] load .dockerignore":             false,
		"exporting to image":                        false,
		"[auth] library/busybox:pull token":         false,
		"resolve image config for docker.io/x/y:1":  false,
		"[build  4/5] WORKDIR /src":                 true,
		"[linux/arm64 build 1/3] RUN go build ./..": true,
	} {
		if got := IsStep(name); got != want {
			t.Errorf("IsStep(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestStepCounter(t *testing.T) {
	t0 := time.Now()
	v := func(d, name string, cached bool, completed time.Duration) *client.Vertex {
		vx := &client.Vertex{Digest: digest.FromString(d), Name: name, Cached: cached}
		if completed >= 0 {
			at := t0.Add(completed)
			vx.Completed = &at
		}
		return vx
	}
	var s stepCounter
	s.observe(&client.SolveStatus{Vertexes: []*client.Vertex{
		v("a", "[1/3] RUN a", false, -1), // started
		v("b", "[2/3] RUN b", true, 1),
		v("i", "[internal] load .dockerignore", true, 1),
	}}, true)
	s.observe(&client.SolveStatus{Vertexes: []*client.Vertex{
		v("a", "[1/3] RUN a", false, 2), // completed, ran
		v("b", "[2/3] RUN b", true, 1),  // reported again
		v("c", "[3/3] COPY . .", true, 3),
	}}, true)
	if got := s.result(); got != (Steps{Total: 3, Cached: 2}) {
		t.Fatalf("steps = %+v, want 3 total, 2 cached", got)
	}
	// A prefix solve reached d first and was told it was cached; the main
	// solve saw it complete later without the flag. A step only a prefix
	// solve ran is not the main solve's.
	s.observe(&client.SolveStatus{Vertexes: []*client.Vertex{
		v("d", "[2/2] RUN d", true, 4),
		v("e", "[2/2] RUN e", true, 4),
	}}, false)
	s.observe(&client.SolveStatus{Vertexes: []*client.Vertex{v("d", "[4/4] RUN d", false, 5)}}, true)
	if got := s.result(); got != (Steps{Total: 4, Cached: 3}) {
		t.Fatalf("steps = %+v, want 4 total, 3 cached", got)
	}
	// A prefix solve built f; the main solve, reaching it later, is told
	// it was cached: it was built by this build, not taken from a cache.
	s.observe(&client.SolveStatus{Vertexes: []*client.Vertex{v("f", "[1/1] RUN f", false, 6)}}, false)
	s.observe(&client.SolveStatus{Vertexes: []*client.Vertex{v("f", "[5/5] RUN f", true, 7)}}, true)
	// g completed once, shared by two solves, reported cached to one.
	s.observe(&client.SolveStatus{Vertexes: []*client.Vertex{v("g", "[6/6] RUN g", true, 8)}}, true)
	s.observe(&client.SolveStatus{Vertexes: []*client.Vertex{v("g", "[1/1] RUN g", false, 8)}}, false)
	if got := s.result(); got != (Steps{Total: 6, Cached: 3}) {
		t.Fatalf("steps = %+v, want 6 total, 3 cached", got)
	}
}
