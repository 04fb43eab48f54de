package builder_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/strata-build/strata/builder"
	"github.com/strata-build/strata/errs"
	"github.com/strata-build/strata/integration/testenv"
)

func TestDefaultDir(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("STRATA_BUILDER_DIR", dir)
	if got, err := builder.DefaultDir(); err != nil || got != dir {
		t.Errorf("DefaultDir with STRATA_BUILDER_DIR=%s: %s, %v", dir, got, err)
	}

	t.Setenv("STRATA_BUILDER_DIR", "")
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	if got, err := builder.DefaultDir(); err != nil || got != filepath.Join(cache, "strata", "buildkitd") {
		t.Errorf("DefaultDir: %s, %v, want it in the user cache directory %s", got, err, cache)
	}

	t.Setenv("XDG_CACHE_HOME", "")
	t.Setenv("HOME", "")
	if _, err := builder.DefaultDir(); !errors.Is(err, errs.ErrBuilder) {
		t.Errorf("DefaultDir with no cache directory: %v, want a builder error", err)
	}
}

// strata's own builder lives in DefaultDir, with the snapshotter
// STRATA_BUILDER_SNAPSHOTTER names, or strata's choice.
func TestDefaultLocal(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("STRATA_BUILDER_DIR", dir)
	for _, sn := range []string{"", "overlayfs"} {
		t.Setenv(builder.SnapshotterEnv, sn)
		l, err := builder.DefaultLocal()
		if err != nil || l.Dir != dir || l.Snapshotter != sn {
			t.Errorf("%s=%q: %+v, %v", builder.SnapshotterEnv, sn, l, err)
		}
	}
}

// A pid file that names no running process, or holds no number, means no
// daemon, and stopping it is not an error.
func TestLocalWithoutADaemon(t *testing.T) {
	for _, content := range []string{"", "not a pid\n", "-1\n", strconv.Itoa(exitedPID(t)) + "\n"} {
		l := &builder.Local{Dir: t.TempDir()}
		if err := os.WriteFile(filepath.Join(l.Dir, "buildkitd.pid"), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if pid := l.PID(); pid != 0 {
			t.Errorf("pid file %q: PID %d, want 0", content, pid)
		}
		if err := l.Stop(time.Second); err != nil {
			t.Errorf("pid file %q: Stop: %v", content, err)
		}
		if _, err := l.Status(t.Context()); err == nil {
			t.Errorf("pid file %q: Status of a daemon that is not there succeeded", content)
		}
	}
}

// exitedPID is the id of a process that has exited.
func exitedPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skipf("no 'true' to run: %v", err)
	}
	return cmd.Process.Pid
}

// Start says what is missing before it tries to run anything: root, then
// runc.
func TestStartWithoutWhatItNeeds(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // no runc, no buildkitd
	l := &builder.Local{Dir: t.TempDir(), Binary: "/nonexistent/buildkitd"}
	err := l.Start(t.Context())
	want := "apt-get install -y runc"
	if os.Geteuid() != 0 {
		want = "run as root"
	}
	var h *errs.Hint
	if !errors.Is(err, errs.ErrBuilder) || !errors.As(err, &h) || !strings.Contains(h.Hint, want) {
		t.Fatalf("Start: %v, want a builder error with the hint %q", err, want)
	}
	if _, err := os.Stat(l.LogFile()); err == nil {
		t.Error("Start made a log: it went further than it should")
	}
}

// buildkitd is the daemon binary of the test bed, or the test is skipped:
// starting one needs root, runc and the binary, and takes seconds.
func buildkitd(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("starts buildkitd; skipped with -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("starting buildkitd with the runc worker needs root")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("runc is not in PATH")
	}
	dir, err := testenv.BinDir()
	if err != nil {
		t.Skipf("no binary directory: %v", err)
	}
	bin := filepath.Join(dir, "buildkitd")
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("no buildkitd in %s (set STRATA_BIN_DIR, or run 'make build'): %v", dir, err)
	}
	return bin
}

// newLocal is a Local in a temporary directory, stopped at the end.
func newLocal(t *testing.T, bin string) *builder.Local {
	t.Helper()
	// A short directory: a unix socket's path is limited to 108 bytes.
	dir, err := os.MkdirTemp("", "strata-builder-")
	if err != nil {
		t.Fatal(err)
	}
	l := &builder.Local{Dir: dir, Binary: bin, StartTimeout: 2 * time.Minute}
	t.Cleanup(func() {
		if err := l.Stop(10 * time.Second); err != nil {
			t.Errorf("Stop: %v", err)
		}
		os.RemoveAll(dir)
	})
	return l
}

