package frontend

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	gofs "io/fs"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	bkclient "github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/frontend/gateway/client"
	"github.com/moby/buildkit/solver/pb"
	"github.com/opencontainers/go-digest"
	"github.com/tonistiigi/fsutil"
	fstypes "github.com/tonistiigi/fsutil/types"
)

// InProcess is the Dockerfile frontend of a solve run in the process
// whose session serves Dirs.
type InProcess[E cacheEntry] struct {
	// Dirs are the session's local directories, by local name: the
	// frontend reads its own files from them (LocalReads).
	Dirs map[string]fsutil.FS
	// Late, when set, gives the cache imports still being chosen when the
	// solve starts (see withLateImports).
	Late LateImports[E]
	// Resolves, when set, shares the solve's resolves of base images
	// (Resolves.Share).
	Resolves *Resolves
	// Show, when set, shows the steps the frontend's reads stand for and
	// the warnings about them (see LocalReads); nil for a solve whose steps
	// are not shown.
	Show func(*bkclient.SolveStatus)
}

// BuildFunc is the frontend as the BuildKit client runs it. The late
// imports are waited for under the local reads, so their steps end when
// the frontend sends its build, not once the imports are chosen.
func (p InProcess[E]) BuildFunc() client.BuildFunc {
	f := LocalReads(p.Dirs, p.Show, Build)
	if p.Late != nil {
		f = withLateImports(p.Late, f)
	}
	return p.Resolves.Share(f)
}

// LocalReads is f for a build that runs in the process that serves its
// local directories, dirs (by local name, as its session serves them).
//
// Before it converts anything, the Dockerfile frontend reads a few files
// for itself: the Dockerfile, its .dockerignore and the context's. It asks
// the builder for each, as a solve of a local source naming the files
// (FollowPaths), then reads the solved ref; reading it makes the builder
// sync those files from the session first, a round trip to this process
// and back, on the builder's time, while the frontend waits and the base
// images' resolves have yet to start. With LocalReads those files are
// read here, from dirs, and the builder is not asked for them.
//
// When show is not nil, each read is shown through it as the step the
// builder would have shown, under the same vertex, with the frontend's
// warnings about the file (which point at that vertex; they go to show,
// not to the builder, so that they come before the step's end, as a
// display wants them), the step ending when the frontend sends its own
// solve, or ends. Anything else, and a file that is not a plain file here
// (a symbolic link, which the builder resolves inside the directory), is
// read from the builder as before, the solve sent then.
func LocalReads(dirs map[string]fsutil.FS, show func(*bkclient.SolveStatus), f client.BuildFunc) client.BuildFunc {
	if len(dirs) == 0 {
		return f
	}
	return func(ctx context.Context, c client.Client) (*client.Result, error) {
		lc := &localReadsClient{Client: c, dirs: dirs, show: show}
		res, err := f(ctx, lc)
		lc.endSteps()
		if err == nil && res != nil {
			res, err = unwrapLocal(ctx, res)
		}
		return res, err
	}
}

type localReadsClient struct {
	client.Client
	dirs map[string]fsutil.FS
	show func(*bkclient.SolveStatus)

	mu sync.Mutex
	// solves are the local reads, by the vertex each names: a step read
	// twice is shown, and solved by the builder, once.
	solves map[digest.Digest]*builderSolve
	// steps are the steps shown for the reads, as last shown, by vertex;
	// open are those not ended yet, in order.
	steps map[digest.Digest]*bkclient.Vertex
	open  []digest.Digest
	ended bool
}

// builderSolve is the builder's solve of a definition whose files are read
// here, sent when something here cannot be read (see localRef).
type builderSolve struct {
	c    client.Client
	req  client.SolveRequest
	once sync.Once
	done chan struct{} // closed once the builder has answered
	ref  client.Reference
	err  error
}

