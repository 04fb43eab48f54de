package integration

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/strata-build/strata/errs"
	"github.com/strata-build/strata/integration/testenv"
)

// startStrata runs the strata binary and returns once its progress shows
// marker, so the caller can interfere with a build in flight.
func startStrata(t *testing.T, marker string, args ...string) (*exec.Cmd, *strings.Builder, <-chan error) {
	t.Helper()
	cmd := exec.Command(filepath.Join(env.BinDir, "strata"), args...)
	cmd.Env = os.Environ()
	pr, pw := io.Pipe()
	cmd.Stderr, cmd.Stdout = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		pw.Close()
		done <- err
	}()
	var out strings.Builder
	seen := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		once := false
		for sc.Scan() {
			out.WriteString(sc.Text() + "\n")
			if !once && strings.Contains(sc.Text(), marker) {
				once = true
				close(seen)
			}
		}
		if !once {
			close(seen)
		}
	}()
	select {
	case <-seen:
	case <-time.After(2 * time.Minute):
		t.Fatal("the build never reached " + marker)
	}
	return cmd, &out, done
}

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// waitExit waits at most a minute for a strata started by startStrata to
// end, and returns its exit code; what names the event it should end on.
func waitExit(t *testing.T, done <-chan error, what string) int {
	t.Helper()
	select {
	case err := <-done:
		return exitCode(err)
	case <-time.After(time.Minute):
		t.Fatalf("strata did not stop on %s", what)
		return 0
	}
}

const slowDockerfile = "FROM %s\nRUN echo started-slow-step && sleep 60\n"

// Losing buildkitd in the middle of a build: strata says the builder was
// lost, exits 3, and no tag is created.
func TestBuilderLostMidBuild(t *testing.T) {
	bk, err := env.StartBuildkitd(t.Context(), "lost")
	if err != nil {
		t.Fatal(err)
	}
	defer bk.Stop(5 * time.Second)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": fmt.Sprintf(slowDockerfile, env.Busybox)})
	ref := env.Registry.Host + "/lost/app:v1"
	_, out, done := startStrata(t, "started-slow-step", "build", "--builder", bk.Addr(), "--progress", "plain", "-t", ref, "--push", dir)
	if err := syscall.Kill(bk.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, done, "losing its builder"); code != errs.ExitBuilder {
		t.Fatalf("exit %d, want %d\n%s", code, errs.ExitBuilder, tail(out.String(), 15))
	}
	if last := lastLine(out.String()); !strings.Contains(last, "builder was lost") {
		t.Errorf("error line %q does not say the builder was lost", last)
	}
	r, _ := name.ParseReference(ref, name.Insecure)
	if _, err := remote.Head(r); err == nil {
		t.Fatal("a tag exists for a build whose builder was lost")
	}
}

// SIGINT during a build cancels it: exit 130, no tag, and the builder stays
// healthy for the next build.
func TestInterruptedBuild(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": fmt.Sprintf(slowDockerfile, env.Busybox)})
	ref := env.Registry.Host + "/interrupted/app:v1"
	cmd, out, done := startStrata(t, "started-slow-step", "build", "--builder", env.Builder.Addr(), "--progress", "plain", "-t", ref, "--push", dir)
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, done, "SIGINT"); code != errs.ExitInterrupted {
		t.Fatalf("exit %d, want %d\n%s", code, errs.ExitInterrupted, tail(out.String(), 15))
	}
	r, _ := name.ParseReference(ref, name.Insecure)
	if _, err := remote.Head(r); err == nil {
		t.Fatal("a tag exists for an interrupted build")
	}
	writeFiles(t, dir, map[string]string{"Dockerfile": fmt.Sprintf("FROM %s\nRUN echo after-interrupt\n", env.Busybox)})
	if code, _, stderr := strata(t, "build", "--builder", env.Builder.Addr(), "--progress", "plain", dir); code != 0 {
		t.Fatalf("the builder is not healthy after an interrupted build: exit %d\n%s", code, tail(stderr, 10))
	}
}