// A Local starts, answers with its version and workers, is reused while
// it answers, is started again once it is gone, and stops.
func TestLocalStartProbeRestart(t *testing.T) {
	bin := buildkitd(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	l := newLocal(t, bin)
	if err := l.Start(ctx); err != nil {
		t.Fatal(err)
	}
	first := l.PID()
	if first == 0 {
		t.Fatal("no PID once started")
	}
	st, err := l.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Addr != l.Addr() || st.PID != first || st.Version == "" || len(st.Workers) == 0 {
		t.Errorf("status %+v: want %s, PID %d, a version and a worker", st, l.Addr(), first)
	}

	addr, err := l.Ensure(ctx)
	if err != nil || addr != l.Addr() {
		t.Fatalf("Ensure of a daemon that answers: %s, %v", addr, err)
	}
	if pid := l.PID(); pid != first {
		t.Errorf("Ensure replaced a daemon that answers: PID %d, was %d", pid, first)
	}

	// The daemon dies: the next Ensure starts another.
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitGone(t, first)
	if _, err := l.Status(ctx); err == nil {
		t.Fatal("Status of a killed daemon succeeded")
	}
	if _, err := l.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	second := l.PID()
	if second == 0 || second == first {
		t.Fatalf("after the daemon died Ensure left PID %d (was %d)", second, first)
	}
	if _, err := l.Status(ctx); err != nil {
		t.Fatalf("the restarted daemon does not answer: %v", err)
	}

	if err := l.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if pid := l.PID(); pid != 0 {
		t.Errorf("PID %d after Stop", pid)
	}
	if syscall.Kill(second, 0) == nil {
		t.Errorf("process %d still runs after Stop", second)
	}
}

// Builds started at once on a machine with no daemon yet share the one
// daemon the first starts: none replaces another's, and all get it.
func TestConcurrentEnsure(t *testing.T) {
	bin := buildkitd(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	l := newLocal(t, bin)
	const builds = 3
	errc := make(chan error, builds)
	for range builds {
		go func() {
			// Each build has its own Local, as each strata process does.
			other := *l
			_, err := other.Ensure(ctx)
			errc <- err
		}()
	}
	for range builds {
		if err := <-errc; err != nil {
			t.Errorf("Ensure: %v", err)
		}
	}
	pid := l.PID()
	if pid == 0 {
		t.Fatal("no daemon after the concurrent starts")
	}
	if _, err := l.Status(ctx); err != nil {
		t.Fatalf("the daemon does not answer: %v", err)
	}
	if _, err := l.Ensure(ctx); err != nil || l.PID() != pid {
		t.Errorf("Ensure after them: %v, PID %d (was %d)", err, l.PID(), pid)
	}
}

// A daemon that cannot start (here a flag it does not know) is a builder
// error that points at its log, and leaves no pid file behind.
func TestLocalThatExitsAtStart(t *testing.T) {
	bin := buildkitd(t)
	l := newLocal(t, bin)
	l.Args = []string{"--no-such-flag"}
	err := l.Start(t.Context())
	var h *errs.Hint
	if !errors.Is(err, errs.ErrBuilder) || !errors.As(err, &h) || !strings.Contains(h.Hint, l.LogFile()) {
		t.Fatalf("Start: %v, want a builder error pointing at %s", err, l.LogFile())
	}
	if !strings.Contains(err.Error(), "no-such-flag") {
		t.Errorf("the error does not quote the daemon's last words: %v", err)
	}
	if _, err := os.Stat(filepath.Join(l.Dir, "buildkitd.pid")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the pid file of the daemon that exited is left: %v", err)
	}
}

// waitGone waits until pid has exited, with a pidfd (Linux 5.3): it turns
// readable when the process ends, its sockets closed.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	const sysPidfdOpen = 434
	fd, _, e := syscall.Syscall(sysPidfdOpen, uintptr(pid), 0, 0)
	if e == syscall.ESRCH {
		return // gone and reaped
	}
	if e != 0 {
		t.Fatalf("pidfd_open %d: %v", pid, e)
	}
	defer syscall.Close(int(fd))
	var set syscall.FdSet
	set.Bits[fd/64] |= 1 << (fd % 64)
	tv := syscall.Timeval{Sec: 30}
	n, err := syscall.Select(int(fd)+1, &set, nil, nil, &tv)
	if err != nil || n != 1 {
		t.Fatalf("waiting for process %d to end: %d, %v", pid, n, err)
	}
}

// stargzHere skips the test where the stargz snapshotter cannot work.
func stargzHere(t *testing.T, l *builder.Local) {
	t.Helper()
	if err := builder.StargzSupported(filepath.Join(l.Dir, "root")); err != nil {
		t.Skipf("no stargz snapshotter here: %v", err)
	}
}

// With no snapshotter named, a Local starts with BuildKit's own choice, and
// its status says why not stargz; asked for stargz, it starts with it where
// FUSE and overlayfs work, and its status says so.
func TestLocalStargzWhenAsked(t *testing.T) {
	bin := buildkitd(t)
	l := newLocal(t, bin)
	if err := l.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	st, err := l.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Snapshotter == builder.SnapshotterStargz || st.NotStargz != builder.NotStargzByDefault {
		t.Errorf("status %+v: want BuildKit's choice, and why not stargz", st)
	}
	if err := l.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	l.Snapshotter = builder.SnapshotterStargz
	stargzHere(t, l)
	if err := l.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st, err = l.Status(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st.Snapshotter != builder.SnapshotterStargz || st.NotStargz != "" {
		t.Errorf("status %+v: want the stargz snapshotter", st)
	}
	// With no background fetch: its config says so, and it runs with it.
	cfg := filepath.Join(l.Dir, "buildkitd.toml")
	if dt, err := os.ReadFile(cfg); err != nil || !strings.Contains(string(dt), "no_background_fetch = true") {
		t.Errorf("buildkitd.toml: %q, %v; want no_background_fetch = true", dt, err)
	}
	if cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", l.PID())); err != nil || !strings.Contains(string(cmdline), "--config\x00"+cfg) {
		t.Errorf("buildkitd runs as %q (%v); want --config %s", cmdline, err, cfg)
	}
}

// A buildkitd that does not start with stargz (here: a stargz setting of
// the wrong type, which only the stargz snapshotter reads) is started
// again with BuildKit's auto choice, and the status says why; the failed
// start's log is kept.
func TestLocalFallsBackFromStargz(t *testing.T) {
	bin := buildkitd(t)
	l := newLocal(t, bin)
	l.Snapshotter = builder.SnapshotterStargz
	stargzHere(t, l)
	cfg := filepath.Join(l.Dir, "buildkitd.toml")
	if err := os.WriteFile(cfg, []byte("[worker.oci.stargzSnapshotter]\nprefetch_size = \"large\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l.Args = []string{"--config", cfg}
	if err := l.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	st, err := l.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	failed := filepath.Join(l.Dir, "buildkitd-stargz.log")
	if st.Snapshotter == builder.SnapshotterStargz || st.Snapshotter == "" {
		t.Errorf("snapshotter %q, want BuildKit's auto choice", st.Snapshotter)
	}
	if !strings.Contains(st.NotStargz, "did not start with the stargz snapshotter") || !strings.Contains(st.NotStargz, failed) {
		t.Errorf("why not stargz: %q, want the failed start and its log %s", st.NotStargz, failed)
	}
	if dt, err := os.ReadFile(failed); err != nil || !strings.Contains(string(dt), "stargz") {
		t.Errorf("the failed start's log: %v\n%s", err, dt)
	}
}

// A daemon a strata started with the stargz snapshotter when nothing asks
// for it now (its default before) is replaced, once idle, by one with
// BuildKit's own choice: it would keep no cache record of the steps it ran.
func TestEnsureReplacesStargzNotAsked(t *testing.T) {
	bin := buildkitd(t)
	l := newLocal(t, bin)
	l.Snapshotter = builder.SnapshotterStargz
	stargzHere(t, l)
	if _, err := l.Ensure(t.Context()); err != nil {
		t.Fatal(err)
	}
	pid := l.PID()
	// Asked for again: kept.
	if _, err := l.Ensure(t.Context()); err != nil || l.PID() != pid {
		t.Fatalf("Ensure with stargz asked for: %v, pid %d (was %d); want the same daemon", err, l.PID(), pid)
	}
	l.Snapshotter = ""
	if _, err := l.Ensure(t.Context()); err != nil {
		t.Fatal(err)
	}
	st, err := l.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if l.PID() == pid || st.Snapshotter == builder.SnapshotterStargz || st.NotStargz != builder.NotStargzByDefault {
		t.Errorf("pid %d (was %d), status %+v: want a new daemon with BuildKit's choice", l.PID(), pid, st)
	}
}
