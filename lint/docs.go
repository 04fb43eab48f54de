package lint

import (
	"fmt"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/linter"
)

//go:generate go test -run TestDocs -update .

// RuleDoc renders the documentation page of a strata rule from its data.
func RuleDoc(r *RuleInfo) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n", r.Name)
	fmt.Fprintf(&b, "<!-- generated from lint.Rule%s by `go generate ./lint`; do not edit -->\n\n", r.Name)
	fmt.Fprintf(&b, "%s.\n\n", strings.TrimSuffix(r.Description, "."))
	fmt.Fprintf(&b, "| default severity | fixable by `strata lint --fix` |\n|---|---|\n| %s | %s |\n\n", r.Severity, yesNo(r.Fixable))
	fmt.Fprintf(&b, "## Why it matters\n\n%s\n\n", r.Explain)
	if r.Bad != "" {
		fmt.Fprintf(&b, "## Example\n\nFlagged:\n\n```dockerfile\n%s```\n\n", r.Bad)
	}
	if r.Good != "" {
		fmt.Fprintf(&b, "Better:\n\n```dockerfile\n%s```\n\n", r.Good)
	}
	b.WriteString("## Suppressing\n\n")
	fmt.Fprintf(&b, "On the line above the instruction: `# strata:ignore=%s` or `# check=skip=%s`.\n", r.Name, r.Name)
	fmt.Fprintf(&b, "For the whole file, as the first lines: `# check=skip=%s`.\n", r.Name)
	fmt.Fprintf(&b, "In `.strata.yaml`: `rules: {%s: off}` (or a severity: `error`, `warning`, `info`).\n", r.Name)
	if len(r.Hadolint) > 0 {
		fmt.Fprintf(&b, "`# hadolint ignore=%s` is read too.\n", strings.Join(r.Hadolint, ","))
	}
	return b.String()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// IndexDoc renders the rule index of docs/lint.md from the rule data.
func IndexDoc() string {
	var b strings.Builder
	b.WriteString("| rule | severity | fix | what it finds |\n|---|---|---|---|\n")
	for _, r := range Rules() {
		fix := ""
		if r.Fixable {
			fix = "yes"
		}
		fmt.Fprintf(&b, "| [%s](rules/%s.md) | %s | %s | %s |\n", r.Name, r.Name, r.Severity, fix, r.Description)
	}
	b.WriteString("\nBuildKit's own checks run in the same pass (severity warning):\n\n")
	for _, r := range BuildKitRules() {
		fmt.Fprintf(&b, "- [%s](%s): %s\n", r.Name, r.URL, r.Description)
	}
	fmt.Fprintf(&b, "\nTwo of BuildKit's checks need the base image's configuration, which a linter that does not\n"+
		"pull images cannot know: [%s](%s) (a variable that only the base image's environment may define)\n"+
		"and %s. `strata build` and `docker buildx build --check` with the strata frontend report\n"+
		"them, as BuildKit's stock builder runs them there.\n",
		linter.RuleUndefinedVar.Name, linter.RuleUndefinedVar.URL, linter.RuleInvalidBaseImagePlatform.Name)
	return b.String()
}
