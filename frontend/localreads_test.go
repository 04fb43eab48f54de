package frontend

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	bkclient "github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/frontend/dockerui"
	"github.com/moby/buildkit/frontend/gateway/client"
	gwpb "github.com/moby/buildkit/frontend/gateway/pb"
	"github.com/moby/buildkit/solver/pb"
	"github.com/opencontainers/go-digest"
	"github.com/tonistiigi/fsutil"
	fstypes "github.com/tonistiigi/fsutil/types"
)

// builder answers solves with refs that record what is read from them;
// its other methods are not called here.
type builder struct {
	client.Client
	session string
	opts    map[string]string

	mu     sync.Mutex
	solves int      // solves sent to the builder
	reads  []string // files read from the builder's refs
	events []string // what the builder and the display saw, in order
}

func (b *builder) Warn(context.Context, digest.Digest, string, client.WarnOpts) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.events = append(b.events, "warned the builder")
	return nil
}

// show is the display of the steps read here.
func (b *builder) show(st *bkclient.SolveStatus) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, v := range st.Vertexes {
		if v.Completed == nil {
			b.events = append(b.events, "started "+v.Name)
		} else {
			b.events = append(b.events, "ended "+v.Name)
		}
	}
	for _, w := range st.Warnings {
		b.events = append(b.events, "shown warning "+string(w.Short))
	}
}

func (b *builder) BuildOpts() client.BuildOpts {
	return client.BuildOpts{SessionID: b.session, Opts: b.opts, LLBCaps: pb.Caps.CapSet(pb.Caps.All()), Caps: gwpb.Caps.CapSet(gwpb.Caps.All())}
}

func (b *builder) Inputs(context.Context) (map[string]llb.State, error) { return nil, nil }

func (b *builder) Solve(context.Context, client.SolveRequest) (*client.Result, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.solves++
	b.events = append(b.events, "solved")
	return &client.Result{Ref: &builderRef{b: b}}, nil
}

type builderRef struct {
	client.Reference
	b *builder
}

func (r *builderRef) read(p string) error {
	r.b.mu.Lock()
	defer r.b.mu.Unlock()
	r.b.reads = append(r.b.reads, p)
	return errors.New("no such file in the builder")
}

func (r *builderRef) ReadFile(_ context.Context, req client.ReadRequest) ([]byte, error) {
	return nil, r.read(req.Filename)
}

func (r *builderRef) StatFile(_ context.Context, req client.StatRequest) (*fstypes.Stat, error) {
	return nil, r.read(req.Path)
}

