package crawl

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"golang.org/x/sync/errgroup"

	"github.com/strata-build/strata/cache"
	"github.com/strata-build/strata/cache/internal/regopts"
	"github.com/strata-build/strata/errs"
)

// InlineCacheKey is the config field where BuildKit keeps inline cache metadata.
const InlineCacheKey = "moby.buildkit.cache.v0"

// maxConfigSize bounds the image configs the crawler reads.
const maxConfigSize = 8 << 20

// RefreshOptions say what Refresh crawls.
type RefreshOptions struct {
	Registry string // host[:port]
	// Repos are repository names or path.Match patterns ("team/*"). Empty
	// means every repository of the registry's catalog; patterns need the
	// catalog too, names do not.
	Repos []string
	// MaxTags bounds the tags read per repository (0: all). The tags read
	// are the branch-like ones first (latest, main, master, ...), then the
	// rest in descending order, so version tags are read newest first.
	// Tags left unread keep what the index holds for them.
	MaxTags int
	// NoPing leaves out the check that the registry answers before
	// anything is read (one round trip): the first tag list is the check.
	// Only when a tag list fails is the registry pinged, so that one that
	// does not answer fails the refresh as it would have at the start.
	NoPing bool
}

// RefreshResult counts what a refresh did.
type RefreshResult struct {
	Repos   int // repositories crawled
	Tags    int // tags seen
	Fetched int // images whose manifest and config were read
	Reused  int // images already indexed under the same digest
	Removed int // refs dropped because their tag is gone
	Skipped int // images left out, each with a warning
	Unread  int // tags not read because of MaxTags
	// TextOnly says which COPY steps are compared by text only (their
	// layer could not be read, or is too large); empty when none.
	TextOnly string
	// CacheExports are the tags read that hold a registry cache export of
	// BuildKit (--cache-to type=registry), sorted. They are not indexed (no
	// history), but they are cache sources for every stage they cover.
	CacheExports []string
	Warnings     []string
}

// Refresh crawls a registry into x: repositories (from the catalog or by
// name) → tags → manifests (every platform of an image index) → configs.
// Manifests already indexed by digest are not fetched again; tags that are
// gone drop out. An image that cannot be read (bad history, unknown media
// type, 401/404/5xx) is skipped with a warning; only failing to reach the
// registry or list its repositories is an error.
func Refresh(ctx context.Context, x *cache.Index, ro RefreshOptions, opts ...Option) (*RefreshResult, error) {
	o := regopts.New(opts)
	reg, err := o.Registry(ro.Registry)
	if err != nil {
		return nil, errs.Usagef("--registry %q: %v", ro.Registry, err)
	}
	if !ro.NoPing {
		if _, err := transport.Ping(ctx, reg, o.Base); err != nil {
			return nil, regopts.Error("reach "+ro.Registry, err)
		}
	}
	puller, err := o.Puller(ctx)
	if err != nil {
		return nil, err
	}
	// Refs use the registry's canonical name (docker.io is index.docker.io),
	// as AddImage does.
	c := &crawler{o: o, x: x, host: reg.RegistryStr(), puller: puller, res: &RefreshResult{}, now: time.Now().UTC(), noPing: ro.NoPing, reg: reg, known: map[string][]*cache.Image{}, maxTags: ro.MaxTags,
		sem: make(chan struct{}, o.Jobs), indexed: map[string][]string{}}
	c.files = knownFiles(x)
	seen := map[string]bool{}
	for _, m := range x.Images() {
		if m.Digest != "" {
			c.known[tagDigest(m)] = append(c.known[tagDigest(m)], m)
		}
		if repo, ok := c.repoOf(m.Ref); ok && !seen[m.Ref] {
			seen[m.Ref] = true
			c.indexed[repo] = append(c.indexed[repo], m.Ref)
		}
	}
	repos, err := c.repos(ctx, reg, ro.Repos)
	if err != nil {
		return nil, err
	}
	c.progress.Repos = len(repos)
	c.report()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.Jobs)
	for _, repo := range repos {
		g.Go(func() error { return c.repo(gctx, repo) })
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if c.fromCatalog {
		c.dropGoneRepos(repos, ro.Repos)
	}
	c.res.Repos = len(repos)
	slices.Sort(c.res.CacheExports)
	if c.res.TextOnly = c.textRanking(); c.res.TextOnly != "" {
		c.o.Log.Warn(c.res.TextOnly)
	}
	return c.res, nil
}

