package frontend

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerui"
	"github.com/moby/buildkit/frontend/gateway/client"
	sublint "github.com/moby/buildkit/frontend/subrequests/lint"
	"github.com/moby/buildkit/solver/pb"

	"github.com/strata-build/strata/lint"
)

// findings lints the Dockerfile with strata's own rules (BuildKit's checks
// are reported by the stock builder itself), with the .dockerignore
// patterns the build uses, and drops what the check configuration cfg
// skips.
func findings(ctx context.Context, bc *dockerui.Client, src *dockerui.Source, cfg *linter.Config) []lint.Finding {
	if cfg.SkipAll {
		return nil
	}
	patterns, err := bc.DockerIgnorePatterns(ctx)
	if err != nil {
		patterns = nil // the build itself reports a broken ignore file
	}
	res, err := lint.Lint(src.Filename, src.Data, lint.Options{IgnorePatterns: patterns})
	if err != nil {
		// A Dockerfile that does not parse is reported by the build.
		return nil
	}
	var out []lint.Finding
	for _, f := range res.Findings {
		if f.BuildKit || slices.Contains(cfg.SkipRules, f.Rule) {
			continue
		}
		out = append(out, f)
	}
	return out
}

// checkConfig is BuildKit's check configuration: the BUILDKIT_DOCKERFILE_CHECK
// build argument, else the "# check=" directive.
func checkConfig(bc *dockerui.Client, dt []byte) (*linter.Config, error) {
	if bc.LinterConfig != nil {
		return bc.LinterConfig, nil
	}
	if v, _, _, ok := parser.ParseDirective("check", dt); ok {
		return linter.ParseLintOptions(v)
	}
	return &linter.Config{}, nil
}

// sendWarnings sends strata's findings as build warnings, with rule, line
// and URL, as BuildKit sends its own.
func sendWarnings(ctx context.Context, src *dockerui.Source, fs []lint.Finding) {
	for _, f := range fs {
		msg := linter.LintFormatShort(f.Rule, f.Message, f.Start.Line)
		src.Warn(ctx, msg, client.WarnOpts{
			Level:  1,
			Range:  toPB(f.Location()),
			Detail: [][]byte{[]byte(description(f.Rule))},
			URL:    f.URL,
		})
	}
}

// lintError is the error check=error=true fails the build with.
func lintError(fs []lint.Finding) error {
	var names []string
	for _, f := range fs {
		if !slices.Contains(names, f.Rule) {
			names = append(names, f.Rule)
		}
	}
	return fmt.Errorf("lint violation found for rules: %s", strings.Join(names, ", "))
}

// addLintResults adds strata's findings to the stock builder's answer to
// the frontend.lint subrequest, so `docker buildx build --check` shows both.
func addLintResults(ctx context.Context, bc *dockerui.Client, src *dockerui.Source, res *client.Result) (*client.Result, error) {
	cfg, err := checkConfig(bc, src.Data)
	if err != nil {
		return nil, err
	}
	fs := findings(ctx, bc, src, cfg)
	if len(fs) == 0 {
		return res, nil
	}
	var results sublint.LintResults
	if dt, ok := res.Metadata["result.json"]; ok {
		if err := json.Unmarshal(dt, &results); err != nil {
			return nil, fmt.Errorf("reading BuildKit's lint result: %w", err)
		}
	}
	if results.Error != nil {
		return res, nil // the Dockerfile does not build; BuildKit says why
	}
	idx := -1
	for i, s := range results.Sources {
		if s.Filename == src.Filename {
			idx = i
		}
	}
	if idx < 0 {
		idx = results.AddSource(src.SourceMap)
	}
	for _, f := range fs {
		results.AddWarning(f.Rule, description(f.Rule), f.URL, f.Message, idx, f.Location())
	}
	return results.ToResult(nil)
}

func toPB(rs []parser.Range) []*pb.Range {
	out := make([]*pb.Range, len(rs))
	for i, r := range rs {
		out[i] = &pb.Range{
			Start: &pb.Position{Line: int32(r.Start.Line), Character: int32(r.Start.Character)},
			End:   &pb.Position{Line: int32(r.End.Line), Character: int32(r.End.Character)},
		}
	}
	return out
}

// description is a rule's one-line description.
func description(rule string) string {
	for _, r := range lint.Rules() {
		if r.Name == rule {
			return r.Description
		}
	}
	return ""
}
