package builder

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/moby/buildkit/client"

	"github.com/strata-build/strata/errs"
)

// Endpoint is the builder strata builds on, as Resolve chose it.
type Endpoint struct {
	// Addr is the address BuildKit's client dials.
	Addr string
	// Source says where Addr came from: --builder, BUILDKIT_HOST, a
	// buildx builder, or strata's local daemon.
	Source string
	// Local is set for strata's own daemon.
	Local bool
	// Probed is what the builder answered when Resolve or Connect checked
	// it; for strata's own daemon, when it was running already (nil when
	// it was started).
	Probed *Status
	// driver is the buildx driver of a builder named by its buildx name.
	driver string
	opts   []client.ClientOpt
}

// Resolve picks the daemon to build on: addr when given, else BUILDKIT_HOST,
// else BUILDX_BUILDER, else strata's own local daemon, started when it does
// not answer. An address without a scheme names a docker buildx builder. t
// authenticates to a daemon reached over TLS; when it is empty, a buildx
// builder's own settings are used, else the BUILDKIT_TLS_* variables.
// opts apply to strata's own daemon. It asks the builder what it is as
// Connect does, on a connection it closes.
func Resolve(ctx context.Context, addr string, t TLS, opts ...Option) (*Endpoint, error) {
	c, e, err := Connect(ctx, addr, t, opts...)
	if err != nil {
		return nil, err
	}
	c.Close()
	return e, nil
}

// endpoint is the builder Resolve picks, not yet asked anything unless it is
// strata's own daemon, and the TLS settings that reach it.
func endpoint(ctx context.Context, addr string, t TLS, opts []Option) (*Endpoint, TLS, error) {
	source := "--builder"
	if addr == "" {
		addr, source = os.Getenv("BUILDKIT_HOST"), "BUILDKIT_HOST"
	}
	if addr == "" {
		addr, source = os.Getenv("BUILDX_BUILDER"), "BUILDX_BUILDER"
	}
	if addr == "" {
		if !t.IsZero() {
			return nil, t, errs.WithHint(errs.Usagef("TLS flags are given but no builder"), "name the builder with --builder tcp://HOST:PORT")
		}
		e, err := resolveLocal(ctx, opts)
		return e, t, err
	}
	var driver string
	if !strings.Contains(addr, "://") {
		bx, err := LookupBuildx(addr)
		if err != nil {
			return nil, t, err
		}
		source = fmt.Sprintf("%s=%s (buildx builder, %s driver)", source, addr, bx.Driver)
		addr, driver = bx.Addr, bx.Driver
		if t.IsZero() {
			t = bx.TLS
		}
	} else {
		source += "=" + addr
	}
	t = t.OrEnv()
	copts, err := t.ClientOpts(addr, time.Now())
	if err != nil {
		return nil, t, err
	}
	return &Endpoint{Addr: addr, Source: source, driver: driver, opts: copts}, t, nil
}

func resolveLocal(ctx context.Context, opts []Option) (*Endpoint, error) {
	l, err := DefaultLocal()
	if err != nil {
		return nil, err
	}
	for _, o := range opts {
		o(l)
	}
	a, err := l.Ensure(ctx)
	if err != nil {
		return nil, err
	}
	return &Endpoint{Addr: a, Source: "strata's local buildkitd", Local: true, Probed: l.running}, nil
}

// Client returns a BuildKit client for the builder.
func (e *Endpoint) Client(ctx context.Context) (*client.Client, error) {
	c, err := client.New(ctx, e.Addr, e.opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", errs.ErrBuilder, e.Addr, err)
	}
	return c, nil
}

// Connect picks the daemon as Resolve documents and returns a client for
// it; a builder strata did not start is asked what it is (Endpoint.Probed)
// on that client's connection, and one that does not answer is an error
// that says why.
func Connect(ctx context.Context, addr string, t TLS, opts ...Option) (*client.Client, *Endpoint, error) {
	e, t, err := endpoint(ctx, addr, t, opts)
	if err != nil {
		return nil, nil, err
	}
	if e.Local {
		c, err := e.Client(ctx)
		return c, e, err
	}
	// The builder is asked what it is on the connection the build uses.
	c, err := client.New(ctx, e.Addr, e.opts...)
	if err == nil {
		if e.Probed, err = probe(ctx, c, e.Addr, 0); err != nil {
			c.Close()
		}
	}
	if err != nil {
		return nil, nil, explain(ctx, e, t, err)
	}
	return c, e, nil
}
