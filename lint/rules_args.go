package lint

import (
	"bytes"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

func mustRegexp(s string) *regexp.Regexp { return regexp.MustCompile(s) }

// RuleVolatileArgBeforeRun: rule 3.
var RuleVolatileArgBeforeRun = Rule[func(kind, name string, runs []int, advice string) string]{
	RuleInfo: RuleInfo{
		Name:        "VolatileArgBeforeRun",
		Severity:    SeverityWarning,
		Description: "An ARG or ENV whose value changes every build is in scope of RUN steps that do not use it",
		URL:         docURL("VolatileArgBeforeRun"),
		Fixable:     true,
		Explain: "Every ARG with a value is in the environment of every later RUN of its stage, so a new value misses the cache " +
			"for all of them, used or not. Commit SHAs, build numbers, versions, dates, branches and CI variables change " +
			"every build. Declare them just before their first use. A RUN that runs a script of the build context which " +
			"mentions the variable (RUN /build.sh reading $COMMIT_HASH) uses it, so does make (just, task) with a copied Makefile " +
			"(justfile, Taskfile) that names it, and so does a build (cargo build, go build, " +
			"npm run build) of copied sources that mention it (option_env!(\"VERGEN_GIT_SHA\"), process.env.GIT_SHA). " +
			"The list of names is configurable (volatileArgs in .strata.yaml).",
		Bad:  "FROM alpine\nARG GIT_SHA\nRUN apk add --no-cache curl\nLABEL revision=$GIT_SHA\n",
		Good: "FROM alpine\nRUN apk add --no-cache curl\nARG GIT_SHA\nLABEL revision=$GIT_SHA\n",
	},
	Format: func(kind, name string, runs []int, advice string) string {
		return fmt.Sprintf("%s %s changes every build and invalidates %d RUN step(s) that do not mention it (line %s); %s", kind, name, len(runs), joinInts(runs), advice)
	},
}

// RuleStableStepAfterVolatileStep: rule 10.
var RuleStableStepAfterVolatileStep = Rule[func(what string, line int, cause string) string]{
	RuleInfo: RuleInfo{
		Name:        "StableStepAfterVolatileStep",
		Severity:    SeverityInfo,
		Description: "A step that reads nothing from the context comes after a context COPY or a volatile ARG",
		URL:         docURL("StableStepAfterVolatileStep"),
		Explain: "System packages and global tools do not depend on your sources, but placed after a COPY of them " +
			"(or after an ARG that changes every build) they re-run whenever the sources change. Move them up. A COPY into " +
			"the system's configuration (/etc, a keyring, CA certificates: package sources and signing keys the installs " +
			"need) does not count.",
		Bad:  "FROM python:3.12\nCOPY . /app\nRUN apt-get update && apt-get install -y libpq5\n",
		Good: "FROM python:3.12\nRUN apt-get update && apt-get install -y libpq5\nCOPY . /app\n",
	},
	Format: func(what string, line int, cause string) string {
		return fmt.Sprintf("this step %s and reads nothing from the context, but comes after %s on line %d: move it before", what, cause, line)
	},
}

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprint(x)
	}
	if len(s) > 5 {
		s = append(s[:5], "...")
	}
	return strings.Join(s, ", ")
}

// uses reports whether a step reads variable name.
func uses(s *Step, name string) bool {
	if s.Script != nil && s.Script.Vars[name] {
		return true
	}
	if e, ok := s.Cmd.(*instructions.EnvCommand); ok {
		for _, kv := range e.Env {
			if mentions(kv.Value, name) {
				return true
			}
		}
	}
	return mentions(s.Node.Original, name)
}

