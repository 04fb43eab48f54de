package builder

import (
	"context"
	"fmt"
	"os"

	"github.com/moby/buildkit/client"

	"github.com/strata-build/strata/errs"
)

// Resolve picks the daemon to build on: addr when given, else BUILDKIT_HOST,
// else strata's own local daemon, started when it does not answer.
// It returns the address and whether it is the local daemon.
func Resolve(ctx context.Context, addr string) (string, bool, error) {
	source := "--builder"
	if addr == "" {
		addr, source = os.Getenv("BUILDKIT_HOST"), "BUILDKIT_HOST"
	}
	if addr != "" {
		if _, err := Probe(ctx, addr, 0); err != nil {
			return "", false, errs.WithHint(fmt.Errorf("%w: %s=%s does not answer: %v", errs.ErrBuilder, source, addr, err),
				"start buildkitd there, or unset it to let strata start a local one")
		}
		return addr, false, nil
	}
	dir, err := DefaultDir()
	if err != nil {
		return "", false, err
	}
	l := &Local{Dir: dir}
	a, err := l.Ensure(ctx)
	return a, true, err
}

// Connect resolves the daemon as Resolve does and returns a client for it.
func Connect(ctx context.Context, addr string) (*client.Client, string, error) {
	a, _, err := Resolve(ctx, addr)
	if err != nil {
		return nil, "", err
	}
	c, err := client.New(ctx, a)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %s: %v", errs.ErrBuilder, a, err)
	}
	return c, a, nil
}
