package frontend

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/moby/buildkit/frontend/dockerui"
	"github.com/moby/buildkit/frontend/gateway/client"
	gwpb "github.com/moby/buildkit/frontend/gateway/pb"
	"github.com/moby/buildkit/solver/pb"
)

// gatewayClient records the solves sent through it; its other methods are
// not called here.
type gatewayClient struct {
	client.Client
	opts   map[string]string
	solved [][]client.CacheOptionsEntry
}

func (g *gatewayClient) BuildOpts() client.BuildOpts {
	return client.BuildOpts{Opts: g.opts, LLBCaps: pb.Caps.CapSet(pb.Caps.All()), Caps: gwpb.Caps.CapSet(gwpb.Caps.All())}
}

func (g *gatewayClient) Solve(_ context.Context, req client.SolveRequest) (*client.Result, error) {
	g.solved = append(g.solved, req.CacheImports)
	return &client.Result{}, nil
}

func registry(ref string) client.CacheOptionsEntry {
	return client.CacheOptionsEntry{Type: "registry", Attrs: map[string]string{"ref": ref}}
}

// The stock builder reads the placeholder with the client's own imports,
// and only the solve that carries it waits for the chosen imports, which
// take its place.
func TestLateImportsTakeThePlaceholdersPlace(t *testing.T) {
	own := `[{"Type":"registry","Attrs":{"ref":"r.example/own:cache"}}]`
	g := &gatewayClient{opts: map[string]string{keyCacheImports: own, "filename": "Dockerfile"}}
	release := make(chan struct{})
	calls := 0
	l := &lateClient{Client: g, imports: func(ctx context.Context) ([]client.CacheOptionsEntry, error) {
		calls++
		select {
		case <-release:
			return []client.CacheOptionsEntry{registry("r.example/app@sha256:1"), registry("r.example/b@sha256:2")}, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}}

	bc, err := dockerui.NewClient(l)
	if err != nil {
		t.Fatal(err)
	}
	want := []client.CacheOptionsEntry{registry("r.example/own:cache"), {Type: lateImport}}
	if !reflect.DeepEqual(bc.CacheImports, want) {
		t.Fatalf("the stock builder reads cache imports %v, want %v", bc.CacheImports, want)
	}
	if g.opts[keyCacheImports] != own {
		t.Errorf("the client's own options were changed: %s", g.opts[keyCacheImports])
	}

	// Solves without the placeholder (the Dockerfile, the context) go on.
	if _, err := l.Solve(context.Background(), client.SolveRequest{}); err != nil || calls != 0 {
		t.Fatalf("a solve without the placeholder: err %v, %d waits for the choice", err, calls)
	}
	// The build's solve waits for the choice, and fails with its context.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Solve(ctx, client.SolveRequest{CacheImports: bc.CacheImports}); !errors.Is(err, context.Canceled) {
		t.Fatalf("the build's solve with its context ended: %v", err)
	}
	close(release)
	if _, err := l.Solve(context.Background(), client.SolveRequest{CacheImports: bc.CacheImports}); err != nil {
		t.Fatal(err)
	}
	got := g.solved[len(g.solved)-1]
	want = []client.CacheOptionsEntry{registry("r.example/own:cache"), registry("r.example/app@sha256:1"), registry("r.example/b@sha256:2")}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("the build solved with cache imports %v, want %v", got, want)
	}
	if len(g.solved) != 2 {
		t.Errorf("%d solves reached BuildKit, want 2 (the one whose context ended did not)", len(g.solved))
	}

	// A build handed to another frontend gets the chosen imports in its
	// option, never the placeholder.
	s, err := settled(context.Background(), l)
	if err != nil {
		t.Fatal(err)
	}
	opt := s.BuildOpts().Opts[keyCacheImports]
	wantOpt := `[{"Type":"registry","Attrs":{"ref":"r.example/own:cache"}},{"Type":"registry","Attrs":{"ref":"r.example/app@sha256:1"}},{"Type":"registry","Attrs":{"ref":"r.example/b@sha256:2"}}]`
	if opt != wantOpt {
		t.Errorf("forwarded cache-imports = %s\nwant %s", opt, wantOpt)
	}
	// So does one whose client reads the frontend's own files here, over
	// the late imports (InProcess).
	s, err = settled(context.Background(), &localReadsClient{Client: l})
	if err != nil {
		t.Fatal(err)
	}
	if opt := s.BuildOpts().Opts[keyCacheImports]; opt != wantOpt {
		t.Errorf("forwarded under the local reads: cache-imports = %s\nwant %s", opt, wantOpt)
	}
}

// With no cache-imports of its own and nothing chosen, the build solves
// with none, and a forwarded build gets no option.
func TestLateImportsNoneChosen(t *testing.T) {
	g := &gatewayClient{}
	l := &lateClient{Client: g, imports: func(context.Context) ([]client.CacheOptionsEntry, error) { return nil, nil }}
	bc, err := dockerui.NewClient(l)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Solve(context.Background(), client.SolveRequest{CacheImports: bc.CacheImports}); err != nil {
		t.Fatal(err)
	}
	if len(g.solved) != 1 || len(g.solved[0]) != 0 {
		t.Errorf("solved with cache imports %v, want none", g.solved)
	}
	s, err := settled(context.Background(), l)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := s.BuildOpts().Opts[keyCacheImports]; ok {
		t.Errorf("forwarded cache-imports = %q, want none", v)
	}
}
