// Package builder finds, starts and stops the BuildKit daemon strata builds on.
//
// A Local is a buildkitd that strata runs itself: its state lives in one
// directory (root, socket, pid file, log), it outlives the strata process that
// started it, and later runs reuse it. The test bed starts its daemons the same
// way, in temporary directories.
package builder

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gofrs/flock"
	"github.com/moby/buildkit/client"

	"github.com/strata-build/strata/errs"
)

// Local is a buildkitd whose state lives under Dir.
type Local struct {
	// Dir holds root/, buildkitd.sock, buildkitd.pid and buildkitd.log.
	Dir string
	// Binary is the buildkitd executable; found with FindBinary when empty.
	Binary string
	// Args are extra buildkitd flags; a snapshotter they name wins.
	Args []string
	// Snapshotter is the OCI worker's snapshotter (overlayfs, native,
	// stargz, auto...). Empty: BuildKit's auto (see NotStargzByDefault).
	// Stargz: stargz where FUSE and overlayfs work, else auto, and auto
	// too when buildkitd does not start with stargz.
	Snapshotter string
	// StartTimeout bounds how long Start waits for the daemon to answer.
	StartTimeout time.Duration
	// PlainHTTP are registries (HOST or HOST:PORT) BuildKit's own pulls
	// and pushes reach over plain HTTP, or HTTPS without verifying the
	// certificate ([registry."HOST"] http = true, insecure = true in
	// buildkitd.toml); loopback registries need no entry. Ensure restarts
	// a daemon, when it is idle, that was started without one of them.
	PlainHTTP []string

	// running is what the daemon answered when Ensure found it running
	// as it should be; nil when Ensure started it.
	running *Status
}

// DefaultDir is where strata keeps its own buildkitd: the user cache dir.
func DefaultDir() (string, error) {
	if d := os.Getenv("STRATA_BUILDER_DIR"); d != "" {
		return d, nil
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("%w: no cache directory for the local buildkitd: %v", errs.ErrBuilder, err)
	}
	return filepath.Join(cache, "strata", "buildkitd"), nil
}

// SnapshotterEnv names the snapshotter of strata's own buildkitd (e.g.
// overlayfs) in place of strata's choice; it takes effect when the daemon
// next starts.
const SnapshotterEnv = "STRATA_BUILDER_SNAPSHOTTER"

// DefaultLocal is strata's own buildkitd: its state in DefaultDir, its
// snapshotter SnapshotterEnv when set.
func DefaultLocal() (*Local, error) {
	dir, err := DefaultDir()
	if err != nil {
		return nil, err
	}
	return &Local{Dir: dir, Snapshotter: os.Getenv(SnapshotterEnv)}, nil
}

// Socket is the unix socket the daemon listens on.
func (l *Local) Socket() string { return filepath.Join(l.Dir, "buildkitd.sock") }

// Addr is the address BuildKit clients dial.
func (l *Local) Addr() string { return "unix://" + l.Socket() }

// LogFile is where the daemon's output goes.
func (l *Local) LogFile() string { return filepath.Join(l.Dir, "buildkitd.log") }

func (l *Local) pidFile() string { return filepath.Join(l.Dir, "buildkitd.pid") }

// PID returns the daemon's process id from its pid file, or 0 when it is not running.
func (l *Local) PID() int {
	b, err := os.ReadFile(l.pidFile())
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	if syscall.Kill(pid, 0) != nil {
		return 0
	}
	return pid
}

// Status describes a running daemon.
type Status struct {
	Addr    string
	PID     int
	Version string
	// Workers are "ID (snapshotter)", the default worker first.
	Workers []string
	// Snapshotter is the default worker's snapshotter, as its
	// org.mobyproject.buildkit.worker.snapshotter label says.
	Snapshotter string
	// NotStargz says why strata's own daemon does not use the stargz
	// snapshotter; empty for other builders and when it does.
	NotStargz string
	// Emptied says why strata emptied its own daemon's stargz cache at
	// its last start, when it did.
	Emptied string
	// PlainHTTP are the registries strata's own daemon was started to
	// reach over plain HTTP (see Local.PlainHTTP).
	PlainHTTP []string
}

// Status reports whether the daemon answers, and with what.
func (l *Local) Status(ctx context.Context) (*Status, error) {
	st, err := Probe(ctx, l.Addr(), l.PID())
	if err != nil {
		return nil, err
	}
	saved := l.savedSnapshotter()
	st.Emptied, st.PlainHTTP = saved.Emptied, l.startedPlainHTTP()
	if st.Snapshotter != SnapshotterStargz {
		st.NotStargz = saved.NotStargz
		if st.NotStargz == "" {
			st.NotStargz = "it was started before strata chose the snapshotter; 'strata builder stop' and the next build start it again"
		}
	}
	return st, nil
}