// dropGoneRepos deletes the indexed refs of repositories the catalog no
// longer lists (among those the patterns select).
func (c *crawler) dropGoneRepos(repos, patterns []string) {
	listed := map[string]bool{}
	for _, r := range repos {
		listed[r] = true
	}
	gone := 0
	for repo, refs := range c.indexed {
		if listed[repo] || !selected(repo, patterns) {
			continue
		}
		for _, ref := range refs {
			c.x.Delete(ref, c.now)
			gone++
		}
	}
	c.res.Removed += gone
}

// repoOf returns the repository of a ref of this registry.
func (c *crawler) repoOf(ref string) (string, bool) {
	rest, ok := strings.CutPrefix(ref, c.host+"/")
	if !ok {
		return "", false
	}
	i := strings.LastIndexByte(rest, ':')
	if i < 0 || strings.Contains(rest[i:], "/") {
		return "", false
	}
	return rest[:i], true
}

func selected(repo string, patterns []string) bool {
	if len(patterns) == 0 {
		return true
	}
	for _, p := range patterns {
		if ok, _ := path.Match(p, repo); ok {
			return true
		}
	}
	return false
}

type crawler struct {
	o      *regopts.Options
	x      *cache.Index
	host   string
	puller *remote.Puller
	now    time.Time
	known  map[string][]*cache.Image // by the digest the tag pointed to
	// maxTags bounds the tags read per repository (RefreshOptions.MaxTags).
	maxTags int
	// noPing: the registry reg is pinged only when a tag list fails
	// (RefreshOptions.NoPing).
	noPing bool
	reg    name.Registry
	// files are the files digests of COPY layers, by layer digest (see
	// layerFiles), and the COPY steps left to text matching.
	files                   map[string]string
	bigCopies, failedCopies int
	firstFilesErr           error

	fromCatalog bool                // the repositories came from the catalog
	sem         chan struct{}       // bounds the requests in flight to o.Jobs
	indexed     map[string][]string // refs of this registry in the index, by repository

	mu       sync.Mutex
	res      *RefreshResult
	progress Progress
}

func (c *crawler) repos(ctx context.Context, reg name.Registry, patterns []string) ([]string, error) {
	var names []string
	glob := false
	for _, p := range patterns {
		if _, err := path.Match(p, ""); err != nil {
			return nil, errs.Usagef("--repo %q: %v", p, err)
		}
		if strings.ContainsAny(p, "*?[") {
			glob = true
		} else {
			names = append(names, p)
		}
	}
	if len(patterns) > 0 && !glob {
		return names, nil
	}
	c.fromCatalog = true
	all, err := c.puller.Catalog(ctx, reg)
	if err != nil {
		return nil, errs.WithHint(fmt.Errorf("%w: list repositories of %s: %v", errs.ErrRegistry, c.host, errs.FirstLine(err.Error())),
			"this registry may not offer its catalog: name repositories with --repo")
	}
	if len(patterns) == 0 {
		return all, nil
	}
	seen := map[string]bool{}
	for _, n := range names {
		seen[n] = true
	}
	for _, r := range all {
		for _, p := range patterns {
			if ok, _ := path.Match(p, r); ok && !seen[r] {
				seen[r] = true
				names = append(names, r)
			}
		}
	}
	return names, nil
}

func (c *crawler) warn(format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	c.o.Log.Warn(msg)
	c.mu.Lock()
	c.res.Skipped++
	c.progress.Skipped++
	c.res.Warnings = append(c.res.Warnings, msg)
	c.mu.Unlock()
}

func (c *crawler) report() {
	if c.o.Progress == nil {
		return
	}
	select {
	case c.o.Progress <- c.progress:
	default:
	}
}

func (c *crawler) count(f func(p *Progress, r *RefreshResult)) {
	c.mu.Lock()
	f(&c.progress, c.res)
	c.report()
	c.mu.Unlock()
}

