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
	now := time.Now()
	v := func(d, name string, cached, completed bool) *client.Vertex {
		vx := &client.Vertex{Digest: digest.FromString(d), Name: name, Cached: cached}
		if completed {
			vx.Completed = &now
		}
		return vx
	}
	var s stepCounter
	s.observe(&client.SolveStatus{Vertexes: []*client.Vertex{
		v("a", "[1/3] RUN a", false, false), // started
		v("b", "[2/3] RUN b", true, true),
		v("i", "[internal] load .dockerignore", true, true),
	}}, true)
	s.observe(&client.SolveStatus{Vertexes: []*client.Vertex{
		v("a", "[1/3] RUN a", false, true), // completed, ran
		v("b", "[2/3] RUN b", true, true),  // reported again
		v("c", "[3/3] COPY . .", true, true),
	}}, true)
	if got := s.result(); got != (Steps{Total: 3, Cached: 2}) {
		t.Fatalf("steps = %+v, want 3 total, 2 cached", got)
	}
	// A prefix solve reached d first and was told it was cached; the main
	// solve saw it complete without the flag. A step only a prefix solve
	// ran is not the main solve's.
	s.observe(&client.SolveStatus{Vertexes: []*client.Vertex{
		v("d", "[2/2] RUN d", true, true),
		v("e", "[2/2] RUN e", true, true),
	}}, false)
	s.observe(&client.SolveStatus{Vertexes: []*client.Vertex{v("d", "[4/4] RUN d", false, true)}}, true)
	if got := s.result(); got != (Steps{Total: 4, Cached: 3}) {
		t.Fatalf("steps = %+v, want 4 total, 3 cached", got)
	}
}
