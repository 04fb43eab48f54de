package lint

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/strata-build/strata/buildcontext"
)

// RuleMissingDockerignore: rule 7.
var RuleMissingDockerignore = Rule[func(src string) string]{
	RuleInfo: RuleInfo{
		Name:        "MissingDockerignore",
		Severity:    SeverityWarning,
		Description: "A broad COPY (., a top-level directory) with no .dockerignore",
		URL:         docURL("MissingDockerignore"),
		Explain: "Without an ignore file, COPY . sends everything: VCS data, dependencies, build outputs, editor files. " +
			"Any change to any of them invalidates the COPY and everything after it. The ignore file is looked for as BuildKit " +
			"looks for it, <Dockerfile>.dockerignore and then .dockerignore at the root of the build context, so the rule is only " +
			"as right as the context: see how `strata lint` finds it. Without a context it does not run. A COPY of a folder " +
			"that holds one file (COPY .bundle ./.bundle), or whose every file git tracks (COPY rootfs/ /), has nothing " +
			"unrelated to keep out and is not reported.",
		Bad:  "FROM alpine\nCOPY . /app\n",
		Good: "# with a .dockerignore beside the Dockerfile\nFROM alpine\nCOPY . /app\n",
	},
	Format: func(src string) string {
		return fmt.Sprintf("COPY %s takes the whole directory and there is no .dockerignore: add one so unrelated files do not invalidate the cache", src)
	},
}

// RuleContextLeaksIntoCopy: rule 8.
var RuleContextLeaksIntoCopy = Rule[func(list string, bytes int64) string]{
	RuleInfo: RuleInfo{
		Name:        "ContextLeaksIntoCopy",
		Severity:    SeverityWarning,
		Description: "A broad COPY takes in .git, node_modules, target, dist, .venv, __pycache__, build outputs or very large files",
		URL:         docURL("ContextLeaksIntoCopy"),
		Fixable:     true,
		Explain: "These paths change on their own (every commit, every local install or build) and are rebuilt inside the " +
			"image anyway, so copying them misses the cache for no benefit and makes the context slow to send. The rule " +
			"reads .dockerignore exactly as BuildKit does: '#' lines are comments, '//' lines are patterns. A path the ignore file " +
			"brings back with a '!' pattern (!.git, for a build that reads its version from .git/HEAD) is taken in on purpose " +
			"and not reported; so is .git when the build reads it: the stage installs git, or a later RUN of it runs git, or " +
			"runs make or a script (python version.py) whose copied file calls git, or installs a Python project whose " +
			"version comes from git (setuptools-scm, hatch-vcs, versioneer). An output folder (build, dist, target) " +
			"that holds files git tracks is sources, not output, and is not reported. The fix appends entries to the ignore file.",
		Bad:  "FROM node:22\nCOPY . /app\n# with node_modules/ and .git/ in the context and no ignore entries for them\n",
		Good: "# .dockerignore: .git node_modules\nFROM node:22\nCOPY . /app\n",
	},
	Format: func(list string, bytes int64) string {
		return fmt.Sprintf("this COPY takes in %s (%s in all); add them to .dockerignore", list, human(bytes))
	},
}

// RuleEnvironmentConfigBaked: rule 14.
var RuleEnvironmentConfigBaked = Rule[func(list string) string]{
	RuleInfo: RuleInfo{
		Name:        "EnvironmentConfigBaked",
		Severity:    SeverityInfo,
		Description: "Environment-specific configuration (config/prod*, *.production.*, .env.production) is copied into the image",
		URL:         docURL("EnvironmentConfigBaked"),
		Explain: "Baking one environment's settings into the image forces one image per environment, each built and pushed " +
			"separately. Build one image and give it its configuration at run time (environment, mounted files, secrets). " +
			"Only configuration files count (env, YAML, JSON, TOML, INI, properties, XML), at the top of the context or in a " +
			"config folder, copied in a stage whose files reach the image: source code named *.prod.* (environment.prod.ts), " +
			"files deep in a source package and a build stage's inputs are not reported.",
		Bad:  "FROM nginx\nCOPY config/production.conf /etc/nginx/conf.d/default.conf\n",
		Good: "FROM nginx\n# mount the configuration at run time\n",
	},
	Format: func(list string) string {
		return fmt.Sprintf("this COPY bakes environment-specific configuration into the image (%s); pass it at run time instead", list)
	},
}

