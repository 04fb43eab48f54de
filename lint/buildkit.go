package lint

import (
	"path"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/patternmatcher"
)

// BuildKit's own checks. dockerfile2llb.DockerfileLint would run them all,
// but it imports BuildKit's client (llb, gateway), which this package must
// not; so the parse-time checks come from instructions.Parse with a linter,
// and the dispatch-time ones are computed here the way dockerfile2llb's
// validations do. Messages and URLs are BuildKit's own (linter.Rule*).

// BuildKitRules lists BuildKit's checks that strata runs.
func BuildKitRules() []*RuleInfo {
	list := []struct{ name, desc, url string }{
		{linter.RuleStageNameCasing.Name, linter.RuleStageNameCasing.Description, linter.RuleStageNameCasing.URL},
		{linter.RuleFromAsCasing.Name, linter.RuleFromAsCasing.Description, linter.RuleFromAsCasing.URL},
		{linter.RuleNoEmptyContinuation.Name, linter.RuleNoEmptyContinuation.Description, linter.RuleNoEmptyContinuation.URL},
		{linter.RuleConsistentInstructionCasing.Name, linter.RuleConsistentInstructionCasing.Description, linter.RuleConsistentInstructionCasing.URL},
		{linter.RuleDuplicateStageName.Name, linter.RuleDuplicateStageName.Description, linter.RuleDuplicateStageName.URL},
		{linter.RuleReservedStageName.Name, linter.RuleReservedStageName.Description, linter.RuleReservedStageName.URL},
		{linter.RuleJSONArgsRecommended.Name, linter.RuleJSONArgsRecommended.Description, linter.RuleJSONArgsRecommended.URL},
		{linter.RuleMaintainerDeprecated.Name, linter.RuleMaintainerDeprecated.Description, linter.RuleMaintainerDeprecated.URL},
		{linter.RuleUndefinedArgInFrom.Name, linter.RuleUndefinedArgInFrom.Description, linter.RuleUndefinedArgInFrom.URL},
		{linter.RuleWorkdirRelativePath.Name, linter.RuleWorkdirRelativePath.Description, linter.RuleWorkdirRelativePath.URL},
		{linter.RuleMultipleInstructionsDisallowed.Name, linter.RuleMultipleInstructionsDisallowed.Description, linter.RuleMultipleInstructionsDisallowed.URL},
		{linter.RuleLegacyKeyValueFormat.Name, linter.RuleLegacyKeyValueFormat.Description, linter.RuleLegacyKeyValueFormat.URL},
		{linter.RuleRedundantTargetPlatform.Name, linter.RuleRedundantTargetPlatform.Description, linter.RuleRedundantTargetPlatform.URL},
		{linter.RuleSecretsUsedInArgOrEnv.Name, linter.RuleSecretsUsedInArgOrEnv.Description, linter.RuleSecretsUsedInArgOrEnv.URL},
		{linter.RuleCopyIgnoredFile.Name, linter.RuleCopyIgnoredFile.Description, linter.RuleCopyIgnoredFile.URL},
		{linter.RuleExposeProtoCasing.Name, linter.RuleExposeProtoCasing.Description, linter.RuleExposeProtoCasing.URL},
		{linter.RuleExposeInvalidFormat.Name, linter.RuleExposeInvalidFormat.Description, linter.RuleExposeInvalidFormat.URL},
		{linter.RuleFromPlatformFlagConstDisallowed.Name, linter.RuleFromPlatformFlagConstDisallowed.Description, linter.RuleFromPlatformFlagConstDisallowed.URL},
		{linter.RuleInvalidDefaultArgInFrom.Name, linter.RuleInvalidDefaultArgInFrom.Description, linter.RuleInvalidDefaultArgInFrom.URL},
		{linter.RuleInvalidDefinitionDescription.Name, linter.RuleInvalidDefinitionDescription.Description, linter.RuleInvalidDefinitionDescription.URL},
	}
	out := make([]*RuleInfo, len(list))
	for i, r := range list {
		out[i] = &RuleInfo{Name: r.name, Description: r.desc, URL: r.url, Severity: SeverityWarning, BuildKit: true, Hadolint: hadolintBuildKit[r.name]}
	}
	return out
}

// hadolintBuildKit maps BuildKit checks to the hadolint codes that find the same thing.
var hadolintBuildKit = map[string][]string{
	"MaintainerDeprecated":           {"DL4000"},
	"WorkdirRelativePath":            {"DL3000"},
	"JSONArgsRecommended":            {"DL3025"},
	"DuplicateStageName":             {"DL3024"},
	"MultipleInstructionsDisallowed": {"DL4003", "DL4004"},
}

type buildKitChecks struct {
	linter   *linter.Linter
	warnings []Finding
	severity Severity // error with "# check=error=true", as BuildKit fails the build then
}

