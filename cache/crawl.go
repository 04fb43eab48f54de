package cache

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"

	"github.com/strata-build/strata/errs"
)

// InlineCacheKey is the config field where BuildKit keeps inline cache metadata.
const InlineCacheKey = "moby.buildkit.cache.v0"

// IndexLabel marks the image that holds a shared index; the crawler skips it.
const IndexLabel = "dev.strata.cache.index"

// maxConfigSize bounds the image configs the crawler reads.
const maxConfigSize = 8 << 20

// RefreshOptions say what Refresh crawls.
type RefreshOptions struct {
	Registry string // host[:port]
	// Repos are repository names or path.Match patterns ("team/*"). Empty
	// means every repository of the registry's catalog; patterns need the
	// catalog too, names do not.
	Repos []string
}

// RefreshResult counts what a refresh did.
type RefreshResult struct {
	Repos    int // repositories crawled
	Tags     int // tags seen
	Fetched  int // images whose manifest and config were read
	Reused   int // images already indexed under the same digest
	Removed  int // refs dropped because their tag is gone
	Skipped  int // images left out, each with a warning
	Warnings []string
}

// Refresh crawls a registry into x: repositories (from the catalog or by
// name) → tags → manifests (every platform of an image index) → configs.
// Manifests already indexed by digest are not fetched again; tags that are
// gone drop out. An image that cannot be read (bad history, unknown media
// type, 401/404/5xx) is skipped with a warning; only failing to reach the
// registry or list its repositories is an error.
func Refresh(ctx context.Context, x *Index, ro RefreshOptions, opts ...Option) (*RefreshResult, error) {
	o := makeOptions(opts)
	reg, err := o.registry(ro.Registry)
	if err != nil {
		return nil, errs.Usagef("--registry %q: %v", ro.Registry, err)
	}
	puller, err := newPuller(ctx, o)
	if err != nil {
		return nil, err
	}
	c := &crawler{o: o, x: x, host: ro.Registry, puller: puller, res: &RefreshResult{}, now: time.Now().UTC(), known: map[string][]*Image{}}
	for _, m := range x.Images() {
		if m.Digest != "" {
			c.known[m.tagDigest()] = append(c.known[m.tagDigest()], m)
		}
	}
	repos, err := c.repos(ctx, reg, ro.Repos)
	if err != nil {
		return nil, err
	}
	c.progress.Repos = len(repos)
	c.report()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.jobs)
	for _, repo := range repos {
		g.Go(func() error { return c.repo(gctx, repo) })
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.res.Repos = len(repos)
	return c.res, nil
}

