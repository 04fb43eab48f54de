package build

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-build/strata/buildcontext"
	"github.com/strata-build/strata/cache"
	"github.com/strata-build/strata/cache/crawl"
	"github.com/strata-build/strata/cache/plan"
	"github.com/strata-build/strata/cache/store"
	"github.com/strata-build/strata/dockerfile"
	"github.com/strata-build/strata/errs"
	"github.com/strata-build/strata/frontend"
	"github.com/strata-build/strata/regnet"
)

// AutoCache chooses cache sources from the index of registry images.
type AutoCache struct {
	Store   store.Store    // where the index lives (a file, or a registry artifact)
	Max     int            // how many cache imports at most
	Options []crawl.Option // registry access for resolving base images
	// Warn receives problems that do not stop the build: an unreachable or
	// unreadable index only means building without automatic cache.
	Warn func(string)
	// Note receives what the choice was made from, for the progress output.
	Note func(string)
	// TargetTags, when set, is how many tags of each target repository
	// (the repositories of --tag) are read into the index before planning:
	// a fresh runner with no index still finds the images earlier builds
	// pushed there, by strata or by any other tool. Configs already in the
	// index are not read again, and the index file keeps what was read.
	TargetTags int
	// Resolves, when set, is shared with the build (Options.Resolves):
	// the base images are resolved through the build's frontend once it
	// has started, by the builder, once for both; else from their
	// registries.
	Resolves *frontend.Resolves
}

// Choice is what AutoCache.Choose decided for one build. Apply puts it in
// the build's Options.
type Choice struct {
	// Imports are the cache imports, best first.
	Imports []AutoImport
	// Source says what the imports were chosen from: the index, and the
	// target repositories' tags read for the build ("" when the index
	// could not be loaded).
	Source string
	// CachedThrough is the Dockerfile line of the target stage's last step
	// that the imports are expected to give exactly (0 when none): see
	// Options.CachedThrough.
	CachedThrough int
	// Stage is the target stage as the plan read it (nil when there was no
	// plan): see Options.PlannedStage.
	Stage *plan.Stage
	// Context is the build context the plan walked (nil when none), for
	// the build to share: see Options.BuildContext.
	Context *buildcontext.Context
	// Dockerfile is the Dockerfile as the plan parsed it (nil when none),
	// for the build to read instead of parsing it again.
	Dockerfile *dockerfile.File
}

// Apply returns opt with the choice in it: the imports added to CacheFrom,
// CachedThrough and PlannedStage set from the plan, BuildContext from the
// context it walked, if any.
func (c Choice) Apply(opt Options) Options {
	opt.CacheFrom = slices.Clip(opt.CacheFrom) // appends never reach the caller's array
	for _, im := range c.Imports {
		opt.CacheFrom = append(opt.CacheFrom, im.Ref)
	}
	opt.CachedThrough, opt.PlannedStage = c.CachedThrough, c.Stage
	if c.Context != nil {
		opt.BuildContext = c.Context
	}
	if c.Dockerfile != nil {
		opt.parsed = c.Dockerfile
	}
	return opt
}

// TargetTagsDefault is how many tags of a target repository a build reads
// when no shared index is named: enough for the branch tags and the
// newest versions, few enough that a repository of thousands of tags costs
// one tag list and a bounded number of small reads.
const TargetTagsDefault = 32

// AutoImport is one cache import strata chose, why, and what the plan
// expects it to save.
type AutoImport = plan.Import