func newBuildKitChecks(dt []byte) *buildKitChecks {
	b := &buildKitChecks{severity: SeverityWarning}
	cfg := &linter.Config{}
	if v, _, _, ok := parser.ParseDirective("check", dt); ok {
		if c, err := linter.ParseLintOptions(v); err == nil {
			cfg.ExperimentalAll, cfg.ExperimentalRules = c.ExperimentalAll, c.ExperimentalRules
			if c.ReturnAsError {
				b.severity = SeverityError
			}
		}
	}
	cfg.Warn = b.warn
	b.linter = linter.New(cfg)
	return b
}

func (b *buildKitChecks) warn(rule, _, url, msg string, loc []parser.Range) {
	f := Finding{Rule: rule, Severity: b.severity, Message: msg, URL: url, BuildKit: true}
	if len(loc) > 0 {
		f.Start = Position{Line: loc[0].Start.Line, Column: loc[0].Start.Character + 1}
		f.End = Position{Line: loc[len(loc)-1].End.Line}
	}
	b.warnings = append(b.warnings, f)
}

func (b *buildKitChecks) run(p *pass) {
	df := p.df
	for _, w := range df.Warnings {
		if w.URL == linter.RuleNoEmptyContinuation.URL && w.Location != nil {
			b.linter.Run(&linter.RuleNoEmptyContinuation, []parser.Range{*w.Location}, linter.RuleNoEmptyContinuation.Format())
		}
	}
	b.casing(df)
	names := map[string]bool{}
	for _, st := range df.Stages {
		loc := st.From.Node.Location()
		if st.Name != "" {
			if st.Name == "context" || st.Name == "scratch" {
				b.linter.Run(&linter.RuleReservedStageName, loc, linter.RuleReservedStageName.Format(st.Name))
			}
			if names[st.Name] {
				b.linter.Run(&linter.RuleDuplicateStageName, loc, linter.RuleDuplicateStageName.Format(st.Name))
			}
			names[st.Name] = true
		}
		b.fromArgs(df, st)
		b.platformConst(df, st, df.global, loc)
		b.defaultArgInFrom(df, st, df.global, loc)
		b.stage(p, st)
	}
	p.findings = append(p.findings, b.warnings...)
}

func (b *buildKitChecks) casing(df *Dockerfile) {
	var lower, upper int
	count := func(s string) {
		switch s {
		case strings.ToLower(s):
			lower++
		case strings.ToUpper(s):
			upper++
		}
	}
	each := func(fn func(name string, loc []parser.Range)) {
		for _, st := range df.Stages {
			fn(st.From.Node.Value, st.From.Node.Location())
			for _, s := range st.Steps {
				fn(s.Node.Value, s.Node.Location())
			}
		}
	}
	each(func(n string, _ []parser.Range) { count(n) })
	majorityLower := lower > upper
	each(func(n string, loc []parser.Range) {
		want := ""
		if majorityLower && strings.ToLower(n) != n {
			want = "lowercase"
		} else if !majorityLower && strings.ToUpper(n) != n {
			want = "uppercase"
		}
		if want != "" {
			b.linter.Run(&linter.RuleConsistentInstructionCasing, loc, linter.RuleConsistentInstructionCasing.Format(n, want))
		}
	})
}

var platformArgs = map[string]bool{
	"TARGETPLATFORM": true, "TARGETOS": true, "TARGETARCH": true, "TARGETVARIANT": true,
	"BUILDPLATFORM": true, "BUILDOS": true, "BUILDARCH": true, "BUILDVARIANT": true,
}

func (b *buildKitChecks) fromArgs(df *Dockerfile, st *Stage) {
	known := map[string]bool{}
	for _, m := range df.MetaArgs {
		for _, a := range m.Cmd.(*instructions.ArgCommand).Args {
			known[a.Key] = true
		}
	}
	loc := st.From.Node.Location()
	for _, word := range []string{st.raw.BaseName, st.raw.Platform} {
		if word == "" {
			continue
		}
		res, err := expandMatches(df.lex, word, emptyEnv{})
		if err != nil {
			continue
		}
		for v := range res.Unmatched {
			if !known[v] && !platformArgs[v] {
				b.linter.Run(&linter.RuleUndefinedArgInFrom, loc, linter.RuleUndefinedArgInFrom.Format(v, ""))
			}
		}
	}
	if p := strings.TrimSpace(st.raw.Platform); p == "$TARGETPLATFORM" || p == "${TARGETPLATFORM}" {
		b.linter.Run(&linter.RuleRedundantTargetPlatform, loc, linter.RuleRedundantTargetPlatform.Format(p))
	}
}

type emptyEnv struct{}

