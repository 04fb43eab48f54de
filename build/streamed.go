package build

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/containerd/platforms"
	"github.com/moby/buildkit/client"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/strata-build/strata/buildcontext"
	"github.com/strata-build/strata/cache/crawl"
	"github.com/strata-build/strata/frontend"
	"github.com/strata-build/strata/stream"
)

// runStreamed builds opt and pushes its image with layers uploaded while the
// build still runs (see package stream); with several platforms, one image
// each and an index over them (runStreamedPlatforms).
func runStreamed(ctx context.Context, c *client.Client, opt Options, so client.SolveOpt, bc *buildcontext.Context, contextDir, dockerfile string, lazy bool, p *progress) (*Result, error) {
	if len(opt.Platforms) > 1 {
		return runStreamedPlatforms(ctx, c, opt, bc, contextDir, dockerfile, lazy, p)
	}
	res, err := pushStreamed(ctx, c, opt, so, bc, contextDir, dockerfile, lazy, p, nil)
	if err != nil {
		return p.result(nil, 0, err)
	}
	r, err := p.result(res.ExporterResponse, res.SolveTime, nil)
	if err != nil {
		return nil, err
	}
	r.Push = &PushStats{BytesPushed: res.BytesSent, Layers: res.Layers, Streamed: true}
	if res.Blobs != nil {
		r.Pushed = &crawl.Pushed{Manifest: res.Image.Digest.String(), Blobs: res.Blobs}
	}
	return r, nil
}

// pushStreamed is the streamed push of opt's image (one platform): the
// prefixes of the target stage worth a solve of their own, and the COPY
// sources recorded in the image's history, are worked out here. With
// shared, the target the pushes of a multi-platform build share, the
// image's manifest goes in by digest only.
func pushStreamed(ctx context.Context, c *client.Client, opt Options, so client.SolveOpt, bc *buildcontext.Context, contextDir, dockerfile string, lazy bool, p stream.Progress, shared *stream.Target) (*stream.Result, error) {
	target := opt.streamTarget()
	cachedThrough := opt.CachedThrough
	if opt.NoCache {
		cachedThrough = 0 // every step runs
	}
	sourcesCtx, stopSources := context.WithCancel(ctx)
	defer stopSources()
	cfg := targetConfig(opt, targetBase(target), lazy)
	cfg.Dockerfile = dockerfile
	cfg.Prefixes = prefixDockerfiles(target, prefixSkipper(cachedThrough, bc))
	cfg.Edits = []stream.ImageEdit{recordSources(sourcesCtx, opt, bc, contextDir, dockerfile)}
	cfg.Platform = opt.platform()
	cfg.Target, cfg.Untagged = shared, shared != nil
	cfg.Resolves = opt.Resolves
	if opt.Pending != nil {
		cfg.Late = streamLate(opt.Pending, opt.NoCache)
	}
	return stream.Push(ctx, c, so, cfg, p)
}

// targetConfig is the part of a streamed push's configuration every
// platform's push of opt shares: where it goes and how its layers are
// made (see stream.NewTarget); base is the image layers are mounted from.
func targetConfig(opt Options, base string, lazy bool) stream.Config {
	return stream.Config{
		Tags:           opt.Tags,
		Insecure:       opt.InsecureRegistries,
		Compression:    opt.Compression,
		Epoch:          opt.epoch(),
		ClampFileTimes: opt.Reproducible,
		Base:           base,
		MemoPath:       stream.DefaultMemoPath(),
		Lazy:           lazy,
		RewriteAll:     opt.ForceCompression,
	}
}

