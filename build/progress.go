package build

import (
	"context"
	"sync"
	"time"

	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/util/progress/progressui"
	digest "github.com/opencontainers/go-digest"
)

// progress feeds one BuildKit display from the main solve's status stream
// and from strata's own steps (layer uploads, prefix exports), shown as
// vertices of their own.
type progress struct {
	ch   chan *client.SolveStatus
	wg   sync.WaitGroup
	done chan struct{}

	mu     sync.Mutex
	closed bool

	steps    stepCounter
	pulls    pullCounter
	reads    readFailures
	resolves resolveFailures
	warnings []client.VertexWarning
	err      error
}

func newProgress(d progressui.Display) *progress {
	p := &progress{ch: make(chan *client.SolveStatus, 16), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		// The display runs to the end of the stream even when the build
		// fails, so the failing step's logs are shown.
		p.warnings, p.err = d.UpdateFrom(context.Background(), p.ch)
	}()
	return p
}

// Main returns a status channel for the main solve: shown, and its
// Dockerfile steps counted. The solve closes it when it ends.
func (p *progress) Main() chan *client.SolveStatus { return p.stream(true) }

// Quiet returns a status channel for a prefix solve: not shown (its steps
// are the main solve's, which the display shows), but observed for steps
// BuildKit reported cached only there. The solve closes it.
func (p *progress) Quiet() chan *client.SolveStatus { return p.stream(false) }

func (p *progress) stream(main bool) chan *client.SolveStatus {
	in := make(chan *client.SolveStatus)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for st := range in {
			p.steps.observe(st, main)
			p.pulls.observe(st)
			p.reads.observe(st)
			p.resolves.observe(st)
			if main {
				p.send(st)
			}
		}
	}()
	return in
}

func (p *progress) send(st *client.SolveStatus) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.ch <- st
	}
}

// Begin shows one of strata's own steps, starting now; the returned func
// ends it.
func (p *progress) Begin(name string) func(error) {
	started := time.Now()
	v := client.Vertex{Digest: digest.FromString(name + started.String()), Name: name, Started: &started}
	p.send(&client.SolveStatus{Vertexes: []*client.Vertex{&v}})
	return func(err error) { p.Span(name, started, time.Now(), err) }
}

// pullCounter adds up the blobs BuildKit pulled from registries (base
// image layers and imported cache layers): BuildKit reports each download
// as a status whose ID is the blob's digest, ending at its size. A blob
// shared by several solves is counted once.
type pullCounter struct {
	mu    sync.Mutex
	bytes map[string]int64 // digest -> largest size reported
}

func (c *pullCounter) observe(st *client.SolveStatus) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range st.Statuses {
		if _, err := digest.Parse(s.ID); err != nil {
			continue // "writing layer sha256:...", "pushing layers", ...
		}
		if c.bytes == nil {
			c.bytes = map[string]int64{}
		}
		c.bytes[s.ID] = max(c.bytes[s.ID], s.Total, s.Current)
	}
}

// total returns the bytes and the number of blobs pulled.
func (c *pullCounter) total() Pulled {
	c.mu.Lock()
	defer c.mu.Unlock()
	var p Pulled
	for _, n := range c.bytes {
		p.Bytes += n
		p.Blobs++
	}
	return p
}

// wait ends the display once every solve's stream has ended, and returns
// the warnings, the step counts and the display's error.
func (p *progress) wait() ([]client.VertexWarning, Steps, error) {
	p.wg.Wait()
	p.mu.Lock()
	p.closed = true
	close(p.ch)
	p.mu.Unlock()
	<-p.done
	return p.warnings, p.steps.result(), p.err
}

// Show shows the main solve's steps that strata did in the builder's
// stead, and the warnings about them (see frontend.LocalReads), as the
// builder would have shown them.
func (p *progress) Show(st *client.SolveStatus) { p.send(st) }

// Span shows a step of strata's own that ran from started to done.
func (p *progress) Span(name string, started, done time.Time, err error) {
	v := client.Vertex{Digest: digest.FromString(name + started.String()), Name: name, Started: &started, Completed: &done}
	if err != nil {
		v.Error = err.Error()
	}
	p.send(&client.SolveStatus{Vertexes: []*client.Vertex{&v}})
}