// wait sends the solve, the first time, and returns the builder's ref.
func (s *builderSolve) wait(ctx context.Context) (client.Reference, error) {
	s.once.Do(func() {
		go func() {
			defer close(s.done)
			// Not ctx: a read that gives up does not end the solve
			// the others wait for.
			res, err := s.c.Solve(context.WithoutCancel(ctx), s.req)
			if err == nil {
				s.ref, err = res.SingleRef()
			}
			if err == nil && s.ref == nil {
				err = errors.New("the builder solved a local source to nothing")
			}
			s.err = err
		}()
	})
	select {
	case <-s.done:
		return s.ref, s.err
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// Solve answers a solve of files read here at once, with a ref that reads
// them here, showing the step it stands for the first time. Any other
// solve is the frontend's own: the steps of the reads end.
func (c *localReadsClient) Solve(ctx context.Context, req client.SolveRequest) (*client.Result, error) {
	if req.Evaluate || req.Frontend != "" || len(req.FrontendOpt) > 0 || len(req.FrontendInputs) > 0 || len(req.CacheImports) > 0 || len(req.SourcePolicies) > 0 {
		c.endSteps()
		return c.Client.Solve(ctx, req)
	}
	l, ok := localFiles(req.Definition, c.Client.BuildOpts().SessionID)
	fs, here := c.dirs[l.name]
	if !ok || !here {
		c.endSteps()
		return c.Client.Solve(ctx, req)
	}
	res := client.NewResult()
	res.SetRef(&localRef{solve: c.solve(l, req), fs: fs, paths: l.paths})
	return res, nil
}

// solve is the builder's solve of req, the local read l, sent if it is
// needed; the first time, the read is shown as l's step.
func (c *localReadsClient) solve(l local, req client.SolveRequest) *builderSolve {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.solves[l.vertex]; ok {
		return s
	}
	if c.solves == nil {
		c.solves = map[digest.Digest]*builderSolve{}
	}
	s := &builderSolve{c: c.Client, req: req, done: make(chan struct{})}
	c.solves[l.vertex] = s
	if c.show != nil {
		now := time.Now()
		v := &bkclient.Vertex{Digest: l.vertex, Name: l.step, Started: &now}
		if c.ended {
			v.Completed = &now
		} else {
			c.open = append(c.open, l.vertex)
		}
		if c.steps == nil {
			c.steps = map[digest.Digest]*bkclient.Vertex{}
		}
		c.steps[l.vertex] = v
		c.show(&bkclient.SolveStatus{Vertexes: []*bkclient.Vertex{v}})
	}
	return s
}

// endSteps ends the steps shown for the reads so far, and those of reads
// to come as soon as they start.
func (c *localReadsClient) endSteps() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ended = true
	if len(c.open) == 0 {
		return
	}
	now := time.Now()
	st := &bkclient.SolveStatus{}
	for _, d := range c.open {
		done := *c.steps[d]
		done.Completed = &now
		c.steps[d] = &done
		st.Vertexes = append(st.Vertexes, &done)
	}
	c.open = nil
	c.show(st)
}

// Warn shows a warning about a read shown here with its step; any other
// goes to the builder. A warning that comes once the step has ended (strata's
// findings are worked out beside the build) is shown with the step's end
// once more: a plain display prints a step's warnings when it prints the
// step.
func (c *localReadsClient) Warn(ctx context.Context, dgst digest.Digest, msg string, opts client.WarnOpts) error {
	c.mu.Lock()
	v, ok := c.steps[dgst]
	if !ok {
		c.mu.Unlock()
		return c.Client.Warn(ctx, dgst, msg, opts)
	}
	defer c.mu.Unlock()
	// As the builder makes it of a warning sent to it.
	level := opts.Level
	if level == 0 {
		level = 1
	}
	st := &bkclient.SolveStatus{Warnings: []*bkclient.VertexWarning{{
		Vertex: dgst, Level: level, Short: []byte(msg), Detail: opts.Detail, URL: opts.URL, SourceInfo: opts.SourceInfo, Range: opts.Range,
	}}}
	if v.Completed != nil {
		again, end := *v, *v.Completed // a new end, to a display
		again.Completed = &end
		st.Vertexes = []*bkclient.Vertex{&again}
	}
	c.show(st)
	return nil
}

// local is a solve of files the frontend reads for itself.
type local struct {
	name   string          // the local's, as the session serves it
	vertex digest.Digest   // the source's
	step   string          // the vertex's name, as the builder shows it
	paths  map[string]bool // the files the builder would sync, cleaned
}

// localFiles reads def: when it is one local source of this session (the
// session whose directories are served here) naming the files to sync
// and no patterns, it returns it.
func localFiles(def *pb.Definition, session string) (local, bool) {
	if def == nil || len(def.Def) != 2 {
		return local{}, false
	}
	var src *pb.SourceOp
	var vertex digest.Digest
	for _, dt := range def.Def {
		var op pb.Op
		if err := op.UnmarshalVT(dt); err != nil {
			return local{}, false
		}
		switch {
		case op.GetSource() != nil && src == nil:
			src = op.GetSource()
		case op.Op == nil && len(op.Inputs) == 1:
			vertex = digest.Digest(op.Inputs[0].Digest) // the definition's result
		default:
			return local{}, false
		}
	}
	if src == nil || vertex == "" {
		return local{}, false
	}
	name, ok := strings.CutPrefix(src.Identifier, "local://")
	if !ok || src.Attrs[pb.AttrLocalSessionID] != session || src.Attrs[pb.AttrIncludePatterns] != "" || src.Attrs[pb.AttrExcludePatterns] != "" {
		return local{}, false
	}
	var follow []string
	if err := json.Unmarshal([]byte(src.Attrs[pb.AttrFollowPaths]), &follow); err != nil || len(follow) == 0 {
		return local{}, false
	}
	l := local{name: name, vertex: vertex, step: src.Identifier, paths: make(map[string]bool, len(follow))}
	if m := def.Metadata[string(vertex)]; m != nil && m.Description["llb.customname"] != "" {
		l.step = m.Description["llb.customname"]
	}
	for _, p := range follow {
		l.paths[cleanPath(p)] = true
	}
	return l, true
}

func cleanPath(p string) string {
	return strings.TrimPrefix(path.Clean("/"+p), "/")
}

// localRef is a local source whose followed files are read from fs;
// everything else goes to the builder's ref, solved then.
type localRef struct {
	solve *builderSolve
	fs    fsutil.FS
	paths map[string]bool
}

func (r *localRef) ToState() (llb.State, error) {
	ref, err := r.solve.wait(context.Background())
	if err != nil {
		return llb.State{}, err
	}
	return ref.ToState()
}

func (r *localRef) Evaluate(ctx context.Context) error {
	ref, err := r.solve.wait(ctx)
	if err != nil {
		return err
	}
	return ref.Evaluate(ctx)
}

func (r *localRef) ReadDir(ctx context.Context, req client.ReadDirRequest) ([]*fstypes.Stat, error) {
	ref, err := r.solve.wait(ctx)
	if err != nil {
		return nil, err
	}
	return ref.ReadDir(ctx, req)
}

// errNotHere says a file is to be read from the builder.
var errNotHere = errors.New("not a plain file here")

// stat is the file p of r's directory, when r reads it itself.
func (r *localRef) stat(ctx context.Context, p string) (*fstypes.Stat, error) {
	p = cleanPath(p)
	if !r.paths[p] {
		return nil, errNotHere
	}
	var st *fstypes.Stat
	err := r.fs.Walk(ctx, p, func(rel string, e gofs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e == nil || rel != p {
			return nil
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		if s, ok := fi.Sys().(*fstypes.Stat); ok && fi.Mode().IsRegular() {
			st = s
			return nil
		}
		return errNotHere
	})
	switch {
	case errors.Is(err, errNotHere):
		return nil, errNotHere
	case err != nil && !errors.Is(err, gofs.ErrNotExist):
		return nil, errNotHere // let the builder say what is wrong with it
	case st == nil:
		return nil, &os.PathError{Op: "open", Path: p, Err: gofs.ErrNotExist}
	}
	return st, nil
}

func (r *localRef) StatFile(ctx context.Context, req client.StatRequest) (*fstypes.Stat, error) {
	st, err := r.stat(ctx, req.Path)
	if errors.Is(err, errNotHere) {
		ref, err := r.solve.wait(ctx)
		if err != nil {
			return nil, err
		}
		return ref.StatFile(ctx, req)
	}
	return st, err
}

func (r *localRef) ReadFile(ctx context.Context, req client.ReadRequest) ([]byte, error) {
	builders := func() ([]byte, error) {
		ref, err := r.solve.wait(ctx)
		if err != nil {
			return nil, err
		}
		return ref.ReadFile(ctx, req)
	}
	if _, err := r.stat(ctx, req.Filename); errors.Is(err, errNotHere) {
		return builders()
	} else if err != nil {
		return nil, err
	}
	f, err := r.fs.Open(cleanPath(req.Filename))
	if err != nil {
		return builders()
	}
	defer f.Close()
	var rd io.Reader = f
	if req.Range != nil {
		if _, err := io.CopyN(io.Discard, f, int64(req.Range.Offset)); err != nil && err != io.EOF {
			return nil, err
		}
		rd = io.LimitReader(f, int64(req.Range.Length))
	}
	return io.ReadAll(rd)
}

// unwrapLocal is res with the builder's refs in place of localRefs, which
// the builder cannot take back.
func unwrapLocal(ctx context.Context, res *client.Result) (*client.Result, error) {
	var err error
	unwrap := func(r client.Reference) client.Reference {
		l, ok := r.(*localRef)
		if !ok || err != nil {
			return r
		}
		var ref client.Reference
		ref, err = l.solve.wait(ctx)
		return ref
	}
	res.Ref = unwrap(res.Ref)
	for k, r := range res.Refs {
		res.Refs[k] = unwrap(r)
	}
	for _, as := range res.Attestations {
		for i := range as {
			as[i].Ref = unwrap(as[i].Ref)
		}
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}