// PullsLazily reports whether the builder c pulls lazily: whether its
// default worker uses the stargz snapshotter. snapshotter is that worker's
// snapshotter when the caller knows it (Status.Snapshotter); empty, the
// builder is asked.
func PullsLazily(ctx context.Context, c *client.Client, snapshotter string) bool {
	if snapshotter == "" {
		ws, err := c.ListWorkers(ctx)
		if err != nil || len(ws) == 0 {
			return false
		}
		snapshotter = ws[0].Labels[snapshotterLabel]
	}
	return snapshotter == SnapshotterStargz
}

// snapshotterLabel is the worker label that names its snapshotter.
const snapshotterLabel = "org.mobyproject.buildkit.worker.snapshotter"

// ProbeTimeout is how long a builder may take to answer before it counts
// as not answering: a daemon that is not there fails at once, but one busy
// with other builds on a loaded machine can take seconds, and strata's own
// would be replaced, its builds lost, if it were given up on too soon.
const ProbeTimeout = 30 * time.Second

// Probe connects to addr with opts and asks for its version and workers,
// within ProbeTimeout (or ctx's deadline when sooner).
func Probe(ctx context.Context, addr string, pid int, opts ...client.ClientOpt) (*Status, error) {
	c, err := client.New(ctx, addr, opts...)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return probe(ctx, c, addr, pid)
}

// probe asks c, the client of the daemon at addr, for its version and its
// workers, both at once, within ProbeTimeout (or ctx's deadline when
// sooner).
func probe(ctx context.Context, c *client.Client, addr string, pid int) (*Status, error) {
	ctx, cancel := context.WithTimeout(ctx, ProbeTimeout)
	defer cancel()
	var (
		ws    []*client.WorkerInfo
		wsErr error
		done  = make(chan struct{})
	)
	go func() {
		defer close(done)
		ws, wsErr = c.ListWorkers(ctx)
	}()
	info, err := c.Info(ctx)
	<-done
	// When both fail, the version's error is the one reported, whichever
	// came first, so a builder that does not answer always reads the same.
	if err == nil {
		err = wsErr
	}
	if err != nil {
		return nil, err
	}
	st := &Status{Addr: addr, PID: pid}
	if info.BuildkitVersion.Version != "" {
		st.Version = info.BuildkitVersion.Version
	}
	for i, w := range ws {
		sn := w.Labels[snapshotterLabel]
		if i == 0 {
			st.Snapshotter = sn
		}
		st.Workers = append(st.Workers, fmt.Sprintf("%s (%s)", w.ID, sn))
	}
	return st, nil
}

// Ensure returns the address of the daemon, starting it when it does not
// answer, and restarting it when it must reach a registry of PlainHTTP it
// was started without.
//
// Builds that run at once (make -j, a CI job's parallel steps) each call
// Ensure: one starts the daemon while the others wait for it, rather than
// each replacing the daemon the one before started.
func (l *Local) Ensure(ctx context.Context) (string, error) {
	l.running = nil
	if st, err := l.Status(ctx); err == nil && len(l.missingPlainHTTP()) == 0 && !l.stargzNotAsked(st) {
		l.running = st
		return l.Addr(), nil
	}
	unlock, err := l.lockStart(ctx)
	if err != nil {
		return "", err
	}
	defer unlock()
	// Another strata may have started it while this one waited.
	if st, err := l.Status(ctx); err == nil {
		missing := l.missingPlainHTTP()
		if len(missing) == 0 && !l.stargzNotAsked(st) {
			return l.Addr(), nil
		}
		if len(missing) > 0 {
			if err := l.restartForPlainHTTP(ctx, missing); err != nil {
				return "", err
			}
		} else if n, err := l.activeBuilds(ctx); err != nil || n > 0 {
			return l.Addr(), nil // in use: it stays as it is until it is idle
		} else if err := l.Stop(10 * time.Second); err != nil {
			return "", err
		}
	}
	return l.Addr(), l.Start(ctx)
}

// stargzNotAsked reports whether the running daemon, whose status is st,
// uses the stargz snapshotter that nothing asks for now: one a strata that
// chose it by default started. Ensure replaces it, when no build runs on
// it, with one that keeps the cache records of the steps it runs (see
// NotStargzByDefault).
func (l *Local) stargzNotAsked(st *Status) bool {
	if _, inArgs := flagValue(l.Args, snapshotterFlag); inArgs || l.Snapshotter != "" {
		return false
	}
	return st.Snapshotter == SnapshotterStargz
}

