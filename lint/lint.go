package lint

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/moby/buildkit/frontend/dockerfile/parser"

	"github.com/strata-build/strata/buildcontext"
)

// errInternal marks a bug caught while linting; the fuzz target fails on it.
var errInternal = errors.New("internal error")

// Options says what to lint against.
type Options struct {
	// ContextDir is the build context; "" lints the Dockerfile alone.
	ContextDir string
	// Context, when set, is used instead of opening ContextDir.
	Context *buildcontext.Context
	// DockerfilePath locates <Dockerfile>.dockerignore when ContextDir is
	// opened; "" means <ContextDir>/Dockerfile.
	DockerfilePath string
	// Config holds rule settings; nil means the defaults.
	Config *Config
	// IgnorePatterns are .dockerignore patterns to use when no context is
	// given (a frontend has the ignore file but not the files): BuildKit's
	// CopyIgnoredFile check then runs as BuildKit runs it.
	IgnorePatterns []string
	// ContextReason says why ContextDir is the context (see
	// DiscoverContext); it is shown with the findings.
	ContextReason string
	// Repo tells which context files git tracks. When nil, the git index
	// of the repository the context lies in is read if a rule needs it.
	Repo *Repo
	// BuildArgs are the build arguments the build is given (--build-arg):
	// they set the ARGs they name when the rules expand variables, as in a
	// build. BuildKit's InvalidDefaultArgInFrom still reads the defaults.
	BuildArgs map[string]string
	// Parsed is BuildKit's parse of the Dockerfile when the caller has it
	// (a build parses its Dockerfile once); nil parses it.
	Parsed *parser.Result
}

// ContextInfo says which build context a Dockerfile was linted against,
// and why; Dir is "" when it was linted alone.
type ContextInfo struct {
	Dir    string `json:"dir"`
	Reason string `json:"reason"`
}

// NoContextReason is the reason given when a Dockerfile is linted alone.
const NoContextReason = "none: the rules read the Dockerfile alone"

// Result is what linting one Dockerfile found.
type Result struct {
	File       string
	Findings   []Finding // ordered by line, then rule
	Dockerfile *Dockerfile
	Context    *buildcontext.Context // nil when linted without a context
	// ContextInfo names the context as the caller gave it, and why.
	ContextInfo ContextInfo
	// Needs are ignore entries that would break this build: context paths
	// it reads on purpose (.git, for a build that runs git describe). A
	// fix of another Dockerfile that shares the ignore file must not add
	// them (see Rewrites).
	Needs []string
}

// LintFile lints the Dockerfile at path, against the context in opts (none
// unless ContextDir or Context is set); <path>.dockerignore is found beside it.
func LintFile(path string, opts Options) (*Result, error) {
	dt, err := os.ReadFile(path)
	if err != nil {
		return nil, &ParseError{File: path, Err: err}
	}
	if opts.DockerfilePath == "" {
		opts.DockerfilePath = path
	}
	return Lint(path, dt, opts)
}

// Lint lints Dockerfile bytes; name is used in findings. A Dockerfile that
// does not parse returns a *ParseError (errors.Is errs.ErrInput) with its
// line; an unreadable context returns an error wrapping errs.ErrInput.
func Lint(name string, dt []byte, opts Options) (res *Result, err error) {
	defer func() {
		if r := recover(); r != nil {
			res, err = nil, &ParseError{File: name, Err: fmt.Errorf("%w while linting: %v", errInternal, r)}
		}
	}()
	cfg := opts.Config
	if cfg == nil {
		cfg = DefaultConfig()
	}
	bk := newBuildKitChecks(dt)
	df, err := parse(name, dt, opts.Parsed, bk.linter, opts.BuildArgs)
	if err != nil {
		return nil, err
	}
	bctx := opts.Context
	if bctx == nil && opts.ContextDir != "" {
		if bctx, err = buildcontext.Open(opts.ContextDir, opts.DockerfilePath); err != nil {
			return nil, err
		}
	}
	p := &pass{df: df, ctx: bctx, cfg: cfg, ignore: opts.IgnorePatterns, repo: opts.Repo}
	if bctx != nil {
		p.ignore = bctx.Patterns()
	}
	if bctx != nil && copiesContext(df) {
		// Walk once, up front, so an unreadable context is an error here
		// rather than a silent gap in the rules.
		if _, err := bctx.Entries(); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	for _, check := range checks {
		check(p)
	}
	if cfg.buildKitChecks() {
		bk.run(p)
	}
	res = &Result{File: name, Dockerfile: df, Context: bctx, ContextInfo: contextInfo(opts, bctx), Needs: p.needs}
	sup := newSuppressions(df)
	for _, f := range p.findings {
		if sup.suppressed(f) {
			continue
		}
		if !cfg.apply(&f) {
			continue
		}
		f.File = name
		res.Findings = append(res.Findings, f)
	}
	slices.SortStableFunc(res.Findings, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(a.Start.Line, b.Start.Line), cmp.Compare(a.Rule, b.Rule))
	})
	return res, nil
}