// leaks are paths that should not reach a build. nested ones are junk at
// any depth; the others are build outputs, counted only at the top of the
// context and only when the stage builds with a tool that writes them.
// safe says when the fix may add them to the ignore file.
var leaks = []struct {
	name   string
	nested bool
	output bool
	safe   func(p *pass, s *Step) bool
}{
	{".git", true, false, func(p *pass, s *Step) bool {
		return !stageRuns(s, func(c *ShellCommand) bool { return c.Name() == "git" })
	}},
	{"node_modules", true, false, func(p *pass, s *Step) bool { return stageRuns(s, installs("npm", "yarn", "pnpm", "bun")) }},
	{".venv", true, false, always}, {"venv", false, false, always}, {"__pycache__", true, false, always},
	{".pytest_cache", true, false, always}, {".mypy_cache", true, false, always}, {".tox", false, false, always},
	{".ruff_cache", true, false, always}, {".DS_Store", true, false, always}, {".idea", false, false, always},
	{".vscode", false, false, always}, {".gradle", false, false, always},
	{".next", false, true, builds("npm", "yarn", "pnpm", "bun")},
	{"target", false, true, builds("cargo", "maven", "gradle")},
	{"dist", false, true, builds("npm", "yarn", "pnpm", "bun", "pip", "poetry", "uv")},
	{"build", false, true, builds("gradle", "npm", "yarn", "pnpm", "bun")},
	{"coverage", false, true, builds("npm", "yarn", "pnpm", "bun")},
}

// builds reports whether a later RUN of the stage installs or builds with
// one of the named ecosystems, whose output directory is then rebuilt.
func builds(names ...string) func(*pass, *Step) bool {
	return func(p *pass, s *Step) bool {
		return stageRuns(s, func(c *ShellCommand) bool {
			for _, e := range ecosystems {
				for _, n := range names {
					if e.name == n && (e.install(c) || e.build(c) || needsSource(c) && strings.HasPrefix(c.Name(), n)) {
						return true
					}
				}
			}
			return false
		})
	}
}

func always(*pass, *Step) bool { return true }

func installs(names ...string) func(*ShellCommand) bool {
	return func(c *ShellCommand) bool {
		for _, e := range ecosystems {
			for _, n := range names {
				if e.name == n && e.install(c) {
					return true
				}
			}
		}
		return false
	}
}

// stageRuns reports whether a RUN after s in its stage runs a matching command.
func stageRuns(s *Step, pred func(*ShellCommand) bool) bool {
	for _, t := range s.Stage.Steps[s.Index+1:] {
		if t.Script != nil && has(t.Script, pred) {
			return true
		}
	}
	return false
}

func checkContext(p *pass) {
	if p.ctx == nil {
		checkNamedSources(p)
		return
	}
	missingReported := false
	for _, st := range p.df.Stages {
		for _, s := range st.Steps {
			cs := p.copied(s)
			if cs == nil {
				continue
			}
			broad := p.broadCopy(cs)
			// A folder of one file (COPY .bundle ./.bundle), or one whose
			// every file git tracks (COPY rootfs/ /), has nothing unrelated
			// in it to keep out.
			if broad && p.ctx.IgnoreFile() == "" && !missingReported && (cs.broad() || !cs.exact || len(cs.entries) > 1 && !p.allTracked(cs)) {
				missingReported = true
				p.report(RuleMissingDockerignore.Info(), s, RuleMissingDockerignore.Format(strings.Join(cs.sources, " ")), nil)
			}
			if broad {
				p.checkLeaks(s, cs)
			}
			p.checkSecrets(s, cs)
			p.checkEnvConfig(s, cs)
		}
	}
}

