package frontend

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/containerd/platforms"
	"github.com/google/go-containerregistry/pkg/name"
	controlapi "github.com/moby/buildkit/api/services/control"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/frontend/dockerui"
	"github.com/moby/buildkit/frontend/gateway/client"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-build/strata/cache"
	"github.com/strata-build/strata/cache/plan"
)

// Automatic cache in the frontend: given the shared index (the image
// `strata index refresh --index REF` and `strata build --push --index REF`
// keep in the registry), the frontend reads it through BuildKit (the
// gateway has no network of its own, but an image it solves can be read),
// plans the build against it, and adds the best images to the cache
// imports the stock builder solves with. Any problem is a warning and the
// build goes on without automatic cache.
const (
	keyIndexOpt      = "strata-index"                // --opt strata-index=REF (buildctl)
	keyIndexArg      = "build-arg:STRATA_INDEX"      // --build-arg STRATA_INDEX=REF (buildx)
	keyAutoCacheOpt  = "strata-auto-cache"           // --opt strata-auto-cache=N
	keyAutoCacheArg  = "build-arg:STRATA_AUTO_CACHE" // --build-arg STRATA_AUTO_CACHE=N
	keyCacheImports  = "cache-imports"               // BuildKit's own option, read by dockerui
	defaultAutoCache = 3                             // as strata build's --auto-cache
	maxIndexBytes    = 512 << 20                     // a larger index file is refused
)

// autoCacheOptions are the frontend options strata reads; BuildKit's own
// are left to the stock builder.
var autoCacheOptions = []string{keyIndexOpt, keyIndexArg, keyAutoCacheOpt, keyAutoCacheArg}

// withAutoCache returns c with the cache imports the shared index chooses
// added to its cache-imports option, or c itself when no index is named or
// it cannot be used (then warn says why).
func withAutoCache(ctx context.Context, c client.Client, bc *dockerui.Client, src *dockerui.Source, warn func(string)) client.Client {
	opts := c.BuildOpts().Opts
	ref := cmp.Or(opts[keyIndexOpt], opts[keyIndexArg])
	if ref == "" {
		return c
	}
	n, err := autoCacheCount(opts)
	if err != nil {
		warn(err.Error() + "; building without automatic cache")
		return c
	}
	if n == 0 {
		return c
	}
	imports, err := chooseImports(ctx, c, bc, src, ref, n)
	if err != nil {
		warn(fmt.Sprintf("strata cache index %s: %v; building without automatic cache", ref, err))
		return c
	}
	if len(imports) == 0 {
		return c
	}
	entries, err := cacheImports(opts[keyCacheImports], imports)
	if err != nil {
		warn(err.Error() + "; building without automatic cache")
		return c
	}
	bo := c.BuildOpts()
	bo.Opts = maps.Clone(bo.Opts)
	bo.Opts[keyCacheImports] = entries
	return &withOpts{Client: c, opts: bo}
}

// withOpts is a gateway client whose build options strata changed.
type withOpts struct {
	client.Client
	opts client.BuildOpts
}

func (w *withOpts) BuildOpts() client.BuildOpts { return w.opts }

func autoCacheCount(opts map[string]string) (int, error) {
	v := cmp.Or(opts[keyAutoCacheOpt], opts[keyAutoCacheArg])
	if v == "" {
		return defaultAutoCache, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("STRATA_AUTO_CACHE=%q is not a number of images (0 turns automatic cache off)", v)
	}
	return n, nil
}

// chooseImports reads the index at ref and plans the build against it.
func chooseImports(ctx context.Context, c client.Client, bc *dockerui.Client, src *dockerui.Source, ref string, n int) ([]string, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("STRATA_INDEX is not an image reference (%v): name the shared index like registry.example.com/strata/index:main", err)
	}
	if _, ok := r.(name.Tag); !ok {
		return nil, errors.New("STRATA_INDEX names a digest: name the shared index by its tag")
	}
	x, err := readIndex(ctx, c, ref)
	if err != nil {
		return nil, err
	}
	if x.Len() == 0 {
		return nil, nil
	}
	var plats []string
	for _, p := range bc.TargetPlatforms {
		plats = append(plats, platforms.Format(p))
	}
	if len(plats) == 0 {
		if w := c.BuildOpts().Workers; len(w) > 0 && len(w[0].Platforms) > 0 {
			plats = []string{platforms.Format(w[0].Platforms[0])}
		}
	}
	var p plan.Planner
	plan, err := p.Plan(ctx, plan.PlanOptions{
		Dockerfile: src.Filename, DockerfileData: src.Data, BuildArgs: bc.BuildArgs,
		Target: bc.Target, Platforms: plats, Index: x, Resolver: plan.ResolverFromMeta(c),
	})
	if err != nil {
		return nil, fmt.Errorf("planning cache sources: %w", err)
	}
	return plan.CacheImports(n), nil
}

// indexPlatform is the platform the index image is read for. Its files are
// the same on every platform and nothing runs in it, so one fixed platform
// lets a builder of any architecture, or a client on macOS or Windows, read it.
var indexPlatform = ocispecs.Platform{OS: "linux", Architecture: "amd64"}

// readIndex solves the index image and reads its index file.
func readIndex(ctx context.Context, c client.Client, ref string) (*cache.Index, error) {
	def, err := llb.Image(ref, llb.Platform(indexPlatform), llb.WithCustomName("[strata] reading cache index "+ref)).Marshal(ctx)
	if err != nil {
		return nil, err
	}
	res, err := c.Solve(ctx, client.SolveRequest{Definition: def.ToPB()})
	if err != nil {
		return nil, err
	}
	img, err := res.SingleRef()
	if err != nil {
		return nil, err
	}
	st, err := img.StatFile(ctx, client.StatRequest{Path: cache.IndexPath})
	if err != nil {
		return nil, fmt.Errorf("not a strata index image (%v)", err)
	}
	if st.Size > maxIndexBytes {
		return nil, fmt.Errorf("index file of %d bytes is larger than the %d this frontend reads", st.Size, maxIndexBytes)
	}
	dt, err := img.ReadFile(ctx, client.ReadRequest{Filename: cache.IndexPath})
	if err != nil {
		return nil, err
	}
	return cache.Decode(dt)
}

// cacheImports is BuildKit's cache-imports option (JSON) with refs added
// after the entries it already has.
func cacheImports(current string, refs []string) (string, error) {
	var entries []*controlapi.CacheOptionsEntry
	if current != "" {
		if err := json.Unmarshal([]byte(current), &entries); err != nil {
			return "", fmt.Errorf("cache-imports %q: %v", current, err)
		}
	}
	for _, r := range refs {
		entries = append(entries, &controlapi.CacheOptionsEntry{Type: "registry", Attrs: map[string]string{"ref": r}})
	}
	dt, err := json.Marshal(entries)
	return string(dt), err
}

// unknownOptions names the strata-* frontend options strata does not have,
// so a misspelt one is a warning, not silently ignored.
func unknownOptions(opts map[string]string) []string {
	var out []string
	for k := range opts {
		if strings.HasPrefix(k, "strata-") && !slices.Contains(autoCacheOptions, k) {
			out = append(out, k)
		}
	}
	return out
}