// lockStart takes the lock that one strata process at a time holds while
// it starts (or restarts) the daemon, waiting for another's start to end.
func (l *Local) lockStart(ctx context.Context) (func(), error) {
	if err := os.MkdirAll(l.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("%w: %v", errs.ErrBuilder, err)
	}
	fl := flock.New(filepath.Join(l.Dir, "start.lock"))
	if _, err := fl.TryLockContext(ctx, 20*time.Millisecond); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w: waiting for another strata to start buildkitd: %v", errs.ErrInterrupted, ctx.Err())
		}
		return nil, fmt.Errorf("%w: locking %s: %v", errs.ErrBuilder, fl.Path(), err)
	}
	return func() { _ = fl.Unlock() }, nil
}

// Start launches buildkitd in its own session so that it outlives this
// process, and waits until it answers, with the snapshotter
// chooseSnapshotter picks. Asked for stargz, it starts with it where FUSE
// and overlayfs work, and when buildkitd does not start that way, once more
// with BuildKit's auto choice; Status says which and why.
func (l *Local) Start(ctx context.Context) error {
	if os.Geteuid() != 0 {
		return errs.WithHint(fmt.Errorf("%w: strata starts buildkitd with the runc worker, which needs root", errs.ErrBuilder),
			"run as root, or point --builder/BUILDKIT_HOST at a running buildkitd")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		return errs.WithHint(fmt.Errorf("%w: runc not found in PATH", errs.ErrBuilder), "install it with 'apt-get install -y runc'")
	}
	bin := l.Binary
	if bin == "" {
		var err error
		if bin, err = FindBinary("buildkitd"); err != nil {
			return err
		}
	}
	if pid := l.PID(); pid != 0 {
		// A daemon that does not answer is stuck or still starting: replace it.
		_ = stopPID(pid, 10*time.Second)
	}
	if err := os.MkdirAll(l.Dir, 0o700); err != nil {
		return fmt.Errorf("%w: %v", errs.ErrBuilder, err)
	}
	// A daemon that was killed leaves its FUSE mounts.
	if err := unmountUnder(l.Dir); err != nil {
		return errs.WithHint(fmt.Errorf("%w: mounts left by an earlier buildkitd under %s: %v", errs.ErrBuilder, l.Dir, err),
			"unmount them with 'umount -l', deepest first")
	}
	choice := l.chooseSnapshotter()
	if choice.Name == SnapshotterStargz {
		var err error
		if choice.Emptied, err = l.emptyLazyState(); err != nil {
			return errs.WithHint(fmt.Errorf("%w: the stargz cache in %s: %v", errs.ErrBuilder, l.stargzWorkerDir(), err),
				"remove that directory; the next start begins with an empty cache")
		}
	}
	err := l.launch(ctx, bin, choice.Name)
	if _, inArgs := flagValue(l.Args, snapshotterFlag); err != nil && choice.Name == SnapshotterStargz && !inArgs && !errors.Is(err, errs.ErrInterrupted) {
		failed := filepath.Join(l.Dir, "buildkitd-stargz.log")
		_ = os.Rename(l.LogFile(), failed)
		choice = snapshotterChoice{Name: SnapshotterAuto, Emptied: choice.Emptied,
			NotStargz: fmt.Sprintf("buildkitd did not start with the stargz snapshotter (%s; its log: %s)", startFailure(err), failed)}
		err = l.launch(ctx, bin, choice.Name)
	}
	if err != nil {
		return err
	}
	var plain []string
	if _, ok := flagValue(l.Args, "--config"); !ok {
		plain = l.plainHTTPNeeded()
	}
	if err := l.savePlainHTTP(plain); err != nil {
		return fmt.Errorf("%w: %v", errs.ErrBuilder, err)
	}
	return l.saveSnapshotter(choice)
}

// stargzConfig is the buildkitd.toml of strata's own builder with the
// stargz snapshotter: no background fetch. By default the snapshotter
// fetches the rest of every lazily mounted layer once nothing has been read
// for a few seconds, during a long step or after the build, which costs the
// bandwidth and bytes lazy pulls save.
const stargzConfig = `[worker.oci.stargzSnapshotter]
  no_background_fetch = true
`