func (emptyEnv) Get(string) (string, bool) { return "", false }
func (emptyEnv) Keys() []string            { return nil }

func (b *buildKitChecks) stage(p *pass, st *Stage) {
	var cmd, entrypoint, health []parser.Range
	used := func(prev *[]parser.Range, c instructions.Command) {
		if *prev != nil {
			b.linter.Run(&linter.RuleMultipleInstructionsDisallowed, *prev, linter.RuleMultipleInstructionsDisallowed.Format(c.Name()))
		}
		*prev = c.Location()
	}
	hasShell, workdirSet := false, false
	for anc := st.Parent; anc != nil; anc = anc.Parent {
		for _, s := range anc.Steps {
			switch s.Cmd.(type) {
			case *instructions.ShellCommand:
				hasShell = true
			case *instructions.WorkdirCommand:
				workdirSet = true
			}
		}
	}
	for _, s := range st.Steps {
		loc := s.Cmd.Location()
		switch c := s.Cmd.(type) {
		case *instructions.ShellCommand:
			hasShell = true
		case *instructions.CmdCommand:
			used(&cmd, c)
			if c.PrependShell && !hasShell {
				b.linter.Run(&linter.RuleJSONArgsRecommended, loc, linter.RuleJSONArgsRecommended.Format(c.Name()))
			}
		case *instructions.EntrypointCommand:
			used(&entrypoint, c)
			if c.PrependShell && !hasShell {
				b.linter.Run(&linter.RuleJSONArgsRecommended, loc, linter.RuleJSONArgsRecommended.Format(c.Name()))
			}
		case *instructions.HealthCheckCommand:
			used(&health, c)
		case *instructions.WorkdirCommand:
			// BuildKit checks the path once expanded ("/app" is /app).
			wd := c.Path
			if w, _, err := p.df.lex.ProcessWord(strings.ToValidUTF8(c.Path, "\uFFFD"), s.Scope); err == nil {
				wd = w
			}
			if !workdirSet && !path.IsAbs(wd) && !strings.HasPrefix(c.Path, "$") {
				b.linter.Run(&linter.RuleWorkdirRelativePath, loc, linter.RuleWorkdirRelativePath.Format(c.Path))
			}
			workdirSet = true
		case *instructions.EnvCommand:
			for _, e := range c.Env {
				if e.NoDelim {
					b.linter.Run(&linter.RuleLegacyKeyValueFormat, loc, linter.RuleLegacyKeyValueFormat.Format(c.Name()))
				}
				b.secretKey("ENV", e.Key, loc)
			}
		case *instructions.LabelCommand:
			for _, l := range c.Labels {
				if l.NoDelim {
					b.linter.Run(&linter.RuleLegacyKeyValueFormat, loc, linter.RuleLegacyKeyValueFormat.Format(c.Name()))
				}
			}
		case *instructions.ArgCommand:
			for _, a := range c.Args {
				b.secretKey("ARG", a.Key, loc)
			}
		case *instructions.CopyCommand:
			if c.From == "" {
				b.copyIgnored(p, "Copy", s, loc)
			}
		case *instructions.AddCommand:
			b.copyIgnored(p, "Add", s, loc)
		case *instructions.ExposeCommand:
			b.expose(p.df, s, c)
		}
	}
}

var (
	secretDeny  = mustRegexp(`(?i)(?:_|^)(?:apikey|auth|credential|credentials|key|password|pword|passwd|secret|token)(?:_|$)`)
	secretAllow = mustRegexp(`(?i)(?:_|^)(?:public|file|version)(?:_|$)`)
)

func (b *buildKitChecks) secretKey(instruction, key string, loc []parser.Range) {
	if secretDeny.MatchString(key) && !secretAllow.MatchString(key) {
		b.linter.Run(&linter.RuleSecretsUsedInArgOrEnv, loc, linter.RuleSecretsUsedInArgOrEnv.Format(instruction, key))
	}
}

// copyIgnored is BuildKit's CopyIgnoredFile: a source the ignore file
// excludes. Like BuildKit it says nothing when the ignore file has "!" lines.
func (b *buildKitChecks) copyIgnored(p *pass, cmd string, s *Step, loc []parser.Range) {
	if len(p.ignore) == 0 {
		return
	}
	m, err := patternmatcher.New(p.ignore)
	if err != nil || m.Exclusions() {
		return
	}
	for _, src := range s.Sources {
		if isURL(src) {
			continue
		}
		src = path.Clean(strings.TrimPrefix(src, "/"))
		if src == "." {
			continue
		}
		if ok, _ := m.MatchesOrParentMatches(src); ok {
			b.linter.Run(&linter.RuleCopyIgnoredFile, loc, linter.RuleCopyIgnoredFile.Format(cmd, src))
		}
	}
}