// runStreamedPlatforms pushes an image for each of opt's platforms as a
// streamed push of one platform does, side by side: each its own solve
// (BuildKit runs a step the platforms share once), its new layers
// compressed and uploaded while the builds run, its manifest pushed by
// digest. The pushes share one target (stream.NewTarget): a layer two
// platforms build alike is converted and uploaded once. Once every
// repository holds every platform's image, the cache exports other than
// inline are made for every platform at once (exportCache), then an index
// over the images goes under the tags. The layers a build reuses from a cache
// are neither read nor rewritten, where BuildKit's own multi-platform push
// reads every one of them to rewrite its timestamps.
func runStreamedPlatforms(ctx context.Context, c *client.Client, opt Options, bc *buildcontext.Context, contextDir, dockerfile string, lazy bool, p *progress) (*Result, error) {
	plats, names, err := distinctPlatforms(opt.Platforms)
	if err != nil {
		return p.result(nil, 0, err)
	}
	solves := make([]client.SolveOpt, len(plats))
	opts := make([]Options, len(plats))
	var cacheTo []client.CacheOptionsEntry
	for i := range plats {
		opts[i] = opt
		opts[i].Platforms = []string{names[i]}
		if solves[i], err = solveOptions(opts[i], contextDir, dockerfile); err != nil {
			return p.result(nil, 0, err)
		}
		solves[i].CacheExports, cacheTo = splitCacheExports(solves[i].CacheExports)
	}
	results := make([]*stream.Result, len(plats))
	eg, ectx := errgroup.WithContext(ctx)
	// Layers are mounted from the first platform's base image (one
	// multi-platform image, most often, the same for every platform).
	shared, err := stream.NewTarget(ectx, c, targetConfig(opt, targetBase(opts[0].streamTarget()), lazy), len(plats), p)
	if err != nil {
		return p.result(nil, 0, err)
	}
	defer shared.Close()
	for i := range plats {
		eg.Go(func() error {
			var err error
			results[i], err = pushStreamed(ectx, c, opts[i], solves[i], bc, contextDir, dockerfile, lazy, platformProgress{Progress: p, name: names[i]}, shared)
			return err
		})
	}
	if err := eg.Wait(); err != nil {
		return p.result(nil, 0, err)
	}
	shared.NoteKept(p)
	// The tags move once the cache is out, as a one-platform build's move
	// after its solve and the cache export in it: a build that fails or is
	// interrupted here has moved no tag.
	if err := exportCache(ctx, c, opt, contextDir, dockerfile, cacheTo, p); err != nil {
		return p.result(nil, 0, err)
	}
	manifests := make([]ocispecs.Descriptor, len(plats))
	stats := &PushStats{Streamed: true, BytesPushed: shared.BytesSent()}
	var solve time.Duration
	for i, r := range results {
		manifests[i] = ocispecs.Descriptor{MediaType: r.Image.MediaType, Digest: r.Image.Digest, Size: r.Image.Size, Platform: &plats[i]}
		// A layer the platforms share is listed once.
		for _, l := range r.Layers {
			if !slices.ContainsFunc(stats.Layers, func(x stream.Layer) bool { return x.Digest == l.Digest }) {
				stats.Layers = append(stats.Layers, l)
			}
		}
		solve = max(solve, r.SolveTime)
	}
	idx, idxBytes, err := stream.PushIndex(ctx, opt.Tags, opt.InsecureRegistries, manifests, p)
	if err != nil {
		return p.result(nil, 0, err)
	}
	pushed := &crawl.Pushed{Manifest: idx.Digest.String(), Blobs: map[string][]byte{idx.Digest.String(): idxBytes}}
	for _, r := range results {
		if r.Blobs == nil {
			pushed = nil
			break
		}
		maps.Copy(pushed.Blobs, r.Blobs)
	}
	resp := map[string]string{"containerimage.digest": idx.Digest.String(), "image.name": strings.Join(opt.Tags, ",")}
	if dt, err := json.Marshal(idx); err == nil {
		resp["containerimage.descriptor"] = base64.StdEncoding.EncodeToString(dt)
	}
	r, err := p.result(resp, solve, nil)
	if err != nil {
		return nil, err
	}
	r.Push, r.Pushed = stats, pushed
	return r, nil
}

