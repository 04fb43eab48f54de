package lint

import (
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// suppressions are the rules turned off by comments: BuildKit's
// "# check=skip=" (file directive, or on the line above an instruction),
// strata's "# strata:ignore=" and hadolint's "# hadolint ignore=" above an
// instruction.
type suppressions struct {
	all   bool
	file  map[string]bool
	spans []span
}

type span struct {
	start, end int
	all        bool
	rules      map[string]bool
}

func newSuppressions(df *Dockerfile) *suppressions {
	s := &suppressions{file: map[string]bool{}}
	if v, _, _, ok := parser.ParseDirective("check", df.Source); ok {
		if c, err := linter.ParseLintOptions(v); err == nil {
			s.all = c.SkipAll
			for _, r := range c.SkipRules {
				s.file[r] = true
			}
		}
	}
	add := func(st *Step) {
		sp := span{start: st.Start, end: st.End, rules: map[string]bool{}}
		for _, c := range st.Comments {
			sp.parse(c)
		}
		if sp.all || len(sp.rules) > 0 {
			s.spans = append(s.spans, sp)
		}
	}
	for _, st := range df.MetaArgs {
		add(st)
	}
	for _, stage := range df.Stages {
		add(stage.From)
		for _, st := range stage.Steps {
			add(st)
		}
	}
	return s
}

func (sp *span) parse(comment string) {
	c := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(comment), "#"))
	lower := strings.ToLower(c)
	var list string
	switch {
	case strings.HasPrefix(lower, "check="):
		opts, err := linter.ParseLintOptions(c[len("check="):])
		if err != nil {
			return
		}
		sp.all = sp.all || opts.SkipAll
		for _, r := range opts.SkipRules {
			sp.rules[r] = true
		}
		return
	case strings.HasPrefix(lower, "strata:ignore="):
		list = c[len("strata:ignore="):]
	case strings.HasPrefix(lower, "hadolint ignore="):
		list = c[len("hadolint ignore="):]
	default:
		return
	}
	list, _, _ = strings.Cut(list, " ")
	for _, r := range strings.Split(list, ",") {
		r = strings.TrimSpace(r)
		if r == "all" {
			sp.all = true
		}
		for _, name := range fromHadolint(r) {
			sp.rules[name] = true
		}
		sp.rules[r] = true
	}
}

func (s *suppressions) suppressed(f Finding) bool {
	if s.all || s.file[f.Rule] {
		return true
	}
	for _, sp := range s.spans {
		if f.Start.Line >= sp.start && f.Start.Line <= sp.end && (sp.all || sp.rules[f.Rule]) {
			return true
		}
	}
	return false
}

// fromHadolint maps a hadolint code to the equivalent rules.
func fromHadolint(code string) []string {
	var out []string
	for _, r := range Rules() {
		for _, h := range r.Hadolint {
			if strings.EqualFold(h, code) {
				out = append(out, r.Name)
			}
		}
	}
	for name, codes := range hadolintBuildKit {
		for _, h := range codes {
			if strings.EqualFold(h, code) {
				out = append(out, name)
			}
		}
	}
	return out
}