// launch starts buildkitd with the snapshotter and waits until it answers.
func (l *Local) launch(ctx context.Context, bin, snapshotter string) error {
	_ = os.Remove(l.Socket())
	logf, err := os.OpenFile(l.LogFile(), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("%w: %v", errs.ErrBuilder, err)
	}
	defer logf.Close()
	args := []string{
		"--root", l.root(),
		"--addr", l.Addr(),
		"--oci-worker=true", "--containerd-worker=false",
		// With no CNI set up, the runc worker runs steps in the host's
		// network anyway; this lets a build ask for it by name
		// (--network host), as buildx's container builders allow.
		"--allow-insecure-entitlement=network.host",
	}
	if _, ok := flagValue(l.Args, snapshotterFlag); !ok {
		args = append(args, snapshotterFlag+"="+snapshotter)
	}
	if _, ok := flagValue(l.Args, "--config"); !ok {
		if cfg := l.config(snapshotter); cfg != "" {
			path := filepath.Join(l.Dir, "buildkitd.toml")
			if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
				return fmt.Errorf("%w: %v", errs.ErrBuilder, err)
			}
			args = append(args, "--config", path)
		}
	}
	cmd := exec.Command(bin, append(args, l.Args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return errs.WithHint(fmt.Errorf("%w: starting %s: %v", errs.ErrBuilder, bin, err), "check that buildkitd is executable")
	}
	pid := cmd.Process.Pid
	if err := os.WriteFile(l.pidFile(), []byte(strconv.Itoa(pid)+"\n"), 0o600); err != nil {
		_ = cmd.Process.Kill()
		return fmt.Errorf("%w: %v", errs.ErrBuilder, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	return l.waitAnswer(ctx, pid, exited)
}

// waitAnswer waits until the daemon pid answers, exits, or runs out of
// StartTimeout; one that does not answer is stopped.
func (l *Local) waitAnswer(ctx context.Context, pid int, exited <-chan error) error {
	timeout := l.StartTimeout
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	// buildkitd answers some tens of milliseconds after it starts; a
	// coarser poll would add its own period to every build that starts it.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			_ = os.Remove(l.pidFile())
			return errs.WithHint(fmt.Errorf("%w: buildkitd exited at start (%v): %s", errs.ErrBuilder, err, lastLine(l.LogFile())),
				"see "+l.LogFile())
		case <-ctx.Done():
			_ = l.end(pid, 10*time.Second)
			return fmt.Errorf("%w: starting buildkitd: %v", errs.ErrInterrupted, ctx.Err())
		case <-deadline.C:
			_ = l.end(pid, 10*time.Second)
			return errs.WithHint(fmt.Errorf("%w: buildkitd did not answer within %s", errs.ErrBuilder, timeout), "see "+l.LogFile())
		case <-tick.C:
			if _, err := os.Stat(l.Socket()); err != nil {
				continue
			}
			pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			_, err := Probe(pctx, l.Addr(), pid)
			cancel()
			if err == nil {
				return nil
			}
		}
	}
}

// startFailure is the cause of a failed start, without the hint that
// points at the log.
func startFailure(err error) string {
	var h *errs.Hint
	if errors.As(err, &h) {
		err = h.Err
	}
	return strings.TrimPrefix(err.Error(), errs.ErrBuilder.Error()+": ")
}

// Stop ends the daemon: SIGTERM, then SIGKILL after the grace period.
// Stopping a daemon that is not running is not an error; the mounts one
// that died left under Dir are detached.
func (l *Local) Stop(grace time.Duration) error {
	pid := l.PID()
	if pid == 0 {
		if l.listening() {
			return nil // a daemon without a pid file: its mounts are its own
		}
		return unmountUnder(l.Dir)
	}
	err := l.end(pid, grace)
	_ = os.Remove(l.pidFile())
	return err
}

// listening reports whether something accepts connections on the socket.
func (l *Local) listening() bool {
	c, err := net.DialTimeout("unix", l.Socket(), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// end stops the daemon pid and detaches the mounts it left under Dir.
func (l *Local) end(pid int, grace time.Duration) error {
	err := stopPID(pid, grace)
	if uerr := unmountUnder(l.Dir); err == nil {
		err = uerr
	}
	return err
}

func stopPID(pid int, grace time.Duration) error {
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return nil
		}
		return err
	}
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if syscall.Kill(pid, 0) != nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

// FindBinary looks for name in PATH, then beside the running executable.
func FindBinary(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", errs.WithHint(fmt.Errorf("%w: %s not found in PATH or beside strata", errs.ErrBuilder, name),
		"run 'make build' (it puts buildkitd beside strata in .bin/) or 'go install github.com/moby/buildkit/cmd/buildkitd@v0.33.1'")
}

func lastLine(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}
