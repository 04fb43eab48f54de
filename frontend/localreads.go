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

	"github.com/moby/buildkit/frontend/gateway/client"
	"github.com/moby/buildkit/solver/pb"
	"github.com/opencontainers/go-digest"
	"github.com/tonistiigi/fsutil"
	fstypes "github.com/tonistiigi/fsutil/types"
)

// InProcess is the frontend of a solve run in the process whose session
// serves dirs: Build reading its own files from dirs (LocalReads), and
// taking its cache imports late (BuildWithLateImports) when late is not
// nil.
func InProcess[E cacheEntry](dirs map[string]fsutil.FS, late LateImports[E]) client.BuildFunc {
	if late == nil {
		return LocalReads(dirs, Build)
	}
	return LocalReads(dirs, BuildWithLateImports(late))
}

// LocalReads is f for a build that runs in the process that serves its
// local directories, dirs (by local name, as its session serves them).
//
// Before it converts anything, the Dockerfile frontend reads a few files
// for itself: the Dockerfile, its .dockerignore and the context's. It asks
// the builder for each, as a solve of a local source naming the files
// (FollowPaths), then reads the solved ref; reading it makes the builder
// sync those files from the session first, one round trip to this process
// and back for files this process holds. With LocalReads those solves are
// still sent (the builder shows and names them, and warnings point at
// them), but the files they name are read here, from dirs, and the builder
// syncs nothing. Anything else, and a file that is not a plain file here
// (a symbolic link, which the builder resolves inside the directory), is
// read from the builder as before.
func LocalReads(dirs map[string]fsutil.FS, f client.BuildFunc) client.BuildFunc {
	if len(dirs) == 0 {
		return f
	}
	return func(ctx context.Context, c client.Client) (*client.Result, error) {
		res, err := f(ctx, &localReadsClient{Client: c, dirs: dirs})
		if res != nil {
			res = unwrapLocal(res)
		}
		return res, err
	}
}

type localReadsClient struct {
	client.Client
	dirs map[string]fsutil.FS

	mu sync.Mutex
	// shown holds, for each local read here, a channel closed once the
	// builder has solved it: it shows the step from then on.
	shown map[digest.Digest]chan struct{}
}

func (c *localReadsClient) Solve(ctx context.Context, req client.SolveRequest) (*client.Result, error) {
	res, err := c.Client.Solve(ctx, req)
	if err != nil || res == nil || res.Ref == nil || len(res.Refs) > 0 || req.Evaluate {
		return res, err
	}
	name, vertex, paths, ok := localFiles(req.Definition, c.Client.BuildOpts().SessionID)
	if !ok {
		return res, nil
	}
	fs, ok := c.dirs[name]
	if !ok {
		return res, nil
	}
	// The builder shows the step once it has solved it; it does so
	// meanwhile, and a warning about the files waits for it (Warn), as a
	// display drops the warnings of a step it has not seen.
	ref := res.Ref
	res.Ref = &localRef{Reference: ref, fs: fs, paths: paths}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.shown[vertex]; ok {
		return res, nil // the same step, solved already or being solved
	}
	if c.shown == nil {
		c.shown = map[digest.Digest]chan struct{}{}
	}
	shown := make(chan struct{})
	c.shown[vertex] = shown
	go func() {
		defer close(shown)
		if ref.Evaluate(ctx) != nil && ctx.Err() == nil {
			// A builder without the gateway's evaluate: a read
			// solves the ref too.
			for p := range paths {
				_, _ = ref.StatFile(ctx, client.StatRequest{Path: p})
				break
			}
		}
	}()
	return res, nil
}

// Warn sends a warning once the builder shows the step it is about.
func (c *localReadsClient) Warn(ctx context.Context, dgst digest.Digest, msg string, opts client.WarnOpts) error {
	c.mu.Lock()
	shown := c.shown[dgst]
	c.mu.Unlock()
	if shown != nil {
		select {
		case <-shown:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	return c.Client.Warn(ctx, dgst, msg, opts)
}

// localFiles reads def: when it is one local source of this session (the
// session whose directories are served here) naming the files to sync
// and no patterns, it returns the local's name, its vertex and those
// files.
func localFiles(def *pb.Definition, session string) (string, digest.Digest, map[string]bool, bool) {
	if def == nil || len(def.Def) != 2 {
		return "", "", nil, false
	}
	var src *pb.SourceOp
	var vertex digest.Digest
	for _, dt := range def.Def {
		var op pb.Op
		if err := op.UnmarshalVT(dt); err != nil {
			return "", "", nil, false
		}
		switch {
		case op.GetSource() != nil && src == nil:
			src = op.GetSource()
		case op.Op == nil && len(op.Inputs) == 1:
			vertex = digest.Digest(op.Inputs[0].Digest) // the definition's result
		default:
			return "", "", nil, false
		}
	}
	if src == nil || vertex == "" {
		return "", "", nil, false
	}
	name, ok := strings.CutPrefix(src.Identifier, "local://")
	if !ok || src.Attrs[pb.AttrLocalSessionID] != session || src.Attrs[pb.AttrIncludePatterns] != "" || src.Attrs[pb.AttrExcludePatterns] != "" {
		return "", "", nil, false
	}
	var follow []string
	if err := json.Unmarshal([]byte(src.Attrs[pb.AttrFollowPaths]), &follow); err != nil || len(follow) == 0 {
		return "", "", nil, false
	}
	paths := make(map[string]bool, len(follow))
	for _, p := range follow {
		paths[cleanPath(p)] = true
	}
	return name, vertex, paths, true
}

func cleanPath(p string) string {
	return strings.TrimPrefix(path.Clean("/"+p), "/")
}

// localRef is a solved local source whose followed files are read from
// fs; everything else goes to the builder's ref.
type localRef struct {
	client.Reference
	fs    fsutil.FS
	paths map[string]bool
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
		return r.Reference.StatFile(ctx, req)
	}
	return st, err
}

func (r *localRef) ReadFile(ctx context.Context, req client.ReadRequest) ([]byte, error) {
	if _, err := r.stat(ctx, req.Filename); errors.Is(err, errNotHere) {
		return r.Reference.ReadFile(ctx, req)
	} else if err != nil {
		return nil, err
	}
	f, err := r.fs.Open(cleanPath(req.Filename))
	if err != nil {
		return r.Reference.ReadFile(ctx, req)
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
func unwrapLocal(res *client.Result) *client.Result {
	unwrap := func(r client.Reference) client.Reference {
		if l, ok := r.(*localRef); ok {
			return l.Reference
		}
		return r
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
	return res
}
