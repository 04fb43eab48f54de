package builder_test

import (
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-build/strata/builder"
	"github.com/strata-build/strata/errs"
)

// closedPort is a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// Probing an address nothing answers on fails at once, not after
// ProbeTimeout, and the error says which address it was.
func TestProbeOfAnAddressNothingListensOn(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "buildkitd.sock")
	tcp := closedPort(t)
	for _, tc := range []struct{ addr, named string }{
		{"unix://" + sock, sock},
		{"tcp://" + tcp, tcp},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			start := time.Now()
			_, err := builder.Probe(t.Context(), tc.addr, 0)
			took := time.Since(start)
			if err == nil {
				t.Fatal("Probe succeeded")
			}
			if took >= builder.ProbeTimeout/2 {
				t.Errorf("Probe took %s to fail, as long as a busy daemon is given", took)
			}
			if !strings.Contains(err.Error(), tc.named) {
				t.Errorf("the error does not name %s: %v", tc.named, err)
			}
		})
	}
}

// A BUILDKIT_HOST (or --builder) that does not answer is a builder error
// that names it and says what to do.
func TestResolveWithABuilderThatDoesNotAnswer(t *testing.T) {
	addr := "tcp://" + closedPort(t)
	for _, tc := range []struct{ flag, env, source string }{
		{"", addr, "BUILDKIT_HOST=" + addr},
		{addr, "unix:///nonexistent.sock", "--builder=" + addr},
		{"", "nosuchscheme://builder", "BUILDKIT_HOST=nosuchscheme://builder"},
	} {
		t.Run(tc.source, func(t *testing.T) {
			t.Setenv("BUILDKIT_HOST", tc.env)
			_, err := builder.Resolve(t.Context(), tc.flag, builder.TLS{})
			if !errors.Is(err, errs.ErrBuilder) {
				t.Fatalf("Resolve: %v, want a builder error", err)
			}
			// A build connects as Resolve checks, on the one connection.
			c, _, cerr := builder.Connect(t.Context(), tc.flag, builder.TLS{})
			if c != nil {
				c.Close()
			}
			if cerr == nil || cerr.Error() != err.Error() {
				t.Errorf("Connect: %v, want what Resolve says: %v", cerr, err)
			}
			var h *errs.Hint
			if !errors.As(err, &h) || !strings.Contains(h.Hint, "start buildkitd there, or unset it") {
				t.Errorf("no hint to start buildkitd or unset the address: %v", err)
			}
			if !strings.Contains(err.Error(), tc.source) {
				t.Errorf("the error does not name %s: %v", tc.source, err)
			}
			if errs.Code(err) != errs.ExitBuilder {
				t.Errorf("exit code %d, want %d", errs.Code(err), errs.ExitBuilder)
			}
		})
	}
}
