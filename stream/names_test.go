package stream

import (
	"context"
	"testing"

	"github.com/moby/buildkit/client"
	gwclient "github.com/moby/buildkit/frontend/gateway/client"
	"github.com/moby/buildkit/solver/pb"
	digest "github.com/opencontainers/go-digest"
)

// solveOnly is a gateway client whose Solve answers nothing.
type solveOnly struct{ gwclient.Client }

func (solveOnly) Solve(context.Context, gwclient.SolveRequest) (*gwclient.Result, error) {
	return gwclient.NewResult(), nil
}

// A step a prefix solve loaded first keeps the name the main solve gave it
// in the main solve's progress.
func TestStepNames(t *testing.T) {
	run, other := digest.FromString("run"), digest.FromString("other")
	var names stepNames
	build := names.frontend(func(ctx context.Context, c gwclient.Client) (*gwclient.Result, error) {
		return c.Solve(ctx, gwclient.SolveRequest{Definition: &pb.Definition{Metadata: map[string]*pb.OpMetadata{
			string(run): {Description: map[string]string{"llb.customname": "[2/7] RUN make deps"}},
		}}})
	})
	if _, err := build(context.Background(), solveOnly{}); err != nil {
		t.Fatal(err)
	}
	out := make(chan *client.SolveStatus, 1)
	in := names.watch(out)
	sent := &client.SolveStatus{Vertexes: []*client.Vertex{{Digest: run, Name: "[2/2] RUN make deps"}, {Digest: other, Name: "[internal] load build context"}}}
	in <- sent
	close(in)
	got := <-out
	if got.Vertexes[0].Name != "[2/7] RUN make deps" || got.Vertexes[1].Name != "[internal] load build context" {
		t.Errorf("names %q, %q; want the main solve's", got.Vertexes[0].Name, got.Vertexes[1].Name)
	}
	if sent.Vertexes[0].Name != "[2/2] RUN make deps" {
		t.Error("the status sent was changed")
	}
	if _, open := <-out; open {
		t.Error("out not closed after the solve closed its channel")
	}
}
