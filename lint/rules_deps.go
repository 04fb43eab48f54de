package lint

import (
	"fmt"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

// RuleSourceCopiedBeforeDependencyInstall: rule 1.
var RuleSourceCopiedBeforeDependencyInstall = Rule[func(tool string, copyLine int, what string) string]{
	RuleInfo: RuleInfo{
		Name:        "SourceCopiedBeforeDependencyInstall",
		Severity:    SeverityWarning,
		Description: "Source files are copied before a dependency install that needs only the manifests, so every source change reinstalls all dependencies",
		URL:         docURL("SourceCopiedBeforeDependencyInstall"),
		Fixable:     true,
		Explain: "BuildKit invalidates a COPY when the content it copies changes, and every later step of the stage with it. " +
			"When the whole source tree is copied before the dependency install, a one-line source change re-runs the install. " +
			"Copy the manifests and lockfiles first, install, then copy the rest. Inputs of the install count with the manifests: " +
			"patch folders (patches/, as yarn patch and patch-package keep them) and version pins (*_VERSION, .nvmrc, " +
			".node-version, .tool-versions), and the files package.json's install hooks name (a postinstall running node " +
			"scripts/postinstall.js or prisma generate --schema=prisma/schema.prisma), and local path dependencies (path: in a " +
			"Gemfile or mix.exs, vendor/gems, file: in package.json, path = in Cargo.toml or pyproject.toml, replace => ./dir " +
			"in go.mod, a file the Gemfile loads): the fix copies them too. A COPY of set-up tools that a RUN before the " +
			"install runs (COPY scripts/prepare /scripts/, RUN /scripts/prepare) is no source copy. The rule stays quiet when an earlier " +
			"manifest-only COPY or a bind mount feeds the install, when the dependencies come installed from another stage " +
			"(COPY --from of a stage that installs them: the install here completes the project), for a cargo or go build " +
			"whose compiled dependencies are in a cache mount (cargo's target folder, Go's build cache), for a Node install " +
			"whose own hook builds the project (a postinstall or prepare script that runs a build), for cargo-chef and " +
			"dummy-project builds, for a COPY into the system's configuration (CA certificates in " +
			"/usr/local/share/ca-certificates, package sources under /etc: the install needs them), and when an " +
			"allowlist .dockerignore reduces the copy to the manifests. The fix copies the top-level manifests; in a " +
			"workspace (npm, yarn or pnpm workspaces, Cargo, go.work) the install needs every member's manifest too, so " +
			"it is reported with no fix.",
		Bad:  "FROM node:22\nWORKDIR /app\nCOPY . .\nRUN npm ci\nRUN npm run build\n",
		Good: "FROM node:22\nWORKDIR /app\nCOPY package.json package-lock.json ./\nRUN npm ci\nCOPY . .\nRUN npm run build\n",
	},
	Format: func(tool string, copyLine int, what string) string {
		return fmt.Sprintf("%s runs after the COPY on line %d brings in source files (%s): copy its manifests and install before copying the sources", tool, copyLine, what)
	},
}

// RuleLockfileNotCopied: rule 2.
var RuleLockfileNotCopied = Rule[func(cmd, lockfile, why string) string]{
	RuleInfo: RuleInfo{
		Name:        "LockfileNotCopied",
		Severity:    SeverityError,
		Description: "An install that enforces a lockfile runs where the lockfile was not copied in",
		URL:         docURL("LockfileNotCopied"),
		Explain: "npm ci, --frozen-lockfile, --immutable, uv sync --frozen and the like fail, or resolve afresh, without their lockfile. " +
			"The rule judges what the Dockerfile copies: a COPY that names the lockfile or a glob that covers it brings it, and so " +
			"does a copy of a directory that holds it in the build context (any directory, when the context is not known). A " +
			"lockfile left out by .dockerignore counts as missing. A step before the install (or a command before it in its " +
			"RUN) that brings the project from elsewhere (a git clone, a downloaded archive unpacked, an ADD of a URL or a Git repository), or a copy from " +
			"another stage or image, may bring it too: the install is then not reported.",
		Bad:  "FROM node:22\nWORKDIR /app\nCOPY package.json ./\nRUN npm ci\n",
		Good: "FROM node:22\nWORKDIR /app\nCOPY package.json package-lock.json ./\nRUN npm ci\n",
	},
	Format: func(cmd, lockfile, why string) string {
		return fmt.Sprintf("%q needs %s, which %s", cmd, lockfile, why)
	},
}

func checkDependencyOrder(p *pass) {
	for _, st := range p.df.Stages {
		for _, s := range st.Steps {
			if s.Script == nil {
				continue
			}
			seen := map[*ecosystem]bool{}
			for _, c := range s.Script.Commands {
				for _, e := range ecosystems {
					if seen[e] {
						continue
					}
					install, build := e.install(c), e.build(c)
					if install || build {
						seen[e] = true
						p.dependencyOrder(s, c, e, install)
					}
					if lock := e.frozen(c); lock != nil {
						p.lockfile(s, c, lock)
					}
				}
			}
		}
	}
}

func (p *pass) dependencyOrder(s *Step, c *ShellCommand, e *ecosystem, install bool) {
	if install && boundManifest(s, e) {
		return
	}
	var src *copySet
	for i := s.Index - 1; i >= 0; i-- {
		prev := s.Stage.Steps[i]
		if src == nil && prev.Script != nil && fetches(prev.Script, e) {
			return // a step in between installs: it is the one to move
		}
		// A COPY into the system's configuration (CA certificates, package
		// sources) is what the install needs, not the project's sources.
		if cs := p.copied(prev); cs != nil && !cs.manifestOnly() && src == nil && !systemConfigDest(prev.Dest) && !p.inputsOnly(cs, e) && !runsCopied(prev, s) {
			src = cs
		}
		if src != nil && prev.Script != nil && fetches(prev.Script, e) {
			return // an earlier install already fetched the dependencies
		}
	}
	if src == nil || !install && nothingToFetch(src, e, c) || src.exact && p.requirementsAbsent(s, c) {
		return
	}
	for anc := s.Stage.Parent; anc != nil; anc = anc.Parent {
		for _, prev := range anc.Steps {
			if prev.Script != nil && fetches(prev.Script, e) {
				return
			}
		}
	}
	if install && p.installBuilds(e) {
		// The install's own hook builds the project (a postinstall
		// that runs a build): it needs the sources.
		return
	}
	if !install && buildCached(s, e) {
		// The compiled dependencies live in a cache mount (cargo's
		// target folder, Go's build cache): a source change recompiles
		// the changed code only.
		return
	}
	if e.name == "cargo" && dummyProject(s) {
		// cargo new made a project for the dependencies to build in:
		// the crates the workspace needs (COPY ./macros) are copied
		// with its manifests on purpose.
		return
	}
	// Dependencies installed in another stage and copied in (a virtualenv,
	// node_modules): this install completes them, as the project itself.
	for _, prev := range s.Stage.Steps[:s.Index] {
		if cp, ok := prev.Cmd.(*instructions.CopyCommand); ok && cp.From != "" && p.stageFetches(prev.From, e) {
			return
		}
	}
	what := strings.Join(src.sources, " ")
	if n := len(src.sourceFiles()); src.exact && n > 0 {
		what = fmt.Sprintf("%d files from %s", n, what)
		if n == 1 {
			what = "1 file from " + strings.Join(src.sources, " ")
		}
	}
	tool := c.Name()
	if pos := c.Positional(); isPip(c) {
		tool = "pip install"
	} else if len(pos) > 1 && (pos[0] == "mod" || pos[0] == "chef") {
		tool += " " + pos[0] + " " + pos[1]
	} else if len(pos) > 0 {
		tool += " " + pos[0]
	}
	var fx *fix
	if install {
		fx = p.fixInstallOrder(src, s, e)
	} else if e.name == "go" {
		fx = p.fixGoModDownload(src, e)
	}
	p.report(RuleSourceCopiedBeforeDependencyInstall.Info(), s, RuleSourceCopiedBeforeDependencyInstall.Format(tool, src.step.Start, what), fx)
}

// runsCopied reports a COPY whose destination a RUN between it and s runs
// (COPY docker/scripts/prepare /scripts/, then RUN /scripts/prepare): it
// brings set-up tools, not the project's sources.
func runsCopied(cp, s *Step) bool {
	dest := path.Clean(cp.Dest)
	if !path.IsAbs(dest) || dest == "/" {
		return false
	}
	for _, mid := range s.Stage.Steps[cp.Index+1 : s.Index] {
		if mid.Script == nil {
			continue
		}
		for _, c := range mid.Script.Commands {
			if run := c.Ran(); run == dest || strings.HasPrefix(run, dest+"/") {
				return true
			}
		}
	}
	return false
}

// requirementsAbsent reports a pip install -r FILE whose FILE no COPY of
// the stage before s brought: an optional file (RUN if [ -s
// requirements.txt ]) absent from the context, so there is no manifest to
// copy first.
func (p *pass) requirementsAbsent(s *Step, c *ShellCommand) bool {
	if !isPip(c) {
		return false
	}
	var files []string
	for i, a := range c.Args {
		switch {
		case (a == "-r" || a == "--requirement") && i+1 < len(c.Args):
			files = append(files, c.Args[i+1])
		case strings.HasPrefix(a, "--requirement="):
			files = append(files, strings.TrimPrefix(a, "--requirement="))
		}
	}
	if len(files) == 0 {
		return false
	}
	for _, prev := range s.Stage.Steps[:s.Index] {
		cs := p.copied(prev)
		if cs == nil {
			continue
		}
		if !cs.exact {
			return false // what it brings is not known
		}
		for _, f := range files {
			for _, e := range cs.entries {
				if path.Base(e.Path) == path.Base(f) {
					return false
				}
			}
		}
	}
	return true
}

// installBuilds reports a Node install whose package.json at the root of
// the context runs a build in its install hooks ("postinstall": "pnpm run
// build:viz"), so the install needs the sources of what it builds.
func (p *pass) installBuilds(e *ecosystem) bool {
	if !e.node() {
		return false
	}
	scripts := p.packageScripts()
	for _, hook := range installHooks {
		if strings.Contains(scripts[hook], "build") {
			return true
		}
	}
	return false
}

// buildCached reports a cargo or go build whose compiled dependencies are
// kept in a cache mount: cargo's target folder, or Go's build cache.
func buildCached(s *Step, e *ecosystem) bool {
	switch e.name {
	case "cargo":
		for _, m := range s.Mounts {
			if m.Type == instructions.MountTypeCache && path.Base(path.Clean(m.Target)) == "target" {
				return true
			}
		}
	case "go":
		return hasCacheMountFor(s, cacheDirs["go"].in("go", s.Scope))
	}
	return false
}

// dummyProject reports whether a step before s, in its stage or one it is
// built FROM, ran cargo new or cargo init: the dummy-project build of the
// dependencies.
func dummyProject(s *Step) bool {
	for st := s.Stage; st != nil; st = st.Parent {
		for _, prev := range st.Steps {
			if st == s.Stage && prev.Index >= s.Index {
				break
			}
			if prev.Script == nil {
				continue
			}
			for _, c := range prev.Script.Commands {
				if c.Is("cargo", "new") || c.Is("cargo", "init") {
					return true
				}
			}
		}
	}
	return false
}

// stageFetches reports whether the stage called name (or numbered so),
// or one it is built FROM, installs with ecosystem e.
func (p *pass) stageFetches(name string, e *ecosystem) bool {
	for _, st := range p.df.Stages {
		if !strings.EqualFold(st.Name, name) && strconv.Itoa(st.Index) != name {
			continue
		}
		for anc := st; anc != nil; anc = anc.Parent {
			for _, prev := range anc.Steps {
				if prev.Script != nil && fetches(prev.Script, e) {
					return true
				}
			}
		}
	}
	return false
}

// fetches reports whether a script installs or builds with ecosystem e.
func fetches(sc *Script, e *ecosystem) bool {
	for _, c := range sc.Commands {
		if e.install(c) || e.build(c) || runsBuildTool(c, e) {
			return true
		}
	}
	return false
}

// runsBuildTool reports a Gradle or Maven run of any task: before the
// sources are copied, it is the project's own dependency step
// (./gradlew downloadRepos, mvn -B de.qaware...:resolve), whatever the task
// is called.
func runsBuildTool(c *ShellCommand, e *ecosystem) bool {
	switch e.name {
	case "gradle":
		return c.tool() == "gradle"
	case "maven":
		return c.tool() == "mvn"
	}
	return false
}

// boundManifest reports whether a RUN gets e's manifests from a bind
// mount: of a manifest or manifest directory, of the whole context, or
// from another stage or image (whose content the rule cannot see). A bind
// mount of an unrelated file (a script, a config) does not count.
func boundManifest(s *Step, e *ecosystem) bool {
	for _, m := range s.Mounts {
		if m.Type != instructions.MountTypeBind {
			continue
		}
		src := strings.Trim(path.Clean("/"+m.Source), "/")
		if m.From != "" || src == "" || e.owns(src, path.Base(src)) || e.owns(strings.Trim(m.Target, "/"), path.Base(m.Target)) {
			return true
		}
	}
	return false
}

func (p *pass) lockfile(s *Step, c *ShellCommand, lock []string) {
	for _, m := range s.Mounts {
		if m.Type == instructions.MountTypeBind && (m.From != "" || m.Source == "" || m.Source == "." || containsBase(lock, m.Source) || containsBase(lock, m.Target)) {
			return
		}
	}
	for st := s.Stage; st != nil; st = st.Parent {
		for _, prev := range st.Steps {
			if st == s.Stage && prev.Index >= s.Index {
				break
			}
			if cp, ok := prev.Cmd.(*instructions.CopyCommand); ok && cp.From != "" {
				return // from another stage or image: cannot tell
			}
			if cs := p.copied(prev); cs != nil && cs.brings(lock) {
				return
			}
			if fetchesSources(prev) {
				return // a clone or an archive brought the project: cannot tell
			}
		}
	}
	if i := slices.Index(s.Script.Commands, c); i > 0 && commandsFetch(s.Script.Commands[:i]) {
		return // so did the same RUN, before the install
	}
	why := "no COPY before it brings in"
	if p.ctx != nil {
		why = "is not in the build context"
		for _, l := range lock {
			if !p.onDisk(l) {
				continue
			}
			why = "no COPY before it brings in"
			if ex, _ := p.ctx.Excluded(l); ex {
				why = fmt.Sprintf("is excluded by %s", path.Base(p.ctx.IgnoreFile()))
				break
			}
		}
	}
	cmd := strings.Join(c.Args, " ")
	if len(cmd) > 60 {
		cmd = cmd[:60] + "..."
	}
	p.report(RuleLockfileNotCopied.Info(), s, RuleLockfileNotCopied.Format(cmd, strings.Join(lock, " or "), why), nil)
}

// fetchesSources reports whether a step brings a project's files from
// outside the context: ADD of a URL or a Git repository, or a RUN that
// clones a repository or unpacks a downloaded archive.
func fetchesSources(s *Step) bool {
	if add, ok := s.Cmd.(*instructions.AddCommand); ok {
		for _, src := range add.SourcePaths {
			if strings.Contains(src, "://") || strings.HasPrefix(src, "git@") {
				return true
			}
		}
		return false
	}
	if s.Script == nil {
		return false
	}
	return commandsFetch(s.Script.Commands)
}

// commandsFetch reports whether commands clone a repository or unpack a
// downloaded archive.
func commandsFetch(cmds []*ShellCommand) bool {
	downloads := false
	for _, c := range cmds {
		switch n := c.Name(); {
		case c.Is("git", "clone"), c.Is("gh", "repo", "clone"), c.Is("hg", "clone"), c.Is("svn", "checkout"), c.Is("svn", "co"), c.Is("svn", "export"):
			return true
		case n == "curl" || n == "wget":
			downloads = true
			if c.PipedTo == "tar" || c.PipedTo == "unzip" || c.PipedTo == "bsdtar" {
				return true
			}
		case downloads && (n == "tar" || n == "unzip" || n == "bsdtar"):
			return true
		}
	}
	return false
}

func containsBase(names []string, p string) bool {
	for _, n := range names {
		if path.Base(p) == n {
			return true
		}
	}
	return false
}

// needsSource reports whether a command reads project sources, so it cannot
// move before the source COPY.
func needsSource(c *ShellCommand) bool {
	for _, e := range ecosystems {
		if e.build(c) {
			return true
		}
	}
	switch c.Name() {
	case "npm", "pnpm", "bun":
		if s := c.Sub(); s == "run" || s == "build" || s == "test" || s == "exec" || s == "run-script" {
			return true
		}
	case "yarn":
		if s := c.Sub(); s != "" && s != "install" && s != "config" && s != "cache" {
			return true
		}
	case "poetry":
		return c.Is("poetry", "install") && !c.Has("--no-root", "--only-root")
	case "uv":
		return c.Is("uv", "sync") && !c.Has("--no-install-project")
	case "make", "cmake", "ninja", "bazel", "tsc", "node", "ruby", "php":
		return true
	case "python", "python3":
		return !isPip(c)
	}
	for _, a := range c.Args[1:] {
		if a == "." || strings.HasPrefix(a, "./") || strings.HasPrefix(a, "src/") {
			return true
		}
	}
	return false
}

// topManifests lists the manifests of e at the root of what a broad COPY
// brings, and the directories that belong with them.
func topManifests(cs *copySet, e *ecosystem) []string {
	set := map[string]bool{}
	for _, ent := range cs.entries {
		first, _, nested := strings.Cut(ent.Path, "/")
		if !nested && e.owns(ent.Path, ent.Path) {
			set[ent.Path] = true
		}
		for _, d := range e.dirs {
			if nested && first == d {
				set[d] = true
			}
		}
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// nothingToFetch reports a Go build whose dependencies are vendored or that
// has none (no go.sum in what was copied), so nothing is downloaded.
func nothingToFetch(src *copySet, e *ecosystem, c *ShellCommand) bool {
	if e.name != "go" {
		return false
	}
	if c.Has("-mod=vendor") {
		return true
	}
	if !src.exact {
		return false
	}
	sum := false
	for _, ent := range src.entries {
		switch path.Base(ent.Path) {
		case "modules.txt":
			if path.Base(path.Dir(ent.Path)) == "vendor" {
				return true
			}
		case "go.sum":
			sum = true
		}
	}
	return !sum
}