// broadCopy reports a COPY of the context root or of a whole top-level
// directory (without a context, a source with no extension counts as one).
func (p *pass) broadCopy(cs *copySet) bool {
	if cs.broad() {
		return true
	}
	for _, src := range cs.sources {
		if strings.Contains(src, "/") || strings.ContainsAny(src, "*?[$") {
			continue
		}
		if p.ctx == nil {
			if !strings.Contains(src, ".") {
				return true
			}
			continue
		}
		if fi, err := os.Stat(filepath.Join(p.ctx.Dir(), src)); err == nil && fi.IsDir() {
			return true
		}
	}
	return false
}

type tally struct {
	files int
	bytes int64
}

// reincluded reports whether the ignore file brings rel back on purpose,
// with a "!" pattern that names it or a path inside it (!.git for a build
// that reads its version from .git/HEAD).
func (p *pass) reincluded(rel string) bool {
	if p.ctx == nil {
		return false
	}
	for _, pat := range p.ctx.Patterns() {
		pat, ok := strings.CutPrefix(pat, "!")
		if !ok {
			continue
		}
		pat = strings.TrimPrefix(path.Clean("/"+strings.TrimSpace(pat)), "/")
		if m, _ := path.Match(pat, rel); m || pat == rel || strings.HasPrefix(pat, rel+"/") {
			return true
		}
	}
	return false
}

func (p *pass) checkLeaks(s *Step, cs *copySet) {
	found := map[string]*tally{}
	nested := map[string]bool{}
	var ignore []string
	limit := p.cfg.maxFileSize()
	// Build outputs count only where the stage rebuilds them.
	// An output folder whose files git tracks (a build/ of sources) is
	// not one.
	outputs := make([]bool, len(leaks))
	for i, l := range leaks {
		outputs[i] = !l.output || l.safe(p, s) && !p.tracksUnder(cs, l.name)
	}
	// A build that reads .git (its version from git describe) takes it in
	// on purpose.
	wantsGit := p.readsGit(s, cs)
	if wantsGit && !slices.Contains(p.needs, ".git") {
		p.needs = append(p.needs, ".git")
	}
	for _, e := range cs.entries {
		parts := strings.Split(e.Path, "/")
		if wantsGit && parts[0] == ".git" {
			continue
		}
		hit := ""
		for i, part := range parts {
			for li, l := range leaks {
				if part != l.name || i == len(parts)-1 && l.name != ".DS_Store" || i > 0 && !l.nested || !outputs[li] {
					continue
				}
				hit = strings.Join(parts[:i+1], "/")
				if i > 0 {
					nested[l.name] = true
				}
			}
			if hit != "" {
				break
			}
		}
		if hit == "" && strings.HasSuffix(e.Path, ".pyc") {
			hit = "*.pyc"
		}
		if hit == "" && e.Size > limit && e.Mode.IsRegular() {
			hit = e.Path
			ignore = append(ignore, e.Path)
		}
		if hit == "" || p.reincluded(hit) {
			continue
		}
		t := found[hit]
		if t == nil {
			t = &tally{}
			found[hit] = t
		}
		t.files++
		t.bytes += e.Size
	}
	if len(found) == 0 {
		return
	}
	keys := make([]string, 0, len(found))
	var total int64
	for k, t := range found {
		keys = append(keys, k)
		total += t.bytes
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s (%d files, %s)", k, found[k].files, human(found[k].bytes))
	}
	for _, l := range leaks {
		name := l.name
		present := false
		for _, k := range keys {
			if path.Base(k) == name {
				present = true
			}
		}
		if !present || !l.safe(p, s) {
			continue
		}
		if nested[name] {
			name = "**/" + name
		}
		ignore = append(ignore, name)
	}
	if found["*.pyc"] != nil {
		ignore = append(ignore, "**/*.pyc")
	}
	var fx *fix
	if len(ignore) > 0 {
		fx = &fix{ignore: ignore}
	}
	p.report(RuleContextLeaksIntoCopy.Info(), s, RuleContextLeaksIntoCopy.Format(strings.Join(parts, ", "), total), fx)
}