func newFS(t *testing.T, files map[string]string) fsutil.FS {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if target, ok := strings.CutPrefix(content, "->"); ok {
			if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fs, err := fsutil.NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

// reading is a frontend that reads the Dockerfile as BuildKit's own does
// (dockerui's), then goes on with use.
func reading(use func(context.Context, client.Client, *dockerui.Client, *dockerui.Source) (*client.Result, error)) client.BuildFunc {
	return func(ctx context.Context, c client.Client) (*client.Result, error) {
		bc, err := dockerui.NewClient(c)
		if err != nil {
			return nil, err
		}
		src, err := bc.ReadEntrypoint(ctx, "Dockerfile")
		if err != nil {
			return nil, err
		}
		return use(ctx, c, bc, src)
	}
}

// entrypoint runs BuildKit's own read of the Dockerfile through
// LocalReads(dirs) on b, then use with what it read.
func entrypoint(b *builder, dirs map[string]fsutil.FS, use func(context.Context, *dockerui.Client, *dockerui.Source) error) error {
	f := LocalReads(dirs, b.show, reading(func(ctx context.Context, _ client.Client, bc *dockerui.Client, src *dockerui.Source) (*client.Result, error) {
		return nil, use(ctx, bc, src)
	}))
	_, err := f(context.Background(), b)
	return err
}

// The steps the builder shows for the frontend's own reads.
const (
	df = "[internal] load build definition from Dockerfile"
	di = "[internal] load .dockerignore"
)

// The frontend's own reads are served from the directories this process
// holds, each shown as the step the builder would have shown, and the
// builder is asked for nothing.
func TestLocalReadsServeTheFrontendsOwnReads(t *testing.T) {
	for _, tc := range []struct {
		name         string
		dockerfile   map[string]string
		context      map[string]string
		wantExcludes []string
		shown        []string
	}{
		{"context .dockerignore",
			map[string]string{"Dockerfile": "FROM scratch\n"},
			map[string]string{".dockerignore": ".git\nnode_modules\n"},
			[]string{".git", "node_modules"},
			[]string{"started " + df, "started " + di, "ended " + df, "ended " + di}},
		{"Dockerfile.dockerignore",
			map[string]string{"Dockerfile": "FROM scratch\n", "Dockerfile.dockerignore": "secrets\n"},
			map[string]string{".dockerignore": ".git\n"},
			[]string{"secrets"},
			[]string{"started " + df, "ended " + df}},
		{"lowercase dockerfile",
			map[string]string{"dockerfile": "FROM scratch\n"},
			map[string]string{},
			nil,
			[]string{"started " + df, "started " + di, "ended " + df, "ended " + di}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &builder{session: "s1"}
			var data string
			var excludes []string
			err := entrypoint(b, map[string]fsutil.FS{"dockerfile": newFS(t, tc.dockerfile), "context": newFS(t, tc.context)}, func(ctx context.Context, bc *dockerui.Client, src *dockerui.Source) (err error) {
				data = string(src.Data)
				// the context's .dockerignore when the Dockerfile has none
				excludes, err = bc.DockerIgnorePatterns(ctx)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if data != "FROM scratch\n" {
				t.Errorf("Dockerfile read as %q", data)
			}
			if !reflect.DeepEqual(excludes, tc.wantExcludes) {
				t.Errorf("excludes %q, want %q", excludes, tc.wantExcludes)
			}
			if b.solves > 0 || len(b.reads) > 0 {
				t.Errorf("the builder was sent %d solves and read %q", b.solves, b.reads)
			}
			if !reflect.DeepEqual(b.events, tc.shown) {
				t.Errorf("shown %q, want %q", b.events, tc.shown)
			}
		})
	}
}

// A read is shown under the vertex the builder would have shown, with the
// frontend's warnings about it before its end (a plain display shows no
// warning that comes after), and it ends when the frontend sends its own
// solve.
func TestLocalReadsShowTheirWarningsBeforeTheirEnd(t *testing.T) {
	b := &builder{session: "s1"}
	var vertex digest.Digest
	var shown []digest.Digest
	show := func(st *bkclient.SolveStatus) {
		for _, v := range st.Vertexes {
			shown = append(shown, v.Digest)
		}
		for _, w := range st.Warnings {
			shown = append(shown, w.Vertex)
		}
		b.show(st)
	}
	f := LocalReads(map[string]fsutil.FS{"dockerfile": newFS(t, map[string]string{"Dockerfile": "FROM scratch\n"})}, show, reading(func(ctx context.Context, c client.Client, _ *dockerui.Client, src *dockerui.Source) (*client.Result, error) {
		def, err := src.SourceMap.State.Marshal(ctx)
		if err != nil {
			return nil, err
		}
		if vertex, err = def.Head(); err != nil {
			return nil, err
		}
		src.Warn(ctx, "a warning", client.WarnOpts{})
		return c.Solve(ctx, client.SolveRequest{Definition: imageDef(ctx, t)})
	}))
	if _, err := f(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if want := []string{"started " + df, "shown warning a warning", "ended " + df, "solved"}; !reflect.DeepEqual(b.events, want) {
		t.Errorf("saw %q, want %q", b.events, want)
	}
	for _, d := range shown {
		if d != vertex {
			t.Errorf("shown for %s, want the Dockerfile's source %s", d, vertex)
		}
	}
}

// What is not a plain file here is read from the builder, which resolves
// it as it does in every build; so is a local of another session.
func TestLocalReadsLeaveTheRestToTheBuilder(t *testing.T) {
	t.Run("symbolic link", func(t *testing.T) {
		b := &builder{session: "s1"}
		err := entrypoint(b, map[string]fsutil.FS{"dockerfile": newFS(t, map[string]string{"Dockerfile": "->../elsewhere/Dockerfile"})}, func(context.Context, *dockerui.Client, *dockerui.Source) error { return nil })
		if err == nil {
			t.Fatal("a Dockerfile the builder cannot read was read")
		}
		if len(b.reads) == 0 || b.reads[0] != "Dockerfile" {
			t.Errorf("builder reads %q, want the Dockerfile first", b.reads)
		}
	})
	t.Run("other session", func(t *testing.T) {
		def, err := llb.Local("dockerfile", llb.SessionID("s2"), llb.FollowPaths([]string{"Dockerfile"})).Marshal(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := localFiles(def.ToPB(), "s1"); ok {
			t.Error("a local of another session is read here")
		}
		if l, ok := localFiles(def.ToPB(), "s2"); !ok || l.name != "dockerfile" || !l.paths["Dockerfile"] {
			t.Errorf("localFiles = %+v, %v", l, ok)
		}
	})
	t.Run("not only a local", func(t *testing.T) {
		st := llb.Scratch().File(llb.Copy(llb.Local("context", llb.SessionID("s1"), llb.FollowPaths([]string{"a"})), "a", "b"))
		def, err := st.Marshal(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := localFiles(def.ToPB(), "s1"); ok {
			t.Error("a definition that is more than a local is read here")
		}
	})
	t.Run("patterns", func(t *testing.T) {
		def, err := llb.Local("context", llb.SessionID("s1"), llb.FollowPaths([]string{"a"}), llb.ExcludePatterns([]string{"a"})).Marshal(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := localFiles(def.ToPB(), "s1"); ok {
			t.Error("a local with exclude patterns is read here")
		}
	})
}

// A ref read here never goes back to the builder in a result.
func TestLocalReadsReturnTheBuildersRefs(t *testing.T) {
	b := &builder{session: "s1"}
	def, err := llb.Local("dockerfile", llb.SessionID("s1"), llb.FollowPaths([]string{"Dockerfile"})).Marshal(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	f := LocalReads(map[string]fsutil.FS{"dockerfile": newFS(t, map[string]string{"Dockerfile": "FROM scratch\n"})}, nil, func(ctx context.Context, c client.Client) (*client.Result, error) {
		res, err := c.Solve(ctx, client.SolveRequest{Definition: def.ToPB()})
		if err != nil {
			return nil, err
		}
		if _, ok := res.Ref.(*localRef); !ok {
			t.Errorf("the Dockerfile's ref is %T, not read here", res.Ref)
		}
		dt, err := res.Ref.ReadFile(ctx, client.ReadRequest{Filename: "Dockerfile", Range: &client.FileRange{Offset: 5, Length: 3}})
		if err != nil || string(dt) != "scr" {
			t.Errorf("ranged read = %q, %v", dt, err)
		}
		return res, nil
	})
	res, err := f(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := res.Ref.(*builderRef); !ok {
		t.Errorf("result holds %T, not the builder's ref", res.Ref)
	}
}

// A warning that comes once the read's step has ended (strata's findings
// are worked out beside the build) is shown with the step's end once more:
// a plain display prints a step's warnings only when it prints the step.
func TestLocalReadsShowALateWarningWithTheStep(t *testing.T) {
	b := &builder{session: "s1"}
	f := LocalReads(map[string]fsutil.FS{"dockerfile": newFS(t, map[string]string{"Dockerfile": "FROM scratch\n"})}, b.show, reading(func(ctx context.Context, c client.Client, _ *dockerui.Client, src *dockerui.Source) (*client.Result, error) {
		res, err := c.Solve(ctx, client.SolveRequest{Definition: imageDef(ctx, t)})
		src.Warn(ctx, "late", client.WarnOpts{})
		return res, err
	}))
	if _, err := f(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if want := []string{"started " + df, "ended " + df, "solved", "ended " + df, "shown warning late"}; !reflect.DeepEqual(b.events, want) {
		t.Errorf("saw %q, want %q", b.events, want)
	}
}

// In the frontend as strata runs it, the reads' steps end when the
// frontend sends its build, before that solve waits for the cache imports
// still being chosen: a display does not show the Dockerfile's step as
// running while the choice is made.
func TestInProcessEndsTheReadsStepsBeforeWaitingForImports(t *testing.T) {
	b := &builder{session: "s1"}
	ended := make(chan struct{})
	var once sync.Once
	show := func(st *bkclient.SolveStatus) {
		b.show(st)
		for _, v := range st.Vertexes {
			if v.Completed != nil {
				once.Do(func() { close(ended) })
			}
		}
	}
	late := func(ctx context.Context) ([]client.CacheOptionsEntry, error) {
		select {
		case <-ended:
			return nil, nil
		case <-time.After(10 * time.Second):
			return nil, errors.New("the build's solve waited for the imports before the reads' steps ended")
		}
	}
	dirs := map[string]fsutil.FS{"dockerfile": newFS(t, map[string]string{"Dockerfile": "FROM scratch\n"})}
	f := withLateImports(LateImports[client.CacheOptionsEntry](late), LocalReads(dirs, show, reading(func(ctx context.Context, c client.Client, bc *dockerui.Client, _ *dockerui.Source) (*client.Result, error) {
		return c.Solve(ctx, client.SolveRequest{Definition: imageDef(ctx, t), CacheImports: bc.CacheImports})
	})))
	if _, err := f(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if want := []string{"started " + df, "ended " + df, "solved"}; !reflect.DeepEqual(b.events, want) {
		t.Errorf("saw %q, want %q", b.events, want)
	}
}

// imageDef is the definition of a build of its own, as the frontend sends
// after its reads.
func imageDef(ctx context.Context, t *testing.T) *pb.Definition {
	t.Helper()
	def, err := llb.Image("busybox").Marshal(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return def.ToPB()
}
