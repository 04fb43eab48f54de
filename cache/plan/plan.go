package plan

import (
	"cmp"
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/strata-build/strata/buildcontext"
	"github.com/strata-build/strata/cache"
	"github.com/strata-build/strata/cache/crawl"
	"github.com/strata-build/strata/dockerfile"
)

// PlanOptions describe one build to plan, with the meaning strata build
// gives its flags.
type PlanOptions struct {
	ContextDir string // the build context
	Dockerfile string // default <ContextDir>/Dockerfile
	// DockerfileData is the Dockerfile's content when it is not read from
	// Dockerfile; see StagesOptions.
	DockerfileData []byte
	BuildArgs      map[string]string // --build-arg
	Target         string            // --target
	Platforms      []string          // --platform; default the host's linux platform
	Index          *cache.Index      // the images to choose from
	// Context is the build context already opened; see StagesOptions.
	Context *buildcontext.Context
	// Parsed is the Dockerfile already parsed; see StagesOptions.
	Parsed *dockerfile.File
	// Resolver resolves FROM images; default a RegistryResolver with Options.
	Resolver BaseResolver
	// Candidates is how many candidates to keep per stage (default 5).
	Candidates int
	// Options configure registry access for the default resolver.
	Options []crawl.Option
}

// Plan is the ranked cache candidates of each stage of one build.
type Plan struct {
	Dockerfile string      `json:"dockerfile"`
	Target     string      `json:"target,omitempty"`
	Stages     []StagePlan `json:"stages"`
	// target is the stage the build produces, as read for a plan of one
	// platform (see TargetStage).
	target *Stage
}

// TargetStage is the stage the build produces as the plan read it, COPY
// sources digests included, when the plan is for one platform; nil
// otherwise. A build can record those sources without reading the
// Dockerfile and hashing the context again.
func (p *Plan) TargetStage() *Stage { return p.target }

// StagePlan is one stage on one platform.
type StagePlan struct {
	Stage      string      `json:"stage"`
	Platform   string      `json:"platform"`
	Base       string      `json:"base"`
	BaseDigest string      `json:"baseDigest,omitempty"`
	Steps      []string    `json:"steps"` // the stage's own steps, as BuildKit writes them
	Lines      []int       `json:"lines"`
	Skipped    string      `json:"skipped,omitempty"`
	Candidates []Candidate `json:"candidates"`
}

// Step match kinds, per own step of a stage.
const (
	MatchExact   = "exact"   // same text, and for COPY/ADD the same sources digest
	MatchText    = "text"    // same text; the content of COPY/ADD sources is not known to match
	MatchChanged = "changed" // same text, but the recorded sources digest differs: BuildKit rebuilds it
	// MatchRebuild is a step with the same text after a changed step:
	// BuildKit's cache keys chain, so it runs again.
	MatchRebuild = "rebuild"
)

// Candidate is an indexed image that shares leading steps with a stage.
type Candidate struct {
	Ref         string    `json:"ref"`
	Digest      string    `json:"digest"`
	CacheRef    string    `json:"cacheRef"` // what BuildKit imports: repository@digest
	InlineCache bool      `json:"inlineCache"`
	Pushed      time.Time `json:"pushed"`
	// Matched is how many of the stage's own steps the image has, by text (N of M).
	Matched int `json:"matched"`
	// Exact is how many leading own steps match exactly.
	Exact int `json:"exact"`
	// Match says how each matched step matched (MatchExact, MatchText, MatchChanged).
	Match []string `json:"match"`
	// BytesReusable is the size of the image's layers for the exact leading steps.
	BytesReusable int64 `json:"bytesReusable"`
	// BytesLikely adds the leading steps matched by text only (BuildKit
	// decides whether their cache hits), up to the first changed step.
	BytesLikely int64 `json:"bytesLikely"`
	// BytesToBuild is the size of the image's layers for the matched steps
	// that will run again; steps with no match have no known size.
	BytesToBuild int64 `json:"bytesToBuild"`
	// chain is the image's layers for the matched steps: two images with
	// the same chain offer BuildKit the same cache for this stage.
	chain string
}

