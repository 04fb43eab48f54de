package lint

import (
	"strings"

	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// expose is BuildKit's EXPOSE validation: ExposeProtoCasing and
// ExposeInvalidFormat (dockerfile2llb/convert_expose.go).
func (b *buildKitChecks) expose(df *Dockerfile, s *Step, c *instructions.ExposeCommand) {
	loc := c.Location()
	for _, raw := range c.Ports {
		words, err := df.lex.ProcessWords(strings.ToValidUTF8(raw, "\uFFFD"), s.Scope)
		if err != nil {
			continue
		}
		for _, p := range words {
			parts := strings.Split(p, ":")
			container := parts[len(parts)-1]
			_, proto, _ := strings.Cut(container, "/")
			if proto != strings.ToLower(proto) {
				b.linter.Run(&linter.RuleExposeProtoCasing, loc, linter.RuleExposeProtoCasing.Format(p))
			}
			if len(parts) > 1 {
				b.linter.Run(&linter.RuleExposeInvalidFormat, loc, linter.RuleExposeInvalidFormat.Format(p))
			}
		}
	}
}

// platformConst is FromPlatformFlagConstDisallowed: a constant --platform
// on FROM, unless the stage name mentions its OS or architecture.
func (b *buildKitChecks) platformConst(df *Dockerfile, st *Stage, global *Scope, loc []parser.Range) {
	if st.raw.Platform == "" {
		return
	}
	res, err := expandMatches(df.lex, st.raw.Platform, global)
	if err != nil || len(res.Matched) > 0 || len(res.Unmatched) > 0 {
		return
	}
	p, err := platforms.Parse(res.Result)
	if err != nil || strings.Contains(st.Name, p.OS) || strings.Contains(st.Name, p.Architecture) {
		return
	}
	b.linter.Run(&linter.RuleFromPlatformFlagConstDisallowed, loc, linter.RuleFromPlatformFlagConstDisallowed.Format(res.Result))
}

// defaultArgInFrom is InvalidDefaultArgInFrom: with only the ARG defaults,
// the FROM must still name a valid image.
func (b *buildKitChecks) defaultArgInFrom(df *Dockerfile, st *Stage, global *Scope, loc []parser.Range) {
	if !strings.Contains(st.raw.BaseName, "$") {
		return
	}
	res, err := expandMatches(df.lex, st.raw.BaseName, global)
	if err != nil {
		return
	}
	if _, err := reference.ParseNormalizedNamed(res.Result); err != nil {
		b.linter.Run(&linter.RuleInvalidDefaultArgInFrom, loc, linter.RuleInvalidDefaultArgInFrom.Format(st.raw.BaseName))
	}
}
