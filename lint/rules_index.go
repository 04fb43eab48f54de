package lint

import (
	"fmt"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

// RulePackageIndexUpdateSeparated: rule 4.
var RulePackageIndexUpdateSeparated = Rule[func(update, detail string) string]{
	RuleInfo: RuleInfo{
		Name:        "PackageIndexUpdateSeparated",
		Severity:    SeverityWarning,
		Description: "A package index update runs in a different RUN than the install that needs it",
		URL:         docURL("PackageIndexUpdateSeparated"),
		Fixable:     true,
		Explain: "RUN is never invalidated by outside state: a cached 'apt-get update' layer keeps the package lists of the day " +
			"it ran, and a later install reuses them until the mirror drops the old versions and the build breaks, or installs " +
			"stale packages. Update and install in the same RUN (or use apk add --no-cache). An install in the RUN of a " +
			"downloaded set-up script piped into a shell (NodeSource's setup_22.x) counts as updated: such scripts update the " +
			"index themselves. An update that no later RUN of the stage installs from (RUN apk update, then RUN apk add " +
			"--no-cache), or whose RUN removes the lists it fetched, is not reported: it leaves nothing stale behind; nor is " +
			"an install of package files alone (apt-get install -y ./tool_1.2.0_amd64.deb), which reads no list for them.",
		Bad:  "FROM debian:bookworm\nRUN apt-get update\nRUN apt-get install -y curl\n",
		Good: "FROM debian:bookworm\nRUN apt-get update && apt-get install -y curl\n",
	},
	Format: func(update, detail string) string {
		return fmt.Sprintf("%s: %s", update, detail)
	},
}

// packageManager groups the index update and install commands of one tool.
type packageManager struct {
	update  func(c *ShellCommand) bool
	install func(c *ShellCommand) bool
}

var packageManagers = []packageManager{
	{func(c *ShellCommand) bool { return (c.Name() == "apt-get" || c.Name() == "apt") && c.Sub() == "update" },
		func(c *ShellCommand) bool {
			return (c.Name() == "apt-get" || c.Name() == "apt") && (c.Sub() == "install" || c.Sub() == "upgrade" || c.Sub() == "dist-upgrade")
		}},
	{func(c *ShellCommand) bool { return c.Name() == "apk" && c.Sub() == "update" },
		func(c *ShellCommand) bool {
			return c.Name() == "apk" && (c.Sub() == "add" || c.Sub() == "upgrade") && !c.Has("--no-cache", "--update", "-U")
		}},
	{func(c *ShellCommand) bool {
		return (c.Name() == "yum" || c.Name() == "dnf" || c.Name() == "microdnf") && c.Sub() == "makecache"
	},
		func(c *ShellCommand) bool {
			return (c.Name() == "yum" || c.Name() == "dnf" || c.Name() == "microdnf") && c.Sub() == "install"
		}},
	{func(c *ShellCommand) bool { return c.Name() == "zypper" && (c.Sub() == "refresh" || c.Sub() == "ref") },
		func(c *ShellCommand) bool { return c.Name() == "zypper" && (c.Sub() == "install" || c.Sub() == "in") }},
}

// installsAnyway reports an install that fetches its own index (apk add
// --no-cache or --update): beside an update in one RUN, nothing is stale.
func installsAnyway(c *ShellCommand) bool {
	return c.Name() == "apk" && (c.Sub() == "add" || c.Sub() == "upgrade")
}

// runsRemoteSetup reports a downloaded script piped into a shell (curl
// -fsSL https://deb.nodesource.com/setup_22.x | bash -): such set-up
// scripts add a repository and update the package index themselves.
func runsRemoteSetup(c *ShellCommand) bool {
	return (c.Name() == "curl" || c.Name() == "wget") && isShell(c.PipedTo)
}

func isPackageIndexUpdate(c *ShellCommand) bool {
	for _, pm := range packageManagers {
		if pm.update(c) {
			return true
		}
	}
	return false
}

func isPackageInstall(c *ShellCommand) bool {
	for _, pm := range packageManagers {
		if pm.install(c) {
			return true
		}
	}
	n := c.Name()
	return n == "apk" && c.Sub() == "add" || (n == "yum" || n == "dnf" || n == "microdnf") && c.Sub() == "install"
}

func checkPackageIndex(p *pass) {
	for _, st := range p.df.Stages {
		for pmi, pm := range packageManagers {
			// fetched is the step whose index an install may rely on.
			var fetched *Step
			for anc := st.Parent; anc != nil && fetched == nil; anc = anc.Parent {
				for _, s := range anc.Steps {
					if s.Script != nil && has(s.Script, pm.update) {
						fetched = keptLists(s)
					}
				}
			}
			for i, s := range st.Steps {
				if s.Script == nil {
					continue
				}
				upd, inst := has(s.Script, pm.update), has(s.Script, pm.install)
				switch {
				case upd && !inst && has(s.Script, installsAnyway):
					// apk update && apk add --no-cache: in one RUN.
					fetched = s
				case upd && !inst && has(s.Script, removesLists):
					// apt-get update && playwright install --with-deps &&
					// rm -rf /var/lib/apt/lists/*: no lists stay in the layer.
				case upd && !inst && !installsLater(st.Steps[i+1:], pm):
					// RUN apk update, then RUN apk add --no-cache: the
					// install fetches its own index; the update is only
					// useless.
				case upd && !inst:
					p.report(RulePackageIndexUpdateSeparated.Info(), s, RulePackageIndexUpdateSeparated.Format(
						cmdText(s.Script, pm.update), "the package index is cached in its own layer and goes stale; update and install in the same RUN"),
						p.fixMergeUpdate(st, s, packageManagers[pmi]))
					fetched = s
				case inst && !upd && fetched != nil && !cacheMounted(s, "/var/lib/apt", "/var/cache/apk") && !has(s.Script, runsRemoteSetup) &&
					!allInstalls(s.Script, pm, installsFilesOnly):
					where := fmt.Sprintf("line %d", fetched.Start)
					if fetched.Stage != st {
						where = fmt.Sprintf("stage %q (line %d)", stageLabel(fetched.Stage), fetched.Start)
					}
					p.report(RulePackageIndexUpdateSeparated.Info(), s, RulePackageIndexUpdateSeparated.Format(
						cmdText(s.Script, pm.install), "installs from package lists fetched in an earlier layer ("+where+"); update in the same RUN"), nil)
				case upd:
					fetched = keptLists(s)
				}
			}
		}
	}
}

// keptLists returns s, a step that updates the package index, unless it
// also deletes the lists it fetched: then no layer keeps them.
func keptLists(s *Step) *Step {
	if has(s.Script, removesLists) {
		return nil
	}
	return s
}

// allInstalls reports whether every install of pm in sc is one that f
// reports.
func allInstalls(sc *Script, pm packageManager, f func(*ShellCommand) bool) bool {
	for _, c := range sc.Commands {
		if pm.install(c) && !f(c) {
			return false
		}
	}
	return true
}

// installsFilesOnly reports an install whose packages are all files
// (apt-get install -y ./tool_1.2.0_amd64.deb, apk add --allow-untrusted
// /tmp/x.apk): it reads no package list for them.
func installsFilesOnly(c *ShellCommand) bool {
	pos := c.Positional()
	if len(pos) < 2 {
		return false
	}
	for _, a := range pos[1:] {
		if !strings.Contains(a, "/") && !strings.HasSuffix(a, ".deb") && !strings.HasSuffix(a, ".apk") && !strings.HasSuffix(a, ".rpm") {
			return false
		}
	}
	return true
}

// removesLists reports a command that deletes the package lists an update
// fetched (rm -rf /var/lib/apt/lists/*).
func removesLists(c *ShellCommand) bool {
	if c.Name() != "rm" {
		return false
	}
	for _, a := range c.Args[1:] {
		if strings.HasPrefix(a, "/var/lib/apt/lists") || strings.HasPrefix(a, "/var/cache/apk") {
			return true
		}
	}
	return false
}

// installsLater reports whether a step of steps installs with pm from the
// index an earlier update left, before another update.
func installsLater(steps []*Step, pm packageManager) bool {
	for _, s := range steps {
		if s.Script == nil {
			continue
		}
		if has(s.Script, pm.install) {
			return true
		}
		if has(s.Script, pm.update) {
			return false
		}
	}
	return false
}

func stageLabel(st *Stage) string {
	if st.Name != "" {
		return st.Name
	}
	return fmt.Sprint(st.Index)
}

func has(sc *Script, pred func(*ShellCommand) bool) bool {
	for _, c := range sc.Commands {
		if pred(c) {
			return true
		}
	}
	return false
}

func cmdText(sc *Script, pred func(*ShellCommand) bool) string {
	for _, c := range sc.Commands {
		if pred(c) {
			return strings.Join(c.Args, " ")
		}
	}
	return ""
}

func cacheMounted(s *Step, prefixes ...string) bool {
	for _, m := range s.Mounts {
		if m.Type != instructions.MountTypeCache {
			continue
		}
		for _, pfx := range prefixes {
			if strings.HasPrefix(m.Target, pfx) {
				return true
			}
		}
	}
	return false
}

// fixMergeUpdate removes an update-only RUN and prefixes the next install
// RUN of the same stage with the update.
func (p *pass) fixMergeUpdate(st *Stage, upd *Step, pm packageManager) *fix {
	if len(upd.Script.Commands) != 1 || upd.Start != upd.End || len(upd.Mounts) > 0 {
		return nil
	}
	updText := strings.Join(upd.Script.Commands[0].Args, " ")
	for _, s := range st.Steps[upd.Index+1:] {
		if s.Script == nil || !has(s.Script, pm.install) {
			continue
		}
		run, ok := s.Cmd.(*instructions.RunCommand)
		if !ok || !run.PrependShell || len(run.Files) > 0 {
			return nil
		}
		first := s.Script.Commands[0]
		if !pm.install(first) {
			return nil
		}
		line := p.df.Lines[s.Start-1]
		i := strings.Index(line, first.Args[0])
		if i < 0 {
			return nil
		}
		i = commandStart(line, i)
		text := p.df.stepText(s)
		text[0] = line[:i] + updText + " && " + line[i:]
		return &fix{edits: []edit{
			{del: upd.Start, delEnd: upd.End},
			{del: s.Start, delEnd: s.End, at: s.Start, text: text},
		}}
	}
	return nil
}

// commandStart moves i, where a RUN line's first command name is, back to
// where the command's text starts after the instruction and its flags, so
// text inserted there leaves what precedes the name with the command:
// variable assignments (A=1 apt-get ...) and wrappers (sudo apt-get ...).
func commandStart(line string, i int) int {
	words := strings.Fields(line[:i])
	k := 1 // the instruction
	for k < len(words) && strings.HasPrefix(words[k], "--") {
		k++
	}
	if k >= len(words) {
		return i
	}
	if j := strings.Index(line, " "+words[k]); j >= 0 && j < i {
		return j + 1
	}
	return i
}