func mentions(text, name string) bool {
	for i := strings.Index(text, "$"); i >= 0; {
		rest := text[i+1:]
		rest = strings.TrimPrefix(rest, "{")
		if strings.HasPrefix(rest, name) && (len(rest) == len(name) || !isNameChar(rest[len(name)])) {
			return true
		}
		j := strings.Index(text[i+1:], "$")
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return false
}

func isNameChar(b byte) bool {
	return b == '_' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9'
}

// volatileDecl returns the volatile variable a step declares, if any.
func (p *pass) volatileDecl(s *Step) (kind, name string) {
	switch c := s.Cmd.(type) {
	case *instructions.ArgCommand:
		for _, a := range c.Args {
			if p.cfg.Volatile(a.Key) {
				return "ARG", a.Key
			}
		}
	case *instructions.EnvCommand:
		for _, kv := range c.Env {
			// A constant value is the same every build, whatever its name;
			// so is a copy of ARGs that only their constant defaults set
			// (ENV VERSION=${PACKAGE_VERSION} after ARG PACKAGE_VERSION=12).
			if p.cfg.Volatile(kv.Key) && strings.Contains(kv.Value, "$") && !p.constantRefs(kv.Value, s.Scope) {
				return "ENV", kv.Key
			}
			for _, r := range s.Scope.Vars() {
				if p.cfg.Volatile(r.Name) && mentions(kv.Value, r.Name) {
					return "ENV", kv.Key
				}
			}
		}
	}
	return "", ""
}

// varRef is a reference to a variable in a Dockerfile word: $NAME or
// ${NAME...}.
var varRef = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)`)

// constantRefs reports whether every variable value refers to is an ARG
// of scope that nothing but its constant default sets, and none is
// volatile by name.
func (p *pass) constantRefs(value string, scope *Scope) bool {
	refs := varRef.FindAllStringSubmatch(value, -1)
	if len(refs) == 0 || scope == nil {
		return false
	}
	for _, m := range refs {
		v := scope.Var(m[1])
		if v == nil || v.Env || v.Given || !v.HasV || v.Default == "" || strings.Contains(v.Default, "$") || p.cfg.Volatile(m[1]) {
			return false
		}
	}
	return true
}

func checkVolatileArgs(p *pass) {
	for _, st := range p.df.Stages {
		for _, d := range st.Steps {
			kind, name := p.volatileDecl(d)
			if name == "" {
				continue
			}
			var runs []int
			var first *Step
			implicit := false // a skipped RUN may read it from the environment
			for _, s := range st.Steps[d.Index+1:] {
				if uses(s, name) || p.scriptUses(s, name) || clonesFor(s, name) || p.buildReads(s, name) {
					first = s
					break
				}
				if _, ok := s.Cmd.(*instructions.RunCommand); ok {
					runs = append(runs, s.Start)
					implicit = implicit || readsEnv(s.Script)
				}
			}
			if first == nil {
				runs = append(runs, p.inheritedRuns(st, name)...)
			}
			if len(runs) == 0 {
				continue
			}
			single := !implicit
			switch c := d.Cmd.(type) {
			case *instructions.ArgCommand:
				single = single && len(c.Args) == 1
			case *instructions.EnvCommand:
				single = single && len(c.Env) == 1
			}
			var fx *fix
			var advice string
			// ARG X then ENV Y=$X move together, or the ARG is left
			// in scope of the RUN steps the ENV moved past.
			from := d
			if prev := p.argFeeding(d); prev != nil {
				from = prev
			}
			if first != nil {
				advice = fmt.Sprintf("declare it just before line %d where it is first used", first.Start)
				if single {
					fx = &fix{edits: []edit{p.df.moveBlockBefore(from, d, first.Start)}}
				}
			} else {
				advice = "nothing in this stage mentions it: declare it at the end of the stage or where it is needed"
				if implicit {
					advice = "no step mentions it, but a script a RUN runs may read it: declare it just before that RUN, or at the end of the stage if none does"
				}
				last := st.Steps[len(st.Steps)-1]
				if single && last != d {
					fx = &fix{edits: []edit{p.df.moveBlockBefore(from, d, last.End+1)}}
				}
			}
			p.report(RuleVolatileArgBeforeRun.Info(), d, RuleVolatileArgBeforeRun.Format(kind, name, runs, advice), fx)
		}
	}
}

// stableWhat describes a RUN that reads nothing from the context, or "".
func stableWhat(s *Step) string {
	if s.Script == nil || len(s.Script.Commands) == 0 || s.Script.Err != nil {
		return ""
	}
	for _, m := range s.Mounts {
		if m.Type == instructions.MountTypeBind && m.From == "" {
			return ""
		}
	}
	what := ""
	for _, c := range s.Script.Commands {
		switch {
		case isPackageInstall(c):
			what = "installs system packages"
		case c.Name() == "npm" && c.Has("-g", "--global") || c.Is("go", "install") && strings.Contains(strings.Join(c.Args, " "), "@v"):
			if what == "" {
				what = "installs global tools"
				if pinnedTools(c) {
					what = "installs pinned global tools"
				}
			}
		case isPackageIndexUpdate(c), c.Name() == "rm" && !c.Has("."), c.Name() == "mkdir", c.Name() == "useradd", c.Name() == "adduser",
			c.Name() == "groupadd", c.Name() == "addgroup", c.Name() == "ln", c.Name() == "true", c.Name() == "set", c.Name() == "update-ca-certificates":
		default:
			return ""
		}
	}
	return what
}

// systemConfigDest reports a COPY into the system's configuration (/etc,
// a keyring): package sources, signing keys, certificates that the
// installs after it need, so they cannot move before it.
func systemConfigDest(dest string) bool {
	d := path.Clean("/" + dest)
	return d == "/etc" || strings.HasPrefix(d, "/etc/") || strings.HasPrefix(d, "/usr/share/keyrings") ||
		strings.HasPrefix(d, "/usr/local/share/ca-certificates")
}

// pinnedTools reports whether every tool an npm -g or go install names
// carries a version (corepack@0.31.0, @scope/cli@2, ./cmd/x@v1.2.3).
func pinnedTools(c *ShellCommand) bool {
	pos := c.Positional()
	if len(pos) < 2 {
		return false
	}
	for _, name := range pos[1:] {
		if !strings.Contains(strings.TrimPrefix(name, "@"), "@") {
			return false
		}
	}
	return true
}

func checkStableAfterVolatile(p *pass) {
	for _, st := range p.df.Stages {
		var cause string
		line := 0
		for _, s := range st.Steps {
			if line == 0 {
				if cs := p.copied(s); cs != nil && !systemConfigDest(s.Dest) {
					cause, line = "a COPY from the build context", s.Start
				} else if kind, name := p.volatileDecl(s); name != "" {
					cause, line = kind+" "+name, s.Start
				}
				continue
			}
			if what := stableWhat(s); what != "" {
				p.report(RuleStableStepAfterVolatileStep.Info(), s, RuleStableStepAfterVolatileStep.Format(what, line, cause), nil)
			}
		}
	}
}

// inheritedRuns returns the RUN lines of stages built FROM st (directly or
// not) that see variable name, inherited, before they use it.
func (p *pass) inheritedRuns(st *Stage, name string) []int {
	var runs []int
	for _, child := range p.df.Stages {
		if child.Parent != st {
			continue
		}
		used := false
		for _, s := range child.Steps {
			if uses(s, name) {
				used = true
				break
			}
			if _, ok := s.Cmd.(*instructions.RunCommand); ok {
				runs = append(runs, s.Start)
			}
		}
		if !used {
			runs = append(runs, p.inheritedRuns(child, name)...)
		}
	}
	return runs
}

// codeExts are the source files a compiler or bundler may read an
// environment variable from (option_env!("GIT_SHA"), process.env.GIT_SHA).
var codeExts = map[string]bool{".rs": true, ".go": true, ".js": true, ".mjs": true, ".cjs": true, ".ts": true, ".tsx": true,
	".jsx": true, ".py": true, ".java": true, ".kt": true, ".kts": true, ".gradle": true, ".cs": true, ".rb": true, ".php": true,
	".c": true, ".cc": true, ".cpp": true, ".h": true, ".swift": true, ".scala": true, ".vue": true, ".svelte": true, ".toml": true}

// readBudget bounds what buildReads reads of a context: files and bytes.
const (
	readBudgetFiles = 4000
	readBudgetBytes = 32 << 20
)

// buildReads reports a RUN that compiles or bundles (cargo build, go
// build, npm run build) sources copied before it in the stage that mention
// name: the build reads the variable from its environment.
func (p *pass) buildReads(s *Step, name string) bool {
	if s.Script == nil || p.ctx == nil {
		return false
	}
	builds := false
	for _, c := range s.Script.Commands {
		for _, e := range ecosystems {
			builds = builds || e.build(c)
		}
		builds = builds || c.Name() == "npm" && c.Sub() == "run" || c.Name() == "yarn" && c.Sub() == "build" || c.Name() == "pnpm" && (c.Sub() == "build" || c.Sub() == "run")
	}
	if !builds {
		return false
	}
	files, read := 0, 0
	want := []byte(name)
	for _, prev := range s.Stage.Steps[:s.Index] {
		cs := p.copied(prev)
		if cs == nil {
			continue
		}
		for _, e := range cs.entries {
			if !codeExts[path.Ext(e.Path)] || !e.Mode.IsRegular() {
				continue
			}
			if files++; files > readBudgetFiles || read > readBudgetBytes {
				return false
			}
			if head, ok := p.head(e); ok {
				read += len(head)
				if bytes.Contains(head, want) {
					return true
				}
			}
		}
	}
	return false
}

// clonesFor reports a RUN that clones a repository which a later git
// command of the stage checks out at $name (RUN git clone URL /src, then
// RUN git checkout "$GIT_REF"): declared after the clone, a new ref would
// find the clone of an older build in the cache.
func clonesFor(s *Step, name string) bool {
	if s.Script == nil || !has(s.Script, func(c *ShellCommand) bool { return c.Is("git", "clone") }) {
		return false
	}
	for _, c := range laterCommands(s) {
		if c.Name() == "git" && c.Has("checkout", "switch", "reset", "fetch") && mentions(strings.Join(c.Args, " "), name) {
			return true
		}
	}
	return false
}

// scriptUses reports whether a RUN runs a script from the build context
// (RUN /build.sh after COPY build.sh /build.sh, RUN ./ci/build.sh) whose
// text mentions $name, or make, just or task with a copied Makefile,
// justfile or Taskfile that names it: they read it from the environment.
func (p *pass) scriptUses(s *Step, name string) bool {
	if s.Script == nil || p.ctx == nil {
		return false
	}
	for _, c := range s.Script.Commands {
		if len(c.Args) == 0 {
			continue
		}
		if files := taskFiles[c.Name()]; files != nil {
			// make, just or task read their file of the working
			// directory, and the variables of the environment.
			if p.copiedFileMentions(s, name, func(rel string) bool {
				base := path.Base(rel)
				return slices.Contains(files, base) || files[0] == "Makefile" && strings.HasSuffix(base, ".mk")
			}, wordMention) {
				return true
			}
			continue
		}
		script := c.Ran()
		if !strings.HasSuffix(script, ".sh") && !strings.HasPrefix(script, "./") && !strings.HasPrefix(script, "/") {
			continue
		}
		if p.copiedFileMentions(s, name, func(rel string) bool { return path.Base(rel) == path.Base(script) }, mentions) {
			return true
		}
	}
	return false
}

// taskFiles are, per task runner, the files it reads its tasks from.
var taskFiles = map[string][]string{
	"make": {"Makefile", "makefile", "GNUmakefile"}, "gmake": {"Makefile", "makefile", "GNUmakefile"},
	"just": {"justfile", "Justfile", ".justfile"}, "task": {"Taskfile.yml", "Taskfile.yaml", "taskfile.yml", "taskfile.yaml"},
}

// wordMention reports whether text names name as a whole word, as a
// Makefile reads a variable of the environment ($(NAME), ifdef NAME).
func wordMention(text, name string) bool {
	for i := 0; ; {
		j := strings.Index(text[i:], name)
		if j < 0 {
			return false
		}
		at := i + j
		end := at + len(name)
		if (at == 0 || !isNameChar(text[at-1])) && (end == len(text) || !isNameChar(text[end])) {
			return true
		}
		i = at + 1
	}
}

// copiedFileMentions reports whether a file a COPY of s's stage brought
// before s, one that match picks, mentions name (as mention reads it).
func (p *pass) copiedFileMentions(s *Step, name string, match func(rel string) bool, mention func(text, name string) bool) bool {
	for _, prev := range s.Stage.Steps[:s.Index] {
		cs := p.copied(prev)
		if cs == nil {
			continue
		}
		for _, e := range cs.entries {
			if !match(e.Path) {
				continue
			}
			if head, ok := p.head(e); ok && mention(string(head), name) {
				return true
			}
		}
	}
	return false
}

// readsEnv reports a script that runs tools which may read variables from
// the environment without naming them (make, scripts, package scripts).
func readsEnv(sc *Script) bool {
	if sc == nil {
		return false
	}
	for _, c := range sc.Commands {
		n := c.Name()
		if needsSource(c) || strings.HasPrefix(c.Args[0], "./") || strings.HasSuffix(n, ".sh") || n == "env" || n == "printenv" {
			return true
		}
		if (n == "sh" || n == "bash") && len(c.Args) > 1 && !strings.HasPrefix(c.Args[1], "-") {
			return true
		}
	}
	return false
}

// argFeeding returns the step just before an ENV when it declares one ARG
// that the ENV's value reads and that changes every build.
func (p *pass) argFeeding(d *Step) *Step {
	env, ok := d.Cmd.(*instructions.EnvCommand)
	if !ok || d.Index == 0 {
		return nil
	}
	prev := d.Stage.Steps[d.Index-1]
	arg, ok := prev.Cmd.(*instructions.ArgCommand)
	if !ok || len(arg.Args) != 1 || !p.cfg.Volatile(arg.Args[0].Key) {
		return nil
	}
	for _, kv := range env.Env {
		if mentions(kv.Value, arg.Args[0].Key) {
			return prev
		}
	}
	return nil
}
