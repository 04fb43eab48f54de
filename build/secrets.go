package build

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/linter"

	"github.com/strata-build/strata/buildcontext"
	"github.com/strata-build/strata/dockerfile"
	"github.com/strata-build/strata/errs"
	"github.com/strata-build/strata/lint"
)

// SecretRules are the lint rules whose findings fail `strata build` before
// anything is built: a secret that reaches an image cannot be taken back
// once the image is pushed. The frontend image reports them as warnings,
// as BuildKit does.
var SecretRules = []string{lint.RuleSecretInContext.Name, linter.RuleSecretsUsedInArgOrEnv.Name}

// checkSecrets lints the Dockerfile against the context this build sends
// (the files that survive .dockerignore) and returns an error naming the
// first secret finding in a stage the build needs (ARGs before the first
// FROM count for every build). Rules skipped by "# check=skip=", by the
// BUILDKIT_DOCKERFILE_CHECK build argument or by .strata.yaml are not
// checked. A Dockerfile that does not parse (df nil), or a context that
// cannot be read (bc nil), is left to the build to report.
func checkSecrets(opt Options, bc *buildcontext.Context, df *dockerfile.File) error {
	if bc == nil || df == nil {
		return nil
	}
	cfg, err := lint.ResolveConfig("", bc.Dir()) // .strata.yaml from the context upward, else the defaults
	if err != nil {
		return err
	}
	skip := map[string]bool{}
	if v, ok := opt.BuildArgs["BUILDKIT_DOCKERFILE_CHECK"]; ok {
		lc, err := linter.ParseLintOptions(v)
		if err != nil {
			return errs.WithHint(errs.Usagef("--build-arg BUILDKIT_DOCKERFILE_CHECK=%s: %v", v, err), "write e.g. skip=SecretsUsedInArgOrEnv")
		}
		if lc.SkipAll {
			return nil
		}
		for _, r := range lc.SkipRules {
			skip[r] = true
		}
	}
	res, err := lint.Lint(df.Name, df.Source, lint.Options{Context: bc, Config: cfg, DockerfilePath: df.Name, Parsed: df.AST, BuildArgs: opt.BuildArgs})
	if err != nil {
		return nil
	}
	built := builtStages(df, opt)
	var bad []lint.Finding
	for _, f := range res.Findings {
		if slices.Contains(SecretRules, f.Rule) && !skip[f.Rule] && inStages(df, built, f.Start.Line) {
			bad = append(bad, f)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	f := bad[0]
	more := ""
	if len(bad) > 1 {
		more = fmt.Sprintf(" (and %d more secret findings; 'strata lint' lists them)", len(bad)-1)
	}
	file := f.File
	if wd, err := os.Getwd(); err == nil {
		if rel, err := filepath.Rel(wd, file); err == nil && !strings.HasPrefix(rel, "..") {
			file = rel
		}
	}
	hint := fmt.Sprintf("if it is not a secret, skip the check with '# check=skip=%s' in the Dockerfile", f.Rule)
	if f.Rule == linter.RuleSecretsUsedInArgOrEnv.Name {
		hint = "pass secrets with --secret and RUN --mount=type=secret; " + hint
	}
	return errs.WithHint(fmt.Errorf("%w: %s:%d: %s: %s%s", errs.ErrBuildFailed, file, f.Start.Line, f.Rule, f.Message, more), hint)
}

// builtStages returns the stages a build of opt's target needs on any of
// its platforms. nil means every stage: the target is not in the
// Dockerfile, or a FROM or a platform cannot be read (the build reports it).
func builtStages(df *dockerfile.File, opt Options) map[*dockerfile.Stage]bool {
	plats := opt.Platforms
	if len(plats) == 0 {
		plats = []string{""}
	}
	need := map[*dockerfile.Stage]bool{}
	for _, p := range plats {
		b, err := opt.resolveTarget(df, p)
		if err != nil {
			return nil
		}
		for _, st := range b.Stages() {
			need[st] = true
		}
	}
	return need
}

// inStages reports whether line is before the first FROM (global ARGs) or
// inside one of the stages (all of them when stages is nil).
func inStages(df *dockerfile.File, stages map[*dockerfile.Stage]bool, line int) bool {
	if stages == nil || line < df.Stages[0].Start {
		return true
	}
	for st := range stages {
		if line >= st.Start && line <= st.End {
			return true
		}
	}
	return false
}
