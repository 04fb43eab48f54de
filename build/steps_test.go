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
	at := func(sec float64) *time.Time { x := t0.Add(time.Duration(sec * float64(time.Second))); return &x }
	v := func(d, name string, cached bool, started, completed float64) *client.Vertex {
		vx := &client.Vertex{Digest: digest.FromString(d), Name: name, Cached: cached}
		if started >= 0 {
			vx.Started = at(started)
		}
		if completed >= 0 {
			vx.Completed = at(completed)
		}
		return vx
	}
	var s stepCounter
	s.observe(&client.SolveStatus{Vertexes: []*client.Vertex{
		v("a", "[1/3] RUN a", false, 0, -1), // started
		v("b", "[2/3] RUN b", true, 1, 1),
		v("i", "[internal] load .dockerignore", true, 1, 1),
	}}, true)
	s.observe(&client.SolveStatus{Vertexes: []*client.Vertex{
		v("a", "[1/3] RUN a", false, 0, 2), // completed, ran
		v("b", "[2/3] RUN b", true, 1, 1),  // reported again
		v("c", "[3/3] COPY . .", true, 3, 3),
	}}, true)
	if got := s.result(); got != (Steps{Total: 3, Cached: 2}) {
		t.Fatalf("steps = %+v, want 3 total, 2 cached", got)
	}
	// A prefix solve reached d first and was told it was cached; the main
	// solve saw it complete later without the flag (BuildKit pulling its
	// layers for the export). A step only a prefix solve ran is not the
	// main solve's.
	s.observe(&client.SolveStatus{Vertexes: []*client.Vertex{
		v("d", "[2/2] RUN d", true, 4, 4),
		v("e", "[2/2] RUN e", true, 4, 4),
	}}, false)
	s.observe(&client.SolveStatus{Vertexes: []*client.Vertex{v("d", "[4/4] RUN d", false, 4, 5)}}, true)
	if got := s.result(); got != (Steps{Total: 4, Cached: 3}) {
		t.Fatalf("steps = %+v, want 4 total, 3 cached", got)
	}
	// A prefix solve built f; the main solve, reaching it later, is told
	// it was cached: it was built by this build, not taken from a cache.
	s.observe(&client.SolveStatus{Vertexes: []*client.Vertex{v("f", "[1/1] RUN f", false, 5, 6)}}, false)
	s.observe(&client.SolveStatus{Vertexes: []*client.Vertex{v("f", "[5/5] RUN f", true, 7, 7)}}, true)
	// g ran in one solve while another was told, at its end, it was cached.
	s.observe(&client.SolveStatus{Vertexes: []*client.Vertex{v("g", "[6/6] RUN g", true, 8, 8)}}, true)
	s.observe(&client.SolveStatus{Vertexes: []*client.Vertex{v("g", "[1/1] RUN g", false, 7, 8)}}, false)
	// h came from the cache, then completed again uncached in every solve
	// when its layers were pulled for the export.
	s.observe(&client.SolveStatus{Vertexes: []*client.Vertex{v("h", "[7/7] RUN h", true, 9, 9)}}, true)
	s.observe(&client.SolveStatus{Vertexes: []*client.Vertex{v("h", "[7/7] RUN h", false, 10, 11)}}, true)
	s.observe(&client.SolveStatus{Vertexes: []*client.Vertex{v("h", "[1/1] RUN h", false, 10, 11)}}, false)
	// k came from the cache; the main solve saw it complete uncached in
	// 15µs before a prefix solve was told it was cached.
	k := v("k", "[8/8] COPY k .", false, 12, 12.000015)
	s.observe(&client.SolveStatus{Vertexes: []*client.Vertex{k}}, true)
	s.observe(&client.SolveStatus{Vertexes: []*client.Vertex{v("k", "[2/2] COPY k .", true, 13, 13)}}, false)
	if got := s.result(); got != (Steps{Total: 8, Cached: 5}) {
		t.Fatalf("steps = %+v, want 8 total, 5 cached", got)
	}
}
