// Package lint finds what makes a Dockerfile rebuild more than it must, and
// runs BuildKit's own build checks in the same pass.
//
// A Dockerfile is parsed with BuildKit's parser and instructions packages,
// RUN bodies with mvdan.cc/sh, and, when a build context is given, COPY and
// ADD sources are expanded against the files that survive the ignore file
// (package buildcontext). Rules are values: a RuleInfo with a typed message
// constructor. The package never imports BuildKit's client, gateway or solver.
//
// A frontend lints the Dockerfile bytes it was given with Lint (no context
// directory; Options.IgnorePatterns from the ignore file if it has it) and
// sends each Finding as a build warning: Rule, URL, Message, Severity and
// Location (BuildKit line ranges); RuleByName gives a rule's description.
// The command line adds the context directory, so COPY sources are expanded
// against the files that really reach the build.
package lint

import (
	"fmt"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// Severity orders findings; a run fails when a finding is at or above the
// failure level.
type Severity int

// Severities, lowest first.
const (
	SeverityInfo Severity = iota + 1
	SeverityWarning
	SeverityError
	// SeverityNone as a failure level means nothing fails the run.
	SeverityNone
)

func (s Severity) String() string {
	switch s {
	case SeverityInfo:
		return "info"
	case SeverityWarning:
		return "warning"
	case SeverityError:
		return "error"
	case SeverityNone:
		return "none"
	}
	return fmt.Sprintf("severity(%d)", int(s))
}

// ParseSeverity reads "error", "warning", "info" or "none".
func ParseSeverity(s string) (Severity, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "error":
		return SeverityError, nil
	case "warning", "warn":
		return SeverityWarning, nil
	case "info":
		return SeverityInfo, nil
	case "none", "off":
		return SeverityNone, nil
	}
	return 0, fmt.Errorf("unknown severity %q (want error, warning, info or none)", s)
}

// MarshalText writes the severity name.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a severity name.
func (s *Severity) UnmarshalText(b []byte) error {
	v, err := ParseSeverity(string(b))
	*s = v
	return err
}

// DocsBase is where the rule pages live; a rule's URL is DocsBase + Name + ".md".
const DocsBase = "https://github.com/strata-build/strata/blob/main/docs/rules/"

// RuleInfo describes a rule: what it finds, how bad it is, where it is documented.
type RuleInfo struct {
	Name        string   // CamelCase, like BuildKit's rules
	Severity    Severity // default severity
	Description string   // one sentence
	URL         string
	Fixable     bool   // --fix can rewrite it
	BuildKit    bool   // one of BuildKit's own build checks
	Explain     string // why it matters for the cache; the body of the docs page
	Bad, Good   string // example Dockerfiles for the docs page
	Hadolint    []string
}

// Rule is a rule with its typed message constructor.
type Rule[F any] struct {
	RuleInfo
	Format F
}

// Info returns the rule's description.
func (r *Rule[F]) Info() *RuleInfo { return &r.RuleInfo }

func docURL(name string) string { return DocsBase + name + ".md" }

// Rules returns strata's own rules, in their documented order.
func Rules() []*RuleInfo {
	return []*RuleInfo{
		RuleSourceCopiedBeforeDependencyInstall.Info(),
		RuleLockfileNotCopied.Info(),
		RuleVolatileArgBeforeRun.Info(),
		RulePackageIndexUpdateSeparated.Info(),
		RuleUnpinnedRemoteInRun.Info(),
		RuleAddUrlWithoutChecksum.Info(),
		RuleMissingDockerignore.Info(),
		RuleContextLeaksIntoCopy.Info(),
		RuleSecretInContext.Info(),
		RuleStableStepAfterVolatileStep.Info(),
		RuleCacheMountMissing.Info(),
		RuleVolumeUsedAsBuildCache.Info(),
		RuleNonDeterministicRun.Info(),
		RuleEnvironmentConfigBaked.Info(),
	}
}

// Position is a place in a Dockerfile; lines start at 1, columns at 1
// (0 when unknown).
type Position struct {
	Line, Column int
}

// Finding is one problem found in one Dockerfile.
type Finding struct {
	Rule     string
	Severity Severity
	File     string
	Start    Position
	End      Position
	Message  string
	URL      string
	Fixable  bool
	BuildKit bool // from BuildKit's own checks
	fix      *fix
}

// Location returns the finding's line range in BuildKit's form, for
// sending it as a build warning (lines 1-based, characters 0-based).
func (f Finding) Location() []parser.Range {
	end := max(f.End.Line, f.Start.Line)
	return []parser.Range{{
		Start: parser.Position{Line: f.Start.Line, Character: max(f.Start.Column-1, 0)},
		End:   parser.Position{Line: end},
	}}
}

// Failed reports whether any finding is at or above level.
func Failed(fs []Finding, level Severity) bool {
	for _, f := range fs {
		if f.Severity >= level {
			return true
		}
	}
	return false
}

// RuleByName returns the description of a strata or BuildKit rule, or nil.
func RuleByName(name string) *RuleInfo {
	for _, r := range append(Rules(), BuildKitRules()...) {
		if r.Name == name {
			return r
		}
	}
	return nil
}