func (c *crawler) repo(ctx context.Context, repo string) error {
	defer c.count(func(p *Progress, _ *RefreshResult) { p.ReposDone++ })
	r, err := c.o.Repo(c.host + "/" + repo)
	if err != nil {
		c.warn("%s/%s: bad repository name: %v", c.host, repo, err)
		return nil
	}
	c.sem <- struct{}{}
	tags, err := c.puller.List(ctx, r)
	<-c.sem
	var te *transport.Error
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.As(err, &te) && te.StatusCode == http.StatusNotFound:
		tags = nil // the repository is gone: so are its tags
	default:
		if c.noPing {
			if _, perr := transport.Ping(ctx, c.reg, c.o.Base); perr != nil {
				return regopts.Error("reach "+c.host, perr)
			}
		}
		c.warn("%s/%s: list tags: %s; skipped", c.host, repo, describe(err))
		return nil
	}
	live := map[string]bool{}
	for _, tag := range tags {
		live[c.host+"/"+repo+":"+tag] = true
	}
	read := pickTags(tags, c.maxTags)
	c.count(func(p *Progress, res *RefreshResult) {
		p.Tags += len(read)
		res.Tags += len(read)
		res.Unread += len(tags) - len(read)
	})
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.o.Jobs)
	for _, tag := range read {
		ref := c.host + "/" + repo + ":" + tag
		g.Go(func() error {
			c.tag(gctx, r.Tag(tag), ref)
			c.count(func(p *Progress, _ *RefreshResult) { p.TagsDone++ })
			return gctx.Err()
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	gone := map[string]bool{}
	for _, ref := range c.indexed[repo] {
		if !live[ref] {
			gone[ref] = true
		}
	}
	for ref := range gone {
		c.x.Delete(ref, c.now)
	}
	c.count(func(_ *Progress, res *RefreshResult) { res.Removed += len(gone) })
	return nil
}

// branchTags are the tags CI pipelines move to the newest build; with
// MaxTags they are read first.
var branchTags = []string{"latest", "main", "master", "develop", "dev", "edge", "nightly", "buildcache", "cache"}

// pickTags returns at most n of tags (all when n <= 0): branch-like tags
// first, then the others in descending natural order (v1.10 before v1.9).
func pickTags(tags []string, n int) []string {
	if n <= 0 || len(tags) <= n {
		return tags
	}
	rest := slices.Clone(tags)
	slices.SortFunc(rest, func(a, b string) int {
		ia, ib := slices.Index(branchTags, a), slices.Index(branchTags, b)
		switch {
		case ia >= 0 && ib >= 0:
			return cmp.Compare(ia, ib)
		case ia >= 0:
			return -1
		case ib >= 0:
			return 1
		}
		return naturalCompare(b, a)
	})
	return rest[:n]
}

// naturalCompare orders strings with runs of digits compared as numbers.
func naturalCompare(a, b string) int {
	for a != "" && b != "" {
		da, db := digitRun(a), digitRun(b)
		if da > 0 && db > 0 {
			na, nb := strings.TrimLeft(a[:da], "0"), strings.TrimLeft(b[:db], "0")
			if c := cmp.Or(cmp.Compare(len(na), len(nb)), strings.Compare(na, nb)); c != 0 {
				return c
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return cmp.Compare(a[0], b[0])
		}
		a, b = a[1:], b[1:]
	}
	return cmp.Compare(len(a), len(b))
}

func digitRun(s string) int {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}

// tagDigest is the digest the image's tag pointed to when it was indexed:
// the image index for a multi-platform tag, else the manifest.
func tagDigest(m *cache.Image) string {
	if m.TagDigest != "" {
		return m.TagDigest
	}
	return m.Digest
}

func (c *crawler) tag(ctx context.Context, t name.Tag, ref string) {
	c.sem <- struct{}{}
	defer func() { <-c.sem }()
	d, err := c.manifest(ctx, t, ref)
	if err != nil {
		if ctx.Err() == nil {
			c.warn("%s: %s; skipped", ref, describe(err))
		}
		return
	}
	if d == nil {
		return // reused
	}
	dgst := d.Digest.String()
	imgs, err := c.descriptor(ref, d)
	if errors.Is(err, errCacheExport) {
		c.count(func(_ *Progress, res *RefreshResult) { res.CacheExports = append(res.CacheExports, ref) })
	}
	if err != nil {
		if !errors.Is(err, errSkipSilently) {
			c.warn("%s: %v; skipped", ref, err)
		}
		return
	}
	if len(imgs) == 0 {
		return
	}
	var platforms []string
	for _, m := range imgs {
		m.TagDigest = dgst
		c.x.Put(m)
		platforms = append(platforms, m.Platform)
	}
	c.x.Delete(ref, c.now, platforms...) // platforms the tag no longer has
	c.count(func(p *Progress, res *RefreshResult) { p.Fetched++; res.Fetched++ })
}

// manifest reads the manifest t names, unless ref can reuse the entries of
// one already indexed under the digest a HEAD finds (then it returns nil).
// With nothing indexed, there is nothing to reuse: the manifest is read at
// once, with no HEAD first.
func (c *crawler) manifest(ctx context.Context, t name.Tag, ref string) (*remote.Descriptor, error) {
	if len(c.known) == 0 {
		return c.puller.Get(ctx, t)
	}
	desc, err := c.puller.Head(ctx, t)
	if err != nil {
		return nil, err
	}
	dgst := desc.Digest.String()
	if c.reuse(ref, dgst) {
		return nil, nil
	}
	return c.puller.Get(ctx, t.Digest(dgst))
}

// reuse copies the entries of an already indexed manifest to ref, and
// drops ref's entries for platforms that manifest does not have (a tag
// moved from a multi-platform image to a single-platform one).
func (c *crawler) reuse(ref, dgst string) bool {
	src := c.known[dgst]
	if len(src) == 0 {
		return false
	}
	platforms := make([]string, 0, len(src))
	for _, m := range src {
		platforms = append(platforms, m.Platform)
		if cur, ok := c.x.Get(ref, m.Platform); ok && cur.Digest == m.Digest && cur.TagDigest == m.TagDigest {
			continue // unchanged: leave the entry as it is
		}
		cp := *m
		cp.Ref, cp.Indexed = ref, c.now
		c.x.Put(&cp)
	}
	c.x.Delete(ref, c.now, platforms...)
	c.count(func(p *Progress, res *RefreshResult) { p.Reused++; res.Reused++ })
	return true
}

// describe is a one-line account of a registry error, with what to do
// about missing credentials.
func describe(err error) string {
	msg := errs.FirstLine(err.Error())
	var te *transport.Error
	if errors.As(err, &te) && (te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden) {
		msg += " (log in with 'docker login' to index it)"
	}
	return msg
}

// AddImage reads ref (every platform of an image index) from its registry
// and puts it into x. It returns the entries added.
func AddImage(ctx context.Context, x *cache.Index, ref string, opts ...Option) ([]*cache.Image, error) {
	o := regopts.New(opts)
	r, err := o.ParseRef(ref)
	if err != nil {
		return nil, errs.Usagef("image ref %q: %v", ref, err)
	}
	c := oneImageCrawler(o, x, r)
	if c.puller, err = o.Puller(ctx); err != nil {
		return nil, err
	}
	desc, err := c.puller.Get(ctx, r)
	if err != nil {
		return nil, regopts.Error("read "+ref, err)
	}
	imgs, err := c.descriptor(indexName(r), desc)
	if err != nil {
		return nil, err
	}
	putUnder(x, imgs, desc.Digest.String())
	return imgs, nil
}

// putUnder puts imgs into x, each recorded under the tag's digest d (the
// manifest's, or the index's).
func putUnder(x *cache.Index, imgs []*cache.Image, d string) {
	for _, m := range imgs {
		m.TagDigest = d
		x.Put(m)
	}
}

// oneImageCrawler is the crawler of one image, r, into x.
func oneImageCrawler(o *regopts.Options, x *cache.Index, r name.Reference) *crawler {
	return &crawler{o: o, x: x, host: r.Context().RegistryStr(), res: &RefreshResult{}, now: time.Now().UTC(), known: map[string][]*cache.Image{}, files: map[string]string{}}
}

// indexName is the name r's entries have in the index: repository:tag,
// or repository@digest.
func indexName(r name.Reference) string {
	if _, ok := r.(name.Tag); ok {
		return r.Context().Name() + ":" + r.Identifier()
	}
	return r.Context().Name() + "@" + r.Identifier()
}