type crawler struct {
	o      *options
	x      *Index
	host   string
	puller *remote.Puller
	now    time.Time
	known  map[string][]*Image // by the digest the tag pointed to

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
	all, err := c.puller.Catalog(ctx, reg)
	if err != nil {
		return nil, errs.WithHint(fmt.Errorf("%w: list repositories of %s: %v", errs.ErrRegistry, c.host, oneLine(err.Error())),
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
	c.o.log.Warn(msg)
	c.mu.Lock()
	c.res.Skipped++
	c.progress.Skipped++
	c.res.Warnings = append(c.res.Warnings, msg)
	c.mu.Unlock()
}

func (c *crawler) report() {
	if c.o.progress == nil {
		return
	}
	select {
	case c.o.progress <- c.progress:
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
	r, err := c.o.repo(c.host + "/" + repo)
	if err != nil {
		c.warn("%s/%s: bad repository name: %v", c.host, repo, err)
		return nil
	}
	tags, err := c.puller.List(ctx, r)
	var te *transport.Error
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.As(err, &te) && te.StatusCode == http.StatusNotFound:
		tags = nil // the repository is gone: so are its tags
	default:
		c.warn("%s/%s: list tags: %s; skipped", c.host, repo, describe(err))
		return nil
	}
	c.count(func(p *Progress, res *RefreshResult) { p.Tags += len(tags); res.Tags += len(tags) })
	live := map[string]bool{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.o.jobs)
	for _, tag := range tags {
		ref := c.host + "/" + repo + ":" + tag
		live[ref] = true
		g.Go(func() error {
			c.tag(gctx, r.Tag(tag), ref)
			c.count(func(p *Progress, _ *RefreshResult) { p.TagsDone++ })
			return gctx.Err()
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	prefix := c.host + "/" + repo + ":"
	gone := map[string]bool{}
	for _, m := range c.x.Images() {
		if strings.HasPrefix(m.Ref, prefix) && !strings.Contains(m.Ref[len(prefix):], "/") && !live[m.Ref] {
			gone[m.Ref] = true
		}
	}
	for ref := range gone {
		c.x.Delete(ref, c.now)
	}
	c.count(func(_ *Progress, res *RefreshResult) { res.Removed += len(gone) })
	return nil
}

// tagDigest is the digest the image's tag pointed to when it was indexed:
// the image index for a multi-platform tag, else the manifest.
func (m *Image) tagDigest() string {
	if m.TagDigest != "" {
		return m.TagDigest
	}
	return m.Digest
}

func (c *crawler) tag(ctx context.Context, t name.Tag, ref string) {
	desc, err := c.puller.Head(ctx, t)
	if err != nil {
		if ctx.Err() == nil {
			c.warn("%s: %s; skipped", ref, describe(err))
		}
		return
	}
	dgst := desc.Digest.String()
	if c.reuse(ref, dgst) {
		return
	}
	d, err := c.puller.Get(ctx, t.Digest(dgst))
	if err != nil {
		if ctx.Err() == nil {
			c.warn("%s: %s; skipped", ref, describe(err))
		}
		return
	}
	imgs, err := c.descriptor(ref, d)
	if err != nil {
		if !errors.Is(err, errSkipSilently) {
			c.warn("%s: %v; skipped", ref, err)
		}
		return
	}
	if len(imgs) == 0 {
		return
	}
	for _, m := range imgs {
		m.TagDigest = dgst
		c.x.Put(m)
	}
	c.count(func(p *Progress, res *RefreshResult) { p.Fetched++; res.Fetched++ })
}

// reuse copies the entries of an already indexed manifest to ref.
func (c *crawler) reuse(ref, dgst string) bool {
	src := c.known[dgst]
	if len(src) == 0 {
		return false
	}
	for _, m := range src {
		if cur, ok := c.x.Get(ref, m.Platform); ok && cur.Digest == m.Digest && cur.TagDigest == m.TagDigest {
			continue // unchanged: leave the entry as it is
		}
		cp := *m
		cp.Ref, cp.Indexed = ref, c.now
		c.x.Put(&cp)
	}
	c.count(func(p *Progress, res *RefreshResult) { p.Reused++; res.Reused++ })
	return true
}

// descriptor reads the image or every platform of the image index d.
func (c *crawler) descriptor(ref string, d *remote.Descriptor) ([]*Image, error) {
	switch {
	case d.MediaType.IsIndex():
		return c.index(ref, d)
	case d.MediaType.IsImage():
		img, err := d.Image()
		if err != nil {
			return nil, err
		}
		m, err := c.image(ref, img, nil)
		if err != nil {
			return nil, err
		}
		return []*Image{m}, nil
	default:
		return nil, fmt.Errorf("manifest media type %q is not an image", d.MediaType)
	}
}

func (c *crawler) index(ref string, d *remote.Descriptor) ([]*Image, error) {
	idx, err := d.ImageIndex()
	if err != nil {
		return nil, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var out []*Image
	for _, desc := range im.Manifests {
		if !desc.MediaType.IsImage() || desc.Platform == nil || desc.Platform.OS == "unknown" {
			continue // attestations and nested indexes
		}
		img, err := idx.Image(desc.Digest)
		if err == nil {
			var m *Image
			if m, err = c.image(ref, img, desc.Platform); err == nil {
				out = append(out, m)
			}
		}
		if err != nil && !errors.Is(err, errSkipSilently) {
			c.warn("%s (%s): %v; skipped", ref, desc.Platform, err)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("image index has no image for any platform")
	}
	return out, nil
}

// image reads one platform's manifest and config into an index entry.
func (c *crawler) image(ref string, img v1.Image, p *v1.Platform) (*Image, error) {
	mf, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	if mf.Config.Size > maxConfigSize {
		return nil, fmt.Errorf("config of %d bytes is larger than %d", mf.Config.Size, maxConfigSize)
	}
	if mt := mf.Config.MediaType; mt != "" && mt != types.DockerConfigJSON && mt != types.OCIConfigJSON {
		return nil, fmt.Errorf("config media type %q is not an image config", mt)
	}
	raw, err := img.RawConfigFile()
	if err != nil {
		return nil, err
	}
	m, err := imageFromConfig(ref, raw, mf)
	if err != nil {
		return nil, err
	}
	if p != nil && m.Platform == "" {
		m.Platform = platformString(p.OS, p.Architecture, p.Variant)
	}
	d, err := img.Digest()
	if err != nil {
		return nil, err
	}
	m.Digest = d.String()
	if m.Pushed.Before(reproducibleCutoff) {
		// Reproducible builds pin created to SOURCE_DATE_EPOCH (often 0):
		// when strata first saw the image is the better guess.
		m.Pushed = c.now
		if old, ok := c.x.Get(ref, m.Platform); ok && old.Digest == m.Digest {
			m.Pushed = old.Pushed
		}
	}
	m.Indexed = c.now
	return m, nil
}

// reproducibleCutoff: created times before it are taken as pinned, not real.
var reproducibleCutoff = time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)

// errSkipSilently marks images strata itself keeps in registries (the shared index).
var errSkipSilently = errors.New("strata index artifact")

// imageFromConfig builds an index entry from a raw config and its manifest.
func imageFromConfig(ref string, raw []byte, mf *v1.Manifest) (*Image, error) {
	cf, err := v1.ParseConfigFile(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if _, ok := cf.Config.Labels[IndexLabel]; ok {
		return nil, errSkipSilently
	}
	if len(cf.RootFS.DiffIDs) != len(mf.Layers) {
		return nil, &ErrHistory{Reason: fmt.Sprintf("config lists %d layers, the manifest %d", len(cf.RootFS.DiffIDs), len(mf.Layers))}
	}
	steps, err := NormalizeHistory(cf.History, len(mf.Layers))
	if err != nil {
		return nil, err
	}
	var top map[string]json.RawMessage
	_ = json.Unmarshal(raw, &top)
	_, inline := top[InlineCacheKey]
	m := &Image{
		Ref:         ref,
		Platform:    platformString(cf.OS, cf.Architecture, cf.Variant),
		Steps:       steps,
		InlineCache: inline,
		Pushed:      cf.Created.UTC(),
	}
	m.Layers = make([]Layer, len(mf.Layers))
	for i, l := range mf.Layers {
		m.Layers[i] = Layer{Digest: l.Digest.String(), DiffID: cf.RootFS.DiffIDs[i].String(), Size: l.Size}
	}
	return m, nil
}

func platformString(os, arch, variant string) string {
	if os == "" || arch == "" {
		return ""
	}
	s := os + "/" + arch
	if variant != "" {
		s += "/" + variant
	}
	return s
}

func newPuller(ctx context.Context, o *options) (*remote.Puller, error) {
	p, err := remote.NewPuller(o.remote(ctx)...)
	if err != nil {
		return nil, registryError("registry client", err)
	}
	return p, nil
}

// describe is a one-line account of a registry error, with what to do
// about missing credentials.
func describe(err error) string {
	msg := oneLine(err.Error())
	var te *transport.Error
	if errors.As(err, &te) && (te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden) {
		msg += " (log in with 'docker login' to index it)"
	}
	return msg
}