// splitCacheExports parts the cache exports of one platform's solve into
// those it makes (inline: records in its own image) and those left to one
// solve over every platform (see exportCache): each platform's export to a
// registry or a directory would hold that platform's records only, and
// overwrite the one before it.
func splitCacheExports(exports []client.CacheOptionsEntry) (own, shared []client.CacheOptionsEntry) {
	for _, e := range exports {
		if e.Type == "inline" {
			own = append(own, e)
		} else {
			shared = append(shared, e)
		}
	}
	return own, shared
}

// exportCache makes the cache exports of a multi-platform build, with every
// platform's records, once the platforms' builds are done: one solve over
// every platform, exporting no image, whose steps the builder has in its
// cache by then.
func exportCache(ctx context.Context, c *client.Client, opt Options, contextDir, dockerfile string, exports []client.CacheOptionsEntry, p *progress) error {
	if len(exports) == 0 {
		return nil
	}
	so, err := solveOptions(opt, contextDir, dockerfile)
	if err != nil {
		return err
	}
	so.Exports = nil
	so.CacheExports = stream.CompressedCacheExports(exports)
	// The platforms' builds ran every step --no-cache or --no-cache-filter
	// named and left their results in the builder's cache: this solve
	// reuses them rather than running those steps once more.
	delete(so.FrontendAttrs, "no-cache")
	var refs []string
	for _, e := range exports {
		refs = append(refs, cmp.Or(e.Attrs["ref"], e.Attrs["dest"], e.Type))
	}
	end := p.Begin("[strata] exporting the cache of every platform to " + strings.Join(refs, ", "))
	_, err = c.Build(ctx, so, frontend.Name, buildFunc(opt.Pending, so.LocalMounts, opt.Resolves, nil), p.Quiet())
	end(err)
	return err
}

// distinctPlatforms parses the platforms given, in order, each once, and
// returns them with the names BuildKit gives them (linux/arm64/v8 is
// linux/arm64).
func distinctPlatforms(given []string) ([]ocispecs.Platform, []string, error) {
	var out []ocispecs.Platform
	var names []string
	seen := map[string]bool{}
	for _, g := range given {
		pl, err := platforms.Parse(g)
		if err != nil {
			return nil, nil, platformError(g, err)
		}
		pl = platforms.Normalize(pl)
		name := platforms.Format(pl)
		if seen[name] {
			continue
		}
		seen[name] = true
		out, names = append(out, pl), append(names, name)
	}
	return out, names, nil
}

// platformProgress shows one platform's build of a multi-platform push:
// its Dockerfile steps named as BuildKit names them when it builds several
// platforms in one solve ("[linux/arm64 2/5] RUN ...").
type platformProgress struct {
	stream.Progress
	name string
}

func (pp platformProgress) Main() chan *client.SolveStatus {
	return stream.Through(pp.Progress.Main(), pp.rename)
}

func (pp platformProgress) rename(st *client.SolveStatus) *client.SolveStatus {
	return stream.RenameVertices(st, func(v *client.Vertex) (string, bool) { return platformStepName(v.Name, pp.name) })
}

// platformStepName is the name of a Dockerfile step ("[2/5] RUN ...",
// "[build 2/5] RUN ...") or of the frontend's own work ("[internal] load
// metadata ...") with the platform in front, as BuildKit's frontend names
// them in a multi-platform build; ok is false for any other name.
func platformStepName(name, platform string) (_ string, ok bool) {
	rest, ok := strings.CutPrefix(name, "[")
	i := strings.IndexByte(rest, ']')
	if !ok || i < 0 {
		return "", false
	}
	f := strings.Fields(rest[:i])
	if len(f) == 0 || !(len(f) == 1 && f[0] == "internal" || strings.Contains(f[len(f)-1], "/")) {
		return "", false
	}
	return "[" + platform + " " + rest, true
}

// PushStats describe what strata uploaded.
type PushStats struct {
	Streamed    bool           `json:"streamed"`
	BytesPushed int64          `json:"bytesPushed"`
	Layers      []stream.Layer `json:"layers"`
}