// checks are strata's rule families, run in order on each Dockerfile.
var checks = []func(*pass){
	checkDependencyOrder,
	checkVolatileArgs,
	checkPackageIndex,
	checkRemotes,
	checkContext,
	checkStableAfterVolatile,
	checkCacheMounts,
	checkVolumes,
	checkNonDeterministic,
}

// pass is the state of one lint run.
type pass struct {
	df       *Dockerfile
	ctx      *buildcontext.Context
	cfg      *Config
	findings []Finding
	copies   map[*Step]*copySet
	ignore   []string // exclude patterns of the ignore file
	repo     *Repo
	repoRead bool     // repo was looked for
	needs    []string // see Result.Needs
	// scripts and inputs hold what packageScripts and installInputs read
	// from the context, once per lint.
	scripts     map[string]string
	scriptsRead bool
	inputs      map[*ecosystem][]string
}

// gitRepo returns the repository the context lies in, reading its index
// the first time a rule asks; nil outside a repository.
func (p *pass) gitRepo() *Repo {
	if p.repo != nil || p.repoRead || p.ctx == nil {
		return p.repo
	}
	p.repoRead = true
	if root := findRepoRoot(p.ctx.Dir()); root != "" {
		p.repo, _ = OpenRepo(root)
	}
	return p.repo
}

func contextInfo(opts Options, bctx *buildcontext.Context) ContextInfo {
	if bctx == nil {
		if opts.ContextReason != "" {
			return ContextInfo{Reason: opts.ContextReason}
		}
		return ContextInfo{Reason: NoContextReason}
	}
	ci := ContextInfo{Dir: opts.ContextDir, Reason: opts.ContextReason}
	if ci.Dir == "" {
		ci.Dir = bctx.Dir()
	}
	if ci.Reason == "" {
		ci.Reason = "given"
	}
	return ci
}

func (p *pass) report(r *RuleInfo, s *Step, msg string, fx *fix) {
	f := Finding{Rule: r.Name, Severity: r.Severity, Start: s.Pos(), End: Position{Line: s.End}, Message: msg, URL: r.URL, BuildKit: r.BuildKit, fix: fx}
	f.Fixable = fx != nil
	p.findings = append(p.findings, f)
}

// Max returns the highest severity among findings, 0 when there are none.
func Max(fs []Finding) Severity {
	var m Severity
	for _, f := range fs {
		m = max(m, f.Severity)
	}
	return m
}

// ParseErrorRule names the pseudo-rule under which ErrorResult reports a
// Dockerfile that does not parse.
const ParseErrorRule = "ParseError"

// ErrorResult turns a lint error into a result with one error finding, so
// machine-readable outputs carry files that could not be linted.
func ErrorResult(file string, err error) *Result {
	f := Finding{Rule: ParseErrorRule, Severity: SeverityError, File: file, Start: Position{Line: 1, Column: 1}, End: Position{Line: 1}, Message: err.Error()}
	var pe *ParseError
	if errors.As(err, &pe) {
		f.Message = printable(pe.Err.Error())
		if pe.Line > 0 {
			f.Start.Line, f.End.Line = pe.Line, pe.Line
		}
	}
	return &Result{File: file, Findings: []Finding{f}}
}

func copiesContext(df *Dockerfile) bool {
	for _, st := range df.Stages {
		for _, s := range st.Steps {
			if fromContext(s) {
				return true
			}
		}
	}
	return false
}