// Choose plans opt against the index and returns what it chose. It never
// fails the build: problems are warnings and give no imports.
func (a *AutoCache) Choose(ctx context.Context, opt Options) Choice {
	if a == nil || a.Store == nil || a.Max <= 0 {
		return Choice{}
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	x, err := a.Store.Load(ctx)
	if err != nil {
		a.warn("cache index %s: %v; building without automatic cache", a.Store, err)
		return Choice{}
	}
	c := Choice{Source: fmt.Sprintf("index %s (%d images)", a.Store, x.Len())}
	contextDir, dockerfile, err := opt.resolve()
	if err != nil {
		return c // Run reports it
	}
	// The build's stages (the Dockerfile parsed, the context hashed, the
	// base images resolved) need no index: they are read while the target
	// repositories' tags are.
	staged := make(chan stagesRead, 1)
	go func() { staged <- a.readStages(ctx, opt, contextDir, dockerfile) }()
	var exports []string
	if a.TargetTags > 0 {
		var src string
		if src, exports = a.readTargets(ctx, x, opt.Tags); src != "" {
			c.Source = src
		}
	}
	r := <-staged
	c.Context, c.Dockerfile = r.context, r.dockerfile
	if a.TargetTags == 0 && r.err == nil && copiesFromStages(opt, r.dockerfile) {
		// A shared index holds no cache exports: the one a push writes by
		// default is looked for where it goes.
		exports = a.defaultExports(ctx, opt.Tags)
	}
	if x.Len() == 0 && len(exports) == 0 {
		return c
	}
	a.note("cache sources from %s", c.Source)
	if r.err != nil {
		a.warn("planning cache sources: %v; building without automatic cache", r.err)
		return c
	}
	pl := r.stages.Plan(x)
	c.Stage = pl.TargetStage()
	// A registry cache export (mode=max) covers the steps of the stages the
	// target needs, which no image's inline cache does; with an image
	// beside it, BuildKit may load neither for a step both record (it
	// combines its cache sources in no fixed order): the exports then come
	// alone. A build of one stage takes the planned images, or the exports
	// when no image qualifies.
	if ex := cacheExports(exports, opt.CacheFrom); len(ex) > 0 && copiesFromStages(opt, r.dockerfile) {
		c.Imports = ex
	} else if c.Imports = pl.Imports(a.Max); len(c.Imports) > 0 {
		c.CachedThrough = cachedThrough(pl, c.Imports)
	} else {
		c.Imports = ex
	}
	for _, im := range c.Imports {
		a.note("cache from %s: %s", im.Ref, im.Reason)
	}
	return c
}

// copiesFromStages reports whether opt's target, on its first platform,
// needs a stage outside its FROM chain (see dockerfile.Build).
func copiesFromStages(opt Options, df *dockerfile.File) bool {
	if df == nil {
		return false
	}
	b, err := opt.resolveTarget(df, opt.platform())
	return err == nil && b.CopiesFromStages()
}

// defaultExports are the registry cache exports at DefaultCacheExportTag
// of the repositories of tags, where a push writes one by default.
func (a *AutoCache) defaultExports(ctx context.Context, tags []string) []string {
	var out []string
	for _, r := range targetRepos(tags) {
		ref := r.Tag(DefaultCacheExportTag).String()
		if ok, err := crawl.IsCacheExport(ctx, ref, a.Options...); err != nil {
			a.warn("reading %s: %s; building without it", ref, errs.FirstLine(err.Error()))
		} else if ok {
			out = append(out, ref)
		}
	}
	return out
}

// maxCacheExports bounds the registry cache exports of the target
// repositories a build imports.
const maxCacheExports = 2

// cacheExports are the imports of the registry cache exports found in the
// target repositories (BuildKit's --cache-to type=registry): their records
// cover the stages they were exported with (every stage with mode=max),
// where an image's inline cache covers only its own layers. They are not
// planned (they carry no history): the branch-like tags (buildcache,
// cache) come first, then the others in order, at most maxCacheExports;
// those the build's --cache-from names already are left out.
func cacheExports(refs, cacheFrom []string) []AutoImport {
	refs = slices.DeleteFunc(slices.Clone(refs), func(ref string) bool {
		return slices.ContainsFunc(cacheFrom, func(cf string) bool {
			typ, attrs, err := cacheImport(cf)
			return err == nil && typ == "registry" && attrs["ref"] == ref
		})
	})
	rank := func(ref string) int {
		if i := slices.Index([]string{"buildcache", "cache"}, ref[strings.LastIndex(ref, ":")+1:]); i >= 0 {
			return i
		}
		return 2
	}
	slices.SortStableFunc(refs, func(a, b string) int { return rank(a) - rank(b) })
	var out []AutoImport
	for _, ref := range refs[:min(len(refs), maxCacheExports)] {
		out = append(out, AutoImport{Ref: ref, Reason: "registry cache export of BuildKit (--cache-to type=registry): its records cover the stages it was exported with, every stage with mode=max"})
	}
	return out
}

// stagesRead is what readStages read.
type stagesRead struct {
	context    *buildcontext.Context // nil when it could not be opened: the plan reports it
	dockerfile *dockerfile.File
	stages     *plan.Stages
	err        error
}

// readStages reads the build's stages for a plan: the context walked (or
// opt's), the Dockerfile parsed, the base images resolved.
func (a *AutoCache) readStages(ctx context.Context, opt Options, contextDir, dockerfilePath string) stagesRead {
	var r stagesRead
	r.context = opt.BuildContext
	if r.context == nil {
		var err error
		if r.context, err = buildcontext.Open(contextDir, dockerfilePath); err != nil {
			r.context = nil
		}
	}
	if r.dockerfile, r.err = opt.readDockerfile(dockerfilePath); r.err != nil {
		return r
	}
	var resolver plan.BaseResolver
	if a.Resolves != nil {
		mode := "default"
		if opt.Pull {
			mode = "pull"
		}
		resolver = &sharedResolver{r: a.Resolves, mode: mode, multi: len(opt.Platforms) > 1, direct: plan.NewRegistryResolver(a.Options...)}
	}
	r.stages, r.err = (&plan.Planner{}).Stages(ctx, plan.PlanOptions{
		ContextDir: contextDir, Context: r.context, Dockerfile: dockerfilePath, Parsed: r.dockerfile, BuildArgs: opt.BuildArgs,
		Target: opt.Target, Platforms: opt.Platforms, Options: a.Options, Resolver: resolver,
	})
	return r
}

// sharedResolver resolves base images for the plan through the build's
// frontend (frontend.Resolves) with its resolve mode, and from their
// registries (direct) when no frontend is there to ask.
type sharedResolver struct {
	r      *frontend.Resolves
	mode   string
	multi  bool
	direct plan.BaseResolver
}

func (s *sharedResolver) ResolveBase(ctx context.Context, ref string, p v1.Platform) (string, []byte, error) {
	var pl *ocispecs.Platform
	if p.OS != "" {
		pl = &ocispecs.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant}
	}
	dgst, cfg, ok, err := s.r.Resolve(ctx, ref, pl, s.mode, s.multi)
	if !ok {
		return s.direct.ResolveBase(ctx, ref, p)
	}
	return dgst.String(), cfg, err
}