// allTracked reports whether git tracks every file cs copies; false
// outside a repository.
func (p *pass) allTracked(cs *copySet) bool {
	if p.gitRepo() == nil {
		return false
	}
	for _, e := range cs.entries {
		if !e.Mode.IsDir() && !p.tracked(e.Path) {
			return false
		}
	}
	return true
}

// tracksUnder reports whether git tracks a file cs copies from the
// top-level folder dir.
func (p *pass) tracksUnder(cs *copySet, dir string) bool {
	for _, e := range cs.entries {
		if strings.HasPrefix(e.Path, dir+"/") && p.tracked(e.Path) {
			return true
		}
	}
	return false
}

// gitCall is a call of git in a Makefile, a shell script or a Python file:
// git describe, git rev-parse, ['git', 'show', ...].
var gitCall = regexp.MustCompile(`\bgit\s+(-C\s+\S+\s+)?(describe|rev-parse|rev-list|log|show|tag|status|symbolic-ref|config|branch|ls-files|diff|name-rev)\b|["']git["']\s*,`)

// readsGit reports whether the build reads the .git that COPY s takes in:
// the stage installs git, a later RUN of it runs git, or runs make or a
// script (./build.sh, python version.py) whose file s copies and which
// calls git.
func (p *pass) readsGit(s *Step, cs *copySet) bool {
	if stageRuns(s, func(c *ShellCommand) bool { return c.Name() == "git" }) || installsGit(s.Stage) {
		return true
	}
	if p.versionFromGit(cs) && stageRuns(s, func(c *ShellCommand) bool { return projectManifests(c) != nil && isPythonProject(c) }) {
		// setuptools-scm, hatch-vcs, versioneer and the like read the
		// version from .git when the project is installed or built.
		return true
	}
	run := map[string]bool{} // base names of the files later RUNs run
	for _, t := range s.Stage.Steps[s.Index+1:] {
		if t.Script == nil {
			continue
		}
		for _, c := range t.Script.Commands {
			switch n := c.Name(); {
			case n == "make" || n == "gmake":
				run["Makefile"], run["makefile"], run["GNUmakefile"] = true, true, true
			case (n == "sh" || n == "bash" || strings.HasPrefix(n, "python")) && len(c.Args) > 1:
				run[path.Base(c.Args[1])] = true
			case len(c.Args) > 0 && strings.Contains(c.Args[0], "/"):
				run[path.Base(c.Args[0])] = true
			}
		}
	}
	if len(run) == 0 {
		return false
	}
	for _, e := range cs.entries {
		if !run[path.Base(e.Path)] || strings.HasPrefix(e.Path, ".git/") {
			continue
		}
		if head, ok := p.head(e); ok && gitCall.Match(head) {
			return true
		}
	}
	return false
}

// scmVersioning names the Python build plugins that take the version
// from git.
var scmVersioning = regexp.MustCompile(`setuptools[_-]scm|hatch-vcs|versioningit|versioneer|dunamai|poetry-dynamic-versioning|pbr|uv-dynamic-versioning|pdm-backend.*scm|source\s*=\s*"scm"`)

// versionFromGit reports whether the copy brings a Python project whose
// version comes from git (pyproject.toml, setup.cfg or setup.py at the
// top of the copy names such a plugin).
func (p *pass) versionFromGit(cs *copySet) bool {
	for _, e := range cs.entries {
		switch e.Path {
		case "pyproject.toml", "setup.cfg", "setup.py":
			if head, ok := p.head(e); ok && scmVersioning.Match(head) {
				return true
			}
		}
	}
	return false
}

// isPythonProject reports an install or build of a Python project (pip
// install ., uv sync, poetry install, python -m build).
func isPythonProject(c *ShellCommand) bool {
	if isPip(c) {
		return true
	}
	switch c.Name() {
	case "uv", "poetry", "pdm", "hatch", "pipenv":
		return true
	}
	return false
}