// Planner plans builds. It remembers the base images it resolved, so
// plans made with it in one build session (several platforms, several
// targets) resolve each base once. The zero value is ready to use.
type Planner struct {
	mu   sync.Mutex
	seen map[string]resolvedBase
}

type resolvedBase struct {
	digest string
	config []byte
}

// Plan plans the build described by opt against opt.Index.
func (p *Planner) Plan(ctx context.Context, opt PlanOptions) (*Plan, error) {
	st, err := p.Stages(ctx, opt)
	if err != nil {
		return nil, err
	}
	return st.Plan(opt.Index), nil
}

// Stages are the stages of one build on each of its platforms, read for a
// plan: the Dockerfile parsed, the context hashed, the base images
// resolved. Reading them needs no index, so it can go on while the index
// is being read.
type Stages struct {
	opt   PlanOptions
	stage [][]Stage // by platform
}

// Stages reads the stages of the build opt describes (opt.Index is not
// used).
func (p *Planner) Stages(ctx context.Context, opt PlanOptions) (*Stages, error) {
	if opt.Resolver == nil {
		opt.Resolver = NewRegistryResolver(opt.Options...)
	}
	opt.Resolver = &memoResolver{p: p, r: opt.Resolver}
	if opt.Candidates <= 0 {
		opt.Candidates = 5
	}
	plats := opt.Platforms
	if len(plats) == 0 {
		plats = []string{""}
	}
	if opt.Dockerfile == "" {
		opt.Dockerfile = filepath.Join(opt.ContextDir, "Dockerfile")
	}
	sopt := StagesOptions{
		ContextDir: opt.ContextDir, Dockerfile: opt.Dockerfile, DockerfileData: opt.DockerfileData, BuildArgs: opt.BuildArgs,
		Target: opt.Target, Resolver: opt.Resolver, Context: opt.Context, Parsed: opt.Parsed,
	}
	out := &Stages{opt: opt}
	for _, pl := range plats {
		sopt.Platform = pl
		// Every platform reads the Dockerfile parsed and the context walked once.
		stages, err := dockerfileStages(ctx, &sopt)
		if err != nil {
			return nil, err
		}
		out.stage = append(out.stage, stages)
	}
	return out, nil
}

// Plan ranks the images of x (an empty index when nil) for each stage.
func (s *Stages) Plan(x *cache.Index) *Plan {
	if x == nil {
		x = cache.NewIndex()
	}
	plan := &Plan{Dockerfile: s.opt.Dockerfile, Target: s.opt.Target}
	for _, stages := range s.stage {
		for i := range stages {
			plan.Stages = append(plan.Stages, planStage(x, &stages[i], s.opt.Candidates))
		}
		if len(s.stage) == 1 && len(stages) > 0 {
			plan.target = &stages[len(stages)-1]
		}
	}
	return plan
}

// memoResolver answers from the planner's memory before asking r.
type memoResolver struct {
	p *Planner
	r BaseResolver
}

func (m *memoResolver) ResolveBase(ctx context.Context, ref string, pl v1.Platform) (string, []byte, error) {
	key := ref + "@" + pl.String()
	m.p.mu.Lock()
	v, ok := m.p.seen[key]
	m.p.mu.Unlock()
	if ok {
		return v.digest, v.config, nil
	}
	d, cfg, err := m.r.ResolveBase(ctx, ref, pl)
	if err != nil {
		return "", nil, err
	}
	m.p.mu.Lock()
	if m.p.seen == nil {
		m.p.seen = map[string]resolvedBase{}
	}
	m.p.seen[key] = resolvedBase{digest: d, config: cfg}
	m.p.mu.Unlock()
	return d, cfg, nil
}

