package frontend

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/gateway/client"
	spb "github.com/moby/buildkit/sourcepolicy/pb"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// gateway answers resolves of base images and records them.
type gateway struct {
	client.Client
	mu       sync.Mutex
	resolves []string // each resolve's ref and step name
}

func (g *gateway) ResolveImageConfig(_ context.Context, ref string, opt sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.resolves = append(g.resolves, ref+" / "+opt.LogName)
	return ref, digest.FromString(ref), []byte(`{"os":"linux","architecture":"amd64"}`), nil
}

func (g *gateway) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.resolves)
}

var amd64 = &ocispecs.Platform{OS: "linux", Architecture: "amd64"}

// frontendResolve is the Dockerfile frontend's resolve of a base image.
func frontendResolve(platform *ocispecs.Platform, mode string) sourceresolver.Opt {
	return sourceresolver.Opt{
		LogName:  "[internal] load metadata for busybox",
		ImageOpt: &sourceresolver.ResolveImageOpt{Platform: platform, ResolveMode: mode},
	}
}

// The cache choice and the frontend resolve a base image once between
// them, through the frontend's gateway, and get the same answer.
func TestResolvesShareOneResolveOfEachBaseImage(t *testing.T) {
	r := NewResolves()
	g := &gateway{}
	type answer struct {
		dgst digest.Digest
		ok   bool
		err  error
	}
	planned := make(chan answer, 1)
	go func() {
		// The choice asks before any frontend has started: it waits.
		d, _, ok, err := r.Resolve(context.Background(), "busybox", amd64, "default", false)
		planned <- answer{d, ok, err}
	}()
	var built digest.Digest
	_, err := r.Share(func(ctx context.Context, c client.Client) (*client.Result, error) {
		p := <-planned
		if p.err != nil || !p.ok {
			return nil, errors.Join(p.err, errors.New("the choice did not resolve through the gateway"))
		}
		_, d, _, err := c.ResolveImageConfig(ctx, "docker.io/library/busybox:latest", frontendResolve(amd64, "default"))
		if err != nil {
			return nil, err
		}
		if d != p.dgst {
			t.Errorf("the frontend got %s, the choice %s", d, p.dgst)
		}
		built = d
		return nil, nil
	})(context.Background(), g)
	if err != nil {
		t.Fatal(err)
	}
	if built == "" || g.count() != 1 {
		t.Errorf("the builder resolved %q, want busybox once", g.resolves)
	}
	if want := "busybox / [internal] load metadata for busybox"; g.count() == 1 && g.resolves[0] != want {
		t.Errorf("the builder resolved %q, want %q, named as the frontend names it", g.resolves[0], want)
	}
}

// What the frontend resolves differently (another platform, another
// resolve mode, source policies of its own) is its own resolve.
func TestResolvesShareOnlyTheSameResolve(t *testing.T) {
	r := NewResolves()
	g := &gateway{}
	arm64 := &ocispecs.Platform{OS: "linux", Architecture: "arm64"}
	_, err := r.Share(func(ctx context.Context, c client.Client) (*client.Result, error) {
		if _, _, ok, err := r.Resolve(ctx, "busybox", amd64, "default", false); !ok || err != nil {
			return nil, errors.Join(err, errors.New("not resolved through the gateway"))
		}
		for _, opt := range []sourceresolver.Opt{
			frontendResolve(amd64, ""), // "" is the default mode: shared
			frontendResolve(arm64, "default"),
			frontendResolve(amd64, "pull"),
			{LogName: "x", ImageOpt: &sourceresolver.ResolveImageOpt{Platform: amd64}, SourcePolicies: []*spb.Policy{{}}},
		} {
			if _, _, _, err := c.ResolveImageConfig(ctx, "busybox", opt); err != nil {
				return nil, err
			}
		}
		return nil, nil
	})(context.Background(), g)
	if err != nil {
		t.Fatal(err)
	}
	if g.count() != 4 {
		t.Errorf("the builder resolved %q, want busybox for amd64, arm64, amd64 with pull and with source policies", g.resolves)
	}
}

// With no frontend to ask, or once it has ended, the choice resolves base
// images itself; a choice that gives up stops waiting.
func TestResolvesWithoutAGateway(t *testing.T) {
	t.Run("none will start", func(t *testing.T) {
		r := NewResolves()
		r.NoGateway()
		if _, _, ok, err := r.Resolve(context.Background(), "busybox", amd64, "default", false); ok || err != nil {
			t.Errorf("Resolve = %v, %v; want not resolved, no error", ok, err)
		}
	})
	t.Run("ended", func(t *testing.T) {
		r := NewResolves()
		g := &gateway{}
		if _, err := r.Share(func(context.Context, client.Client) (*client.Result, error) { return nil, nil })(context.Background(), g); err != nil {
			t.Fatal(err)
		}
		if _, _, ok, err := r.Resolve(context.Background(), "busybox", amd64, "default", false); ok || err != nil || g.count() > 0 {
			t.Errorf("Resolve = %v, %v after the frontend ended, builder asked %d times", ok, err, g.count())
		}
	})
	t.Run("given up", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, _, _, err := NewResolves().Resolve(ctx, "busybox", amd64, "default", false); !errors.Is(err, context.Canceled) {
			t.Errorf("Resolve = %v, want the context's error", err)
		}
	})
	t.Run("nil", func(t *testing.T) {
		var r *Resolves
		r.NoGateway()
		if _, _, ok, _ := r.Resolve(context.Background(), "busybox", amd64, "default", false); ok {
			t.Error("a nil Resolves resolved")
		}
	})
}