// installsGit reports whether a RUN of the stage, or of a stage it is built
// on, installs git with the system's package manager.
func installsGit(st *Stage) bool {
	for cur := st; cur != nil; cur = cur.Parent {
		for _, r := range cur.Steps {
			if r.Script != nil && has(r.Script, func(c *ShellCommand) bool {
				switch c.Name() {
				case "apk", "apt-get", "apt", "yum", "dnf", "microdnf", "zypper":
					return (c.Sub() == "add" || c.Sub() == "install") && slices.Contains(c.Args, "git")
				}
				return false
			}) {
				return true
			}
		}
	}
	return false
}

func human(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

var envConfig = mustRegexp(`(?i)(^|/)(config|conf|settings)/(prod|production)[^/]*$|(^|/)[^/]*\.(prod|production)\.[^/]+$|(^|/)\.env\.(prod|production)$|(^|/)(prod|production)\.(env|ya?ml|json|toml|ini|conf|properties)$`)

// configExts are the formats of configuration files; a *.prod.* file in
// another (environment.prod.ts, error.prod.html) is source code built into
// the application.
var configExts = map[string]bool{".env": true, ".yml": true, ".yaml": true, ".json": true, ".toml": true, ".ini": true,
	".conf": true, ".cfg": true, ".properties": true, ".xml": true, ".config": true, ".production": true, ".prod": true}

// configDirs hold configuration at any depth.
var configDirs = map[string]bool{"config": true, "conf": true, "settings": true, "deploy": true, "environments": true, "env": true, "etc": true}

// deployConfig reports whether a path the pattern matched is a deployment's
// configuration: in a configuration format, and at the top of the context
// (two folders deep at most) or in a configuration folder, not deep in a
// source package (mealie/core/logger/logconf.prod.json is one of the
// logging set-ups the application picks from at run time).
func deployConfig(rel string) bool {
	if !configExts[strings.ToLower(path.Ext(rel))] {
		return false
	}
	dirs := strings.Split(path.Dir(rel), "/")
	if len(dirs) <= 2 {
		return true
	}
	for _, d := range dirs {
		if configDirs[strings.ToLower(d)] {
			return true
		}
	}
	return false
}

// reachesImage reports whether a stage's files end up in the image: it is
// the last stage or one the last is built FROM. A build stage's files
// reach it only through what it builds.
func (p *pass) reachesImage(st *Stage) bool {
	last := p.df.Stages[len(p.df.Stages)-1]
	for s := last; s != nil; s = s.Parent {
		if s == st {
			return true
		}
	}
	return false
}

func (p *pass) checkEnvConfig(s *Step, cs *copySet) {
	if !p.reachesImage(s.Stage) {
		return
	}
	var hits []string
	for _, e := range cs.entries {
		// Every match names prod; the cheap test spares most paths the regexp.
		if containsFold(e.Path, "prod") && envConfig.MatchString(e.Path) && deployConfig(e.Path) {
			hits = append(hits, e.Path)
		}
	}
	if len(hits) > 0 {
		p.report(RuleEnvironmentConfigBaked.Info(), s, RuleEnvironmentConfigBaked.Format(list(hits)), nil)
	}
}

func list(xs []string) string {
	if len(xs) > 5 {
		return strings.Join(xs[:5], ", ") + fmt.Sprintf(" and %d more", len(xs)-5)
	}
	return strings.Join(xs, ", ")
}

// checkNamedSources runs the secret and configuration checks on the source
// names alone when no context is known: COPY .env /app is enough to tell.
func checkNamedSources(p *pass) {
	for _, st := range p.df.Stages {
		for _, s := range st.Steps {
			cs := p.copied(s)
			if cs == nil {
				continue
			}
			named := &copySet{step: s, sources: cs.sources}
			for _, src := range cs.sources {
				if src != "." && !strings.ContainsAny(src, "*?[$") {
					named.entries = append(named.entries, buildcontext.Entry{Path: src})
				}
			}
			p.checkSecrets(s, named)
			p.checkEnvConfig(s, named)
		}
	}
}

// containsFold reports whether s contains the lower-case ASCII word sub,
// ignoring case.
func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}