// PlanBuild plans with a new Planner: the library call strata build uses to
// choose cache imports. (Go allows no function named like the Plan type.)
func PlanBuild(ctx context.Context, opt PlanOptions) (*Plan, error) {
	var p Planner
	return p.Plan(ctx, opt)
}

func planStage(x *cache.Index, st *Stage, limit int) StagePlan {
	sp := StagePlan{Stage: st.Name, Platform: st.Platform, Base: st.Base, BaseDigest: st.BaseDigest, Skipped: st.Skipped, Lines: st.Lines}
	own := st.ownSteps()
	for _, s := range own {
		sp.Steps = append(sp.Steps, s.Text)
	}
	if st.Skipped != "" || len(own) == 0 {
		return sp
	}
	toks := make([]string, len(st.Steps))
	for i, s := range st.Steps {
		toks[i] = s.Token
	}
	keep := func(m *cache.Image) bool { return sameBase(m, st.BaseDiffIDs) }
	// Rank on the scores alone and keep the best; only they get the
	// per-step detail (a large index can offer many equal candidates).
	type ranked struct {
		c  Candidate
		mt cache.Match
	}
	var best []ranked
	for _, mt := range x.Matches(st.Platform, toks, st.BaseSteps+1, limit*4, keep) {
		r := ranked{candidate(mt, st, false), mt}
		i, _ := slices.BinarySearchFunc(best, r, func(a, b ranked) int { return rank(a.c, b.c) })
		if i >= limit {
			continue
		}
		best = slices.Insert(best, i, r)
		if len(best) > limit {
			best = best[:limit]
		}
	}
	for _, r := range best {
		sp.Candidates = append(sp.Candidates, candidate(r.mt, st, true))
	}
	return sp
}

// rank orders candidates best first: leading exact steps, steps matched,
// inline cache (BuildKit can import it), bytes likely reused, push time.
func rank(a, b Candidate) int {
	return cmp.Or(
		cmp.Compare(b.Exact, a.Exact),
		cmp.Compare(b.Matched, a.Matched),
		boolCmp(b.InlineCache, a.InlineCache),
		cmp.Compare(b.BytesLikely, a.BytesLikely),
		b.Pushed.Compare(a.Pushed),
		strings.Compare(a.Ref, b.Ref),
		strings.Compare(a.Digest, b.Digest),
	)
}

func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// sameBase reports whether m starts with the base image's layers.
func sameBase(m *cache.Image, diffIDs []string) bool {
	if len(m.Layers) < len(diffIDs) {
		return false
	}
	for i, d := range diffIDs {
		if m.Layers[i].DiffID != d {
			return false
		}
	}
	return true
}

// candidate scores a match; with detail it also says how each step matched.
func candidate(mt cache.Match, st *Stage, detail bool) Candidate {
	m := mt.Image
	c := Candidate{Ref: m.Ref, Digest: m.Digest, InlineCache: m.InlineCache, Pushed: m.Pushed}
	if detail {
		c.CacheRef = m.CacheRef()
		var chain strings.Builder
		for _, l := range m.Layers[:mt.Steps] {
			chain.WriteString(l.Digest)
		}
		c.chain = chain.String()
	}
	c.Matched = mt.Steps - st.BaseSteps
	exact, likely := true, true
	for i := st.BaseSteps; i < mt.Steps; i++ {
		q, have := st.Steps[i], m.Steps[i]
		kind := MatchExact
		if q.TextOnly {
			kind = MatchText
		} else if copyStep(q.Text) {
			kind = copyMatch(q, have)
		}
		// A step is no surer than the steps before it: cache keys chain.
		switch {
		case !likely:
			kind = MatchRebuild
		case !exact && kind == MatchExact:
			kind = MatchText
		}
		if detail {
			c.Match = append(c.Match, kind)
		}
		size := m.Layers[i].Size
		exact = exact && kind == MatchExact
		likely = likely && kind != MatchChanged && kind != MatchRebuild
		if exact {
			c.Exact++
			c.BytesReusable += size
		} else {
			c.BytesToBuild += size
		}
		if likely {
			c.BytesLikely += size
		}
	}
	return c
}

