package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/strata-build/strata/builder"
)

// Env is one running test bed.
type Env struct {
	Dir      string // temporary directory holding every piece's state
	BinDir   string // strata, buildkitd, buildctl, registry, buildx
	Registry *Registry
	Builder  *builder.Local
	// Busybox is the seeded base image, REGISTRY/busybox:latest.
	Busybox string
	daemons []*builder.Local
}

// Start builds the tools if needed, starts a registry and a buildkitd, and
// seeds the busybox base image.
func Start(ctx context.Context) (_ *Env, err error) {
	bin, err := EnsureTools(ctx)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "strata-testbed-")
	if err != nil {
		return nil, err
	}
	e := &Env{Dir: dir, BinDir: bin}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	if e.Registry, err = StartRegistry(ctx, bin, filepath.Join(dir, "registry")); err != nil {
		return nil, err
	}
	if e.Builder, err = e.StartBuildkitd(ctx, "bk"); err != nil {
		return nil, err
	}
	e.Busybox = e.Registry.Host + "/busybox:latest"
	if _, err = PushBusybox(ctx, e.Busybox); err != nil {
		return nil, err
	}
	return e, nil
}

// BuildkitdOption configures a buildkitd before StartBuildkitd starts it.
type BuildkitdOption func(l *builder.Local) error

// SnapshotterEnv names the snapshotter of the test bed's daemons (e.g.
// stargz). Unset, they use BuildKit's auto choice: overlayfs where the
// kernel allows it.
const SnapshotterEnv = "STRATA_TEST_SNAPSHOTTER"

// WithSnapshotter starts buildkitd with the named snapshotter; "" is the
// choice strata makes for its own builder (BuildKit's auto), stargz is
// stargz where FUSE works (else auto).
func WithSnapshotter(name string) BuildkitdOption {
	return func(l *builder.Local) error {
		l.Snapshotter = name
		return nil
	}
}

// StartBuildkitd starts another buildkitd with fresh state in Dir/name; Close stops it.
func (e *Env) StartBuildkitd(ctx context.Context, name string, opts ...BuildkitdOption) (*builder.Local, error) {
	sn := os.Getenv(SnapshotterEnv)
	if sn == "" {
		sn = builder.SnapshotterAuto
	}
	l := &builder.Local{
		Dir:          filepath.Join(e.Dir, name),
		Binary:       filepath.Join(e.BinDir, "buildkitd"),
		StartTimeout: 60 * time.Second,
		Snapshotter:  sn,
	}
	for _, o := range opts {
		if err := o(l); err != nil {
			return nil, err
		}
	}
	if err := l.Start(ctx); err != nil {
		return nil, err
	}
	e.daemons = append(e.daemons, l)
	return l, nil
}

// Logs returns the tail of every component's log, for a failed test.
func (e *Env) Logs() string {
	var b strings.Builder
	logs := []string{}
	if e.Registry != nil {
		logs = append(logs, e.Registry.LogFile)
	}
	for _, d := range e.daemons {
		logs = append(logs, d.LogFile())
	}
	for _, f := range logs {
		dt, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(dt)), "\n")
		if len(lines) > 40 {
			lines = lines[len(lines)-40:]
		}
		fmt.Fprintf(&b, "==> %s <==\n%s\n", f, strings.Join(lines, "\n"))
	}
	return b.String()
}

// Close stops every daemon by PID and removes the state unless keep is set
// in STRATA_KEEP_TESTBED.
func (e *Env) Close() {
	for _, d := range e.daemons {
		_ = d.Stop(20 * time.Second)
	}
	if e.Registry != nil {
		e.Registry.Stop()
	}
	if os.Getenv("STRATA_KEEP_TESTBED") == "" {
		_ = os.RemoveAll(e.Dir)
	}
}
