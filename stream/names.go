package stream

import (
	"context"
	"sync"

	"github.com/moby/buildkit/client"
	gwclient "github.com/moby/buildkit/frontend/gateway/client"
	digest "github.com/opencontainers/go-digest"
)

// A step the main solve shares with a prefix solve is one vertex in
// BuildKit, named by whichever solve loaded it first. A prefix is the
// Dockerfile cut after a step, so BuildKit's frontend counts fewer steps in
// its last stage and names the step "[2/2] RUN ..." where the main solve
// has "[2/7] RUN ...". stepNames keeps the names the main solve gave its
// vertices, and puts them back in the main solve's progress.
type stepNames struct {
	mu    sync.Mutex
	names map[digest.Digest]string
}

// frontend wraps build so that the definitions it solves record their
// vertices' names.
func (n *stepNames) frontend(build gwclient.BuildFunc) gwclient.BuildFunc {
	return func(ctx context.Context, c gwclient.Client) (*gwclient.Result, error) {
		return build(ctx, namingClient{Client: c, names: n})
	}
}

// watch returns the channel the main solve writes its progress to; each
// status goes on to out with the main solve's names. It closes out once
// the solve has closed it.
func (n *stepNames) watch(out chan *client.SolveStatus) chan *client.SolveStatus {
	return Through(out, n.rename)
}

// Through returns a status channel whose statuses go on to out as f
// changes them; out is closed once the returned channel has been.
func Through(out chan *client.SolveStatus, f func(*client.SolveStatus) *client.SolveStatus) chan *client.SolveStatus {
	in := make(chan *client.SolveStatus)
	go func() {
		defer close(out)
		for st := range in {
			out <- f(st)
		}
	}()
	return in
}

// rename returns st with its vertices named as the main solve named
// them; st itself when none differs.
func (n *stepNames) rename(st *client.SolveStatus) *client.SolveStatus {
	n.mu.Lock()
	defer n.mu.Unlock()
	return RenameVertices(st, func(v *client.Vertex) (string, bool) {
		name, ok := n.names[v.Digest]
		return name, ok && name != v.Name
	})
}

// RenameVertices returns st with each vertex that name gives a new name
// (ok) renamed, copied; st itself when none is.
func RenameVertices(st *client.SolveStatus, name func(*client.Vertex) (string, bool)) *client.SolveStatus {
	var vs []*client.Vertex
	for i, v := range st.Vertexes {
		n, ok := name(v)
		if !ok {
			continue
		}
		if vs == nil {
			vs = append([]*client.Vertex(nil), st.Vertexes...)
		}
		c := *v
		c.Name = n
		vs[i] = &c
	}
	if vs == nil {
		return st
	}
	c := *st
	c.Vertexes = vs
	return &c
}

func (n *stepNames) record(names map[digest.Digest]string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.names == nil {
		n.names = map[digest.Digest]string{}
	}
	for d, name := range names {
		n.names[d] = name
	}
}

// namingClient is the main solve's gateway client: it records the name of
// every vertex of each definition it solves.
type namingClient struct {
	gwclient.Client
	names *stepNames
}

func (c namingClient) Solve(ctx context.Context, req gwclient.SolveRequest) (*gwclient.Result, error) {
	if req.Definition != nil {
		names := map[digest.Digest]string{}
		for d, md := range req.Definition.Metadata {
			if name := md.Description["llb.customname"]; name != "" {
				names[digest.Digest(d)] = name
			}
		}
		c.names.record(names)
	}
	return c.Client.Solve(ctx, req)
}