// cachedThrough is the line of the target stage's last step that the best
// of the chosen imports matches exactly, with all the steps before it.
func cachedThrough(pl *plan.Plan, imports []AutoImport) int {
	if len(pl.Stages) == 0 {
		return 0
	}
	sp := pl.Stages[len(pl.Stages)-1] // the target: the stages it needs come first
	best := 0
	for _, c := range sp.Candidates {
		if c.Exact > best && c.Exact <= len(sp.Lines) && slices.ContainsFunc(imports, func(im AutoImport) bool { return im.Ref == c.CacheRef }) {
			best = c.Exact
		}
	}
	if best == 0 {
		return 0
	}
	return sp.Lines[best-1]
}

// Record adds the pushed images to the index, so the next build anywhere
// can use them as cache sources: from pushed, the image as strata pushed
// it, when it is not nil and holds what the index records; else read
// from the registry.
func (a *AutoCache) Record(ctx context.Context, refs []string, pushed *crawl.Pushed) {
	if a == nil || a.Store == nil || len(refs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	// From what strata pushed, with no request to the registry; else
	// (crawl.ErrLayersNeeded, say) read back.
	if pushed != nil && store.AddPushed(ctx, a.Store, refs, *pushed, a.Options...) == nil {
		return
	}
	if err := store.AddImages(ctx, a.Store, refs, a.Options...); err != nil {
		a.warn("adding %s to the cache index %s: %v", refs[0], a.Store, err)
	}
}

// readTargets reads the newest tags of the repositories of tags into x, and
// keeps what changed in the store. It returns what the plan is made from,
// and the tags read that hold registry cache exports.
func (a *AutoCache) readTargets(ctx context.Context, x *cache.Index, tags []string) (string, []string) {
	repos := targetRepos(tags)
	if len(repos) == 0 {
		return "", nil
	}
	var exports []string
	before := x.Snapshot()
	var parts []string
	for _, r := range repos {
		opts := append(slices.Clone(a.Options), crawl.WithLogger(slog.New(slog.DiscardHandler)))
		// No ping first: the tag list is the first request, and its
		// failure the warning.
		res, err := crawl.Refresh(ctx, x, crawl.RefreshOptions{Registry: r.RegistryStr(), Repos: []string{r.RepositoryStr()}, MaxTags: a.TargetTags, NoPing: true}, opts...)
		if err != nil {
			a.warn("reading the tags of %s: %s; planning without them", r, errs.FirstLine(err.Error()))
			continue
		}
		if res.TextOnly != "" {
			a.note("%s: %s", r, res.TextOnly)
		}
		exports = append(exports, res.CacheExports...)
		part := fmt.Sprintf("%s (%d tags read", r, res.Tags)
		if res.Unread > 0 {
			part += fmt.Sprintf(" of %d, newest first", res.Tags+res.Unread)
		}
		parts = append(parts, part+")")
	}
	if len(parts) == 0 {
		return "", nil
	}
	if changed := x.ChangedSince(before); changed.Len() > 0 {
		if _, err := a.Store.Update(ctx, changed); err != nil {
			a.warn("keeping the tags read in %s: %v", a.Store, err)
		}
	}
	return fmt.Sprintf("target repository %s and index %s (%d images)", strings.Join(parts, ", "), a.Store, x.Len()), exports
}

// targetRepos are the distinct repositories of refs, in order.
func targetRepos(refs []string) []name.Repository {
	var out []name.Repository
	for _, ref := range refs {
		t, err := name.NewTag(ref, regnet.NameOptions(ref, nil)...)
		if err != nil {
			continue // Run reports it
		}
		if !slices.ContainsFunc(out, func(r name.Repository) bool { return r.String() == t.Context().String() }) {
			out = append(out, t.Context())
		}
	}
	return out
}

func (a *AutoCache) note(format string, args ...any) {
	if a.Note != nil {
		a.Note(fmt.Sprintf(format, args...))
	}
}

func (a *AutoCache) warn(format string, args ...any) {
	if a.Warn != nil {
		a.Warn(fmt.Sprintf(format, args...))
	}
}