// copyMatch compares a COPY or ADD step with an indexed image's: by the
// sources digest strata recorded, else by the contents of the files of a
// small layer, else by text only.
func copyMatch(q, have cache.Step) string {
	mine := q.Sources
	if strings.HasPrefix(have.Sources, cache.FilesPrefix) {
		mine = q.Files
	}
	switch {
	case mine != "" && mine == have.Sources:
		return MatchExact
	case mine != "" && have.Sources != "":
		return MatchChanged
	}
	return MatchText
}

func copyStep(text string) bool {
	return strings.HasPrefix(text, "COPY ") || strings.HasPrefix(text, "ADD ")
}

// Import is a ref chosen as a cache import, and why.
type Import struct {
	Ref    string `json:"ref"`
	Reason string `json:"reason"`
	// Over every stage the image is a candidate of: steps matched by text,
	// leading steps matched exactly, and the layer bytes of those.
	StepsMatched  int   `json:"stepsMatched"`
	StepsExact    int   `json:"stepsExact"`
	BytesReusable int64 `json:"bytesReusable"`
	BytesLikely   int64 `json:"bytesLikely"`
}

// Imports returns at most n cache imports, best first: images that carry
// inline cache metadata and share steps with some stage, ordered by the
// bytes they are likely to save over all stages.
func (p *Plan) Imports(n int) []Import {
	type score struct {
		ref            string
		likely, exact  int64
		steps, matched int
		stages         []string
		pushed         time.Time
	}
	byRef := map[string]*score{}
	var order []*score
	for _, sp := range p.Stages {
		// One image under several tags is one candidate of the stage, and
		// so are images that share the layers of the matched steps: each
		// would offer BuildKit the same cache.
		seen, chosen := map[string]bool{}, 0
		for _, c := range sp.Candidates {
			// Only images BuildKit can import, whose first step of the
			// stage can hit; the three best per stage.
			if !c.InlineCache || c.Matched == 0 || c.Match[0] == MatchChanged || seen[c.CacheRef] || (c.chain != "" && seen[c.chain]) || chosen >= 3 {
				continue
			}
			seen[c.CacheRef], chosen = true, chosen+1
			if c.chain != "" {
				seen[c.chain] = true
			}
			s := byRef[c.CacheRef]
			if s == nil {
				s = &score{ref: c.CacheRef, pushed: c.Pushed}
				byRef[c.CacheRef] = s
				order = append(order, s)
			}
			s.likely += c.BytesLikely
			s.exact += c.BytesReusable
			s.steps += c.Exact
			s.matched += c.Matched
			s.stages = append(s.stages, fmt.Sprintf("%s (%s %d/%d, %d exact)", sp.Stage, sp.Platform, c.Matched, len(sp.Steps), c.Exact))
		}
	}
	slices.SortStableFunc(order, func(a, b *score) int {
		return cmp.Or(cmp.Compare(b.steps, a.steps), cmp.Compare(b.likely, a.likely), cmp.Compare(b.matched, a.matched), b.pushed.Compare(a.pushed))
	})
	var out []Import
	for _, s := range order {
		if len(out) >= n {
			break
		}
		out = append(out, Import{Ref: s.ref, Reason: fmt.Sprintf("shares steps with stage %s; %s reusable, %s likely",
			strings.Join(s.stages, ", "), cache.HumanBytes(s.exact), cache.HumanBytes(s.likely)),
			StepsMatched: s.matched, StepsExact: s.steps, BytesReusable: s.exact, BytesLikely: s.likely})
	}
	return out
}

// CacheImports returns at most n refs for BuildKit's cache imports, best
// first, only images that carry inline cache metadata.
func (p *Plan) CacheImports(n int) []string {
	var refs []string
	for _, im := range p.Imports(n) {
		refs = append(refs, im.Ref)
	}
	return refs
}