// Eight CI jobs at once: eight strata processes build and push eight
// different apps on one buildkitd and one registry, each recording its
// image in the same shared index. Every image verifies (each blob pulled
// back and its digest checked), and the index holds all eight.
func TestConcurrentBuildsShareOneIndex(t *testing.T) {
	const jobs = 8
	index := fmt.Sprintf("%s/strata/index-%d:ci", env.Registry.Host, time.Now().UnixNano())
	type job struct {
		ref, meta string
		out       []byte
		err       error
	}
	js := make([]job, jobs)
	var wg sync.WaitGroup
	for i := range js {
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{
			"Dockerfile": fmt.Sprintf("FROM %s\nCOPY app.txt /app.txt\nRUN head -c 500000 /dev/urandom > /data && cat /app.txt\n", env.Busybox),
			"app.txt":    fmt.Sprintf("app %d\n", i),
		})
		js[i].ref = fmt.Sprintf("%s/concurrent/app%d:v1", env.Registry.Host, i)
		js[i].meta = filepath.Join(t.TempDir(), "m.json")
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(filepath.Join(env.BinDir, "strata"), "build", "--builder", env.Builder.Addr(), "--progress", "plain",
				"--index", index, "-t", js[i].ref, "--push", "--metadata-file", js[i].meta, dir)
			js[i].out, js[i].err = cmd.CombinedOutput()
		}()
	}
	wg.Wait()
	for _, j := range js {
		if j.err != nil {
			t.Fatalf("%s: %v\n%s", j.ref, j.err, tail(string(j.out), 20))
		}
		verifyImage(t, j.ref, metadataString(t, readMetadata(t, j.meta), "containerimage.digest"))
	}
	code, out, stderr := strata(t, "index", "ls", "--index", index)
	if code != 0 {
		t.Fatalf("index ls: exit %d: %s", code, stderr)
	}
	for _, j := range js {
		if !strings.Contains(out, j.ref) {
			t.Errorf("the shared index lost %s:\n%s", j.ref, out)
		}
	}
}

// SIGTERM in the middle of a streamed push (a CI job cancelled while the
// layers upload over a slow link): exit 130, no tag and no manifest in the
// registry, and the builder stays healthy for the next build.
func TestTerminatedDuringPush(t *testing.T) {
	proxy, err := testenv.StartProxy(env.Registry.Host, testenv.WithBandwidth(1<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": fmt.Sprintf("FROM %s\nRUN head -c 8000000 /dev/urandom > /big\nRUN echo small > /small\n", env.Busybox)})
	ref := proxy.Host + "/terminated/app:v1"
	cmd, out, done := startStrata(t, "[strata] push ", "build", "--builder", env.Builder.Addr(), "--progress", "plain", "-t", ref, "--push", dir)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, done, "SIGTERM"); code != errs.ExitInterrupted {
		t.Fatalf("exit %d, want %d\n%s", code, errs.ExitInterrupted, tail(out.String(), 15))
	}
	repo, _ := name.NewRepository(env.Registry.Host+"/terminated/app", name.Insecure)
	if tags, err := remote.List(repo); err == nil && len(tags) > 0 {
		t.Fatalf("tags %v exist after a push was cancelled", tags)
	}
	regLog, err := os.ReadFile(env.Registry.LogFile)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(regLog), "PUT /v2/terminated/app/manifests/"); n > 0 {
		t.Fatalf("%d manifests were put for a cancelled push", n)
	}
	writeFiles(t, dir, map[string]string{"Dockerfile": fmt.Sprintf("FROM %s\nRUN echo after-terminate\n", env.Busybox)})
	if code, _, stderr := strata(t, "build", "--builder", env.Builder.Addr(), "--progress", "plain", dir); code != 0 {
		t.Fatalf("the builder is not healthy after a cancelled push: exit %d\n%s", code, tail(stderr, 10))
	}
}
