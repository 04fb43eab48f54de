package lint

import (
	"fmt"
	"slices"
	"strings"
)

// RuleNonDeterministicRun: rule 13.
var RuleNonDeterministicRun = Rule[func(what string) string]{
	RuleInfo: RuleInfo{
		Name:        "NonDeterministicRun",
		Severity:    SeverityWarning,
		Description: "A RUN writes the date, $RANDOM or the current commit into the image",
		URL:         docURL("NonDeterministicRun"),
		Explain: "A layer that holds the build time or a random value has a new digest every build, so identical content is " +
			"pushed and pulled again and everything built on it misses the cache. Use SOURCE_DATE_EPOCH, or pass such values " +
			"as labels at the end of the final stage. The commit of a repository the build itself cloned (git clone, then git " +
			"rev-parse HEAD) changes only with what the clone fetched and is not reported.",
		Bad:  "FROM alpine\nRUN date > /build-date\n",
		Good: "FROM alpine\nARG SOURCE_DATE_EPOCH\nLABEL org.opencontainers.image.created=$SOURCE_DATE_EPOCH\n",
	},
	Format: func(what string) string {
		return fmt.Sprintf("%s: the layer digest changes every build, so identical content is pushed again; use SOURCE_DATE_EPOCH or a label", what)
	},
}

func checkNonDeterministic(p *pass) {
	isClone := func(c *ShellCommand) bool { return c.Is("git", "clone") }
	clones := map[*Stage]bool{} // the stage, or one it is built on, clones
	for _, st := range p.df.Stages {
		// git in a checkout the build cloned reads that checkout's commit,
		// which changes only with what the clone fetched.
		cloned := st.Parent != nil && clones[st.Parent]
		for _, s := range st.Steps {
			if s.Script == nil {
				continue
			}
			cloned = cloned || has(s.Script, isClone)
			if what := nonDeterministic(s.Script, cloned); what != "" {
				p.report(RuleNonDeterministicRun.Info(), s, RuleNonDeterministicRun.Format(what), nil)
			}
		}
		clones[st] = cloned
	}
}

func nonDeterministic(sc *Script, cloned bool) string {
	if sc.RandomAssigned {
		return "stores $RANDOM in a variable"
	}
	for _, c := range sc.Commands {
		if !intoImage(c) {
			continue // printed to the build log only
		}
		switch {
		case c.Name() == "date" && !c.Has("-d", "--date", "-r", "--reference") && !hasEpoch(c):
			return "writes the current date (" + short(c) + ")"
		case c.Name() == "git" && (c.Sub() == "rev-parse" || c.Sub() == "describe" || c.Sub() == "log") && !cloned:
			return "writes the current commit (" + short(c) + ")"
		case c.Name() == "uuidgen", c.Name() == "openssl" && c.Sub() == "rand", c.Name() == "mktemp" && c.Writes:
			return "writes a random value (" + short(c) + ")"
		case slices.ContainsFunc(c.Args, func(a string) bool { return mentions(a, "RANDOM") }):
			return "writes $RANDOM (" + short(c) + ")"
		}
	}
	return ""
}

// intoImage reports whether what c prints may end up in a file of the
// image: its output, or that of the command whose words hold it when c is
// inside $(...), is redirected to a file or piped into tee, or goes to a
// command that edits files in place; a substitution that a variable stores
// is taken to be written.
func intoImage(c *ShellCommand) bool {
	for ; c != nil; c = c.Outer {
		if c.Writes || c.PipedTo == "tee" || c.Name() == "tee" || editsInPlace(c) {
			return true
		}
		if !c.InSubst {
			return false
		}
		if c.Outer == nil {
			return true
		}
	}
	return false
}

// editsInPlace reports sed -i (also -i.bak, -ri, --in-place).
func editsInPlace(c *ShellCommand) bool {
	if c.Name() != "sed" {
		return false
	}
	for _, a := range c.Args[1:] {
		if strings.HasPrefix(a, "--in-place") || strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "--") && strings.Contains(a, "i") {
			return true
		}
	}
	return false
}

func hasEpoch(c *ShellCommand) bool {
	for _, a := range c.Args {
		if mentions(a, "SOURCE_DATE_EPOCH") {
			return true
		}
	}
	return false
}
