package lint

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/strata-build/strata/buildcontext"
)

// DiscoveredContext is the build context chosen for a Dockerfile and why.
type DiscoveredContext struct {
	// Dir is the context directory, absolute; "" when no folder can be the
	// context (the Dockerfile's COPY sources exist nowhere in the
	// repository), and the Dockerfile is best linted alone.
	Dir string
	// Reason says in a few words why Dir was chosen, for users.
	Reason string
	// BuildArgs are the build arguments the naming file gives, if any.
	BuildArgs map[string]string
	// Repo is the repository the Dockerfile lies in; nil outside one.
	Repo *Repo
}

// DiscoverContext finds the build context of a Dockerfile the way its
// repository builds it: a compose file, a bake file, a Makefile or a
// GitHub workflow in the repository that names the Dockerfile gives its
// context (unless that context lacks the Dockerfile's COPY sources and
// another folder has them all); else the nearest folder, from the
// Dockerfile's own up to the repository root, in which the Dockerfile's
// COPY and ADD sources exist.
func DiscoverContext(dockerfile string) (DiscoveredContext, error) {
	return NewDiscoverer().Discover(dockerfile)
}

// Discoverer finds build contexts; it reads each repository's compose, bake
// and workflow files once, and walks each context once, so one Discoverer
// serves many Dockerfiles.
type Discoverer struct {
	mu       sync.Mutex
	repos    map[string]*repoBuilds           // by repository root
	contexts map[string]*buildcontext.Context // by directory and ignore file
}

// NewDiscoverer returns a Discoverer with nothing read yet.
func NewDiscoverer() *Discoverer {
	return &Discoverer{repos: map[string]*repoBuilds{}, contexts: map[string]*buildcontext.Context{}}
}

// Open returns the build context dir as the Dockerfile at dockerfile sees
// it (buildcontext.Open), shared with earlier Dockerfiles that see the same
// directory through the same ignore file, so the context is walked once.
func (d *Discoverer) Open(dir, dockerfile string) (*buildcontext.Context, error) {
	c, err := buildcontext.Open(dir, dockerfile)
	if err != nil {
		return nil, err
	}
	key := c.Dir() + "\x00" + c.IgnoreFile()
	d.mu.Lock()
	defer d.mu.Unlock()
	if prev, ok := d.contexts[key]; ok {
		return prev, nil
	}
	d.contexts[key] = c
	return c, nil
}

// repoBuilds is what one repository's build files say.
type repoBuilds struct {
	repo   *Repo
	builds []namedBuild
}

// namedBuild is one build a compose, bake or workflow file declares.
type namedBuild struct {
	dockerfile string // absolute, cleaned
	context    string // absolute, cleaned
	why        string
	args       map[string]string
}

// Discover finds the build context of one Dockerfile.
func (d *Discoverer) Discover(dockerfile string) (DiscoveredContext, error) {
	abs, err := filepath.Abs(dockerfile)
	if err != nil {
		return DiscoveredContext{}, err
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	own := filepath.Dir(abs)
	root := findRepoRoot(own)
	if root == "" {
		return DiscoveredContext{Dir: own, Reason: "the Dockerfile's folder: not in a git repository"}, nil
	}
	rb := d.repoBuilds(root)
	var named []namedBuild
	for _, b := range rb.builds {
		if b.dockerfile == abs && isDir(b.context) {
			named = append(named, b)
		}
	}
	dir, why := contextBySources(abs, root)
	if len(named) == 0 {
		return DiscoveredContext{Dir: dir, Reason: why, Repo: rb.repo}, nil
	}
	// The first build whose context has the Dockerfile's COPY sources;
	// when none has them and another folder has them all, the build files
	// are out of date (a Makefile no one runs): that folder.
	dt, _ := os.ReadFile(abs)
	srcs, _, _ := copySources(dt)
	for _, b := range named {
		if missingSources(srcs, b.context) == 0 {
			return DiscoveredContext{Dir: b.context, Reason: b.why, BuildArgs: b.args, Repo: rb.repo}, nil
		}
	}
	// One missing source is too little to overrule the build file: a
	// binary CI builds into the context (COPY weed) may share its name
	// with a folder elsewhere.
	if b := named[0]; dir != "" && dir != b.context && missingSources(srcs, dir) == 0 && missingSources(srcs, b.context) >= 2 {
		why += fmt.Sprintf(", not %s (%s), which lacks them", displayRel(root, b.context), b.why)
		return DiscoveredContext{Dir: dir, Reason: why, Repo: rb.repo}, nil
	}
	b := named[0]
	return DiscoveredContext{Dir: b.context, Reason: b.why, BuildArgs: b.args, Repo: rb.repo}, nil
}

// missingSources counts the COPY and ADD sources a Dockerfile names
// (copySources) that dir lacks. What its steps need after a copy of the
// whole context is a guess, and does not count against a context a build
// file names.
func missingSources(srcs []string, dir string) int {
	n := 0
	for _, s := range srcs {
		if !sourceExists(dir, s) {
			n++
		}
	}
	return n
}

// displayRel names dir relative to the repository root ("." for the root).
func displayRel(root, dir string) string {
	if rel, err := filepath.Rel(root, dir); err == nil {
		return filepath.ToSlash(rel)
	}
	return dir
}

// OptionsFor completes opts for linting file, a path or Stdin: the
// Dockerfile's path, which finds its ignore file; when opts names no
// context, the context discovered for file and why (Stdin has none), shown
// relative to the working directory when it lies below it; the build
// arguments the file naming that context gives, under those opts gives;
// the repository of the context. With share, the context is opened through d, walked once
// for every Dockerfile that sees it the same way; a caller that rewrites
// ignore files between Dockerfiles leaves each to be walked afresh.
func (d *Discoverer) OptionsFor(file string, opts Options, share bool) (Options, error) {
	opts.DockerfilePath = file
	if file == Stdin {
		opts.DockerfilePath = ""
		if opts.ContextDir != "" {
			opts.DockerfilePath = filepath.Join(opts.ContextDir, "Dockerfile")
		}
	}
	switch {
	case opts.ContextDir != "":
		if opts.Repo == nil {
			opts.Repo = d.RepoOf(opts.ContextDir)
		}
	case file != Stdin:
		dc, err := d.Discover(file)
		if err != nil {
			return opts, &ParseError{File: file, Err: err}
		}
		opts.ContextReason, opts.Repo = dc.Reason, dc.Repo
		opts.BuildArgs = withDiscoveredArgs(dc.BuildArgs, opts.BuildArgs)
		if dc.Dir != "" {
			opts.ContextDir = displayPath(dc.Dir)
		}
	}
	if share && opts.ContextDir != "" {
		c, err := d.Open(opts.ContextDir, opts.DockerfilePath)
		if err != nil {
			return opts, err
		}
		opts.Context = c
	}
	return opts, nil
}

// withDiscoveredArgs is given over the build arguments a compose, bake or
// workflow file names; values only the CI knows (${{ github.sha }}) and
// empty ones are left out, so the Dockerfile's defaults stand for them.
func withDiscoveredArgs(found, given map[string]string) map[string]string {
	if len(found) == 0 {
		return given
	}
	out := map[string]string{}
	for k, v := range found {
		if v != "" && !strings.Contains(v, "${{") {
			out[k] = v
		}
	}
	maps.Copy(out, given)
	return out
}

// displayPath shows an absolute path relative to the working directory
// when it lies below it.
func displayPath(p string) string {
	wd, err := os.Getwd()
	if err != nil {
		return p
	}
	if real, err := filepath.EvalSymlinks(wd); err == nil {
		wd = real
	}
	rel, err := filepath.Rel(wd, p)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return p
	}
	return rel
}

// RepoOf returns the repository that dir lies in, nil outside one.
func (d *Discoverer) RepoOf(dir string) *Repo {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	root := findRepoRoot(abs)
	if root == "" {
		return nil
	}
	return d.repoBuilds(root).repo
}

func (d *Discoverer) repoBuilds(root string) *repoBuilds {
	d.mu.Lock()
	defer d.mu.Unlock()
	if rb, ok := d.repos[root]; ok {
		return rb
	}
	rb := &repoBuilds{}
	rb.repo, _ = OpenRepo(root)
	var tracked []string
	if rb.repo != nil {
		tracked = rb.repo.files()
	}
	rb.builds = scanBuildFiles(root, tracked)
	d.repos[root] = rb
	return rb
}

// findRepoRoot returns the nearest folder at or above dir that holds .git,
// or "".
func findRepoRoot(dir string) string {
	for {
		if _, err := os.Lstat(filepath.Join(dir, ".git")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// contextBySources walks from the Dockerfile's folder up to root and
// returns the nearest folder in which every COPY and ADD source of the
// Dockerfile exists, and the lockfile of a frozen install that a copy of
// the whole context must bring; when none has them all, the one that has
// the most. When no folder has any of the sources, the context is not
// known: Dir is "".
func contextBySources(dockerfile, root string) (string, string) {
	own := filepath.Dir(dockerfile)
	dt, err := os.ReadFile(dockerfile)
	if err != nil {
		return own, "the Dockerfile's folder"
	}
	srcs, locks, whole := copySources(dt)
	if whole && len(srcs) == 0 {
		if ws := workspaceRoot(own, root); ws != "" {
			return ws, "the workspace root: the package.json beside the Dockerfile depends on workspace packages (workspace: or catalog:), which only the root brings"
		}
	}
	if len(srcs) == 0 && len(locks) == 0 {
		if whole {
			if up := pastDockerfileFolders(own, root); up != own {
				return up, "the nearest folder up from the Dockerfile that holds more than Dockerfiles: it copies the whole context (COPY .)"
			}
			return own, "the Dockerfile's folder: it copies the whole context (COPY .), which does not say where that is"
		}
		return own, "the Dockerfile's folder: it copies nothing from a context"
	}
	best, bestN, anySource := own, -1, false
	for dir := own; ; dir = filepath.Dir(dir) {
		n, found := 0, 0
		for _, s := range srcs {
			if sourceExists(dir, s) {
				n++
				found++
			}
		}
		for _, alts := range locks {
			for _, l := range alts {
				if sourceExists(dir, l) {
					n++
					break
				}
			}
		}
		anySource = anySource || found > 0
		if n == len(srcs)+len(locks) {
			return dir, whereSourcesAre(dir, own, root)
		}
		if n > bestN {
			best, bestN = dir, n
		}
		if dir == root || filepath.Dir(dir) == dir {
			break
		}
	}
	switch {
	case len(srcs) > 0 && !anySource:
		// Sources that are nowhere are build outputs (COPY dist/app):
		// the folder whose .dockerignore was written for them is the
		// context.
		for dir := own; ; dir = filepath.Dir(dir) {
			if _, err := os.Stat(filepath.Join(dir, ".dockerignore")); err == nil {
				where := "the Dockerfile's folder"
				if dir != own {
					where = "the nearest folder up from the Dockerfile"
				}
				return dir, where + " with a .dockerignore; its COPY sources are not in the repository (build outputs?)"
			}
			if dir == root || filepath.Dir(dir) == dir {
				break
			}
		}
		return "", NoContextReason + ": its COPY sources are in no folder up to the repository root"
	case bestN <= 0:
		return own, "the Dockerfile's folder"
	}
	return best, whereSourcesAre(best, own, root) + ", some missing"
}

// pastDockerfileFolders returns the nearest folder from own up to root
// that holds something other than Dockerfiles and their ignore files: a
// docker/ folder of Dockerfiles is not what COPY . copies.
func pastDockerfileFolders(own, root string) string {
	dir := own
	for dir != root && filepath.Dir(dir) != dir {
		entries, err := os.ReadDir(dir)
		if err != nil || slices.ContainsFunc(entries, func(e os.DirEntry) bool {
			n := e.Name()
			return e.IsDir() || !isDockerfileName(n) && !strings.HasSuffix(n, ".dockerignore") && !strings.EqualFold(n, "README.md")
		}) {
			return dir
		}
		dir = filepath.Dir(dir)
	}
	return dir
}

// workspaceRoot returns the nearest folder above own, up to root, that
// holds a JavaScript workspace (pnpm-workspace.yaml, or a package.json
// with workspaces), when own's package.json depends on packages of it
// (the workspace: and catalog: protocols); "" otherwise.
func workspaceRoot(own, root string) string {
	dt, err := os.ReadFile(filepath.Join(own, "package.json"))
	if err != nil || !bytes.Contains(dt, []byte(`"workspace:`)) && !bytes.Contains(dt, []byte(`"catalog:`)) {
		return ""
	}
	for dir := own; dir != root && filepath.Dir(dir) != dir; {
		dir = filepath.Dir(dir)
		if _, err := os.Stat(filepath.Join(dir, "pnpm-workspace.yaml")); err == nil {
			return dir
		}
		if pkg, err := os.ReadFile(filepath.Join(dir, "package.json")); err == nil && bytes.Contains(pkg, []byte(`"workspaces"`)) {
			return dir
		}
		if dir == root {
			break
		}
	}
	return ""
}

func whereSourcesAre(dir, own, root string) string {
	switch dir {
	case own:
		return "the Dockerfile's folder, where its COPY sources are"
	case root:
		return "the repository root, where its COPY sources are"
	}
	return "the nearest folder up from the Dockerfile where its COPY sources are"
}

// copySources returns the context sources of a Dockerfile's COPY and ADD
// steps that can place it (no variables, not the whole context), and, when
// a step copies the whole context (whole), what the steps after it need
// there (each a list of alternatives): the lockfiles of frozen installs and
// the scripts RUN runs by a relative path (RUN scripts/install-protoc.sh).
func copySources(dt []byte) (srcs []string, locks [][]string, whole bool) {
	df, err := Parse("Dockerfile", dt, nil)
	if err != nil {
		return nil, nil, false
	}
	seen := map[string]bool{}
	for _, st := range df.Stages {
		wholeHere, moved := false, false // this stage copied it all; a WORKDIR since
		for _, s := range st.Steps {
			if _, ok := s.Cmd.(*instructions.WorkdirCommand); ok && wholeHere {
				moved = true
			}
			if s.Script != nil && whole {
				for _, c := range s.Script.Commands {
					for _, e := range ecosystems {
						if l := e.frozen(c); l != nil && !seen[l[0]] {
							seen[l[0]] = true
							locks = append(locks, l)
						}
					}
					if script := relativeScript(c); script != "" && !seen[script] {
						seen[script] = true
						locks = append(locks, []string{script})
					}
				}
				// An install or build run where the context was copied
				// reads its manifests there (npm install: package.json;
				// pip install .: pyproject.toml or setup.py).
				if wholeHere && !moved {
					for i, c := range s.Script.Commands {
						if c.InSubst || slices.ContainsFunc(s.Script.Commands[:i], func(c *ShellCommand) bool { return c.Name() == "cd" }) {
							continue
						}
						if alts := projectManifests(c); alts != nil && !seen[alts[0]] {
							seen[alts[0]] = true
							locks = append(locks, alts)
						}
					}
				}
				// make in the copied folder reads its Makefile there.
				if i := slices.IndexFunc(s.Script.Commands, func(c *ShellCommand) bool { return c.Name() == "make" && !c.InSubst }); i >= 0 &&
					wholeHere && !moved && !seen["Makefile"] && !s.Script.Commands[i].Has("-C", "-f", "--file=", "--directory=", "--makefile=") &&
					!slices.ContainsFunc(s.Script.Commands[:i], func(c *ShellCommand) bool { return c.Name() == "cd" }) {
					seen["Makefile"] = true
					locks = append(locks, []string{"Makefile", "makefile", "GNUmakefile"})
				}
			}
			if !fromContext(s) {
				continue
			}
			for _, src := range s.Sources {
				if strings.Contains(src, "$") {
					// An ARG that nothing sets is empty in the build:
					// COPY ${NAME}.jar copies .jar.
					if res, err := expandMatches(df.lex, src, declaredEmpty{s.Scope}); err == nil && len(res.Unmatched) == 0 {
						src = res.Result
					}
				}
				if isURL(src) || strings.Contains(src, "$") {
					continue
				}
				src = path.Clean("/" + filepath.ToSlash(src))[1:]
				if src == "" || src == "." || src == "*" {
					whole, wholeHere, moved = true, true, false
					continue
				}
				if !seen[src] {
					seen[src] = true
					srcs = append(srcs, src)
				}
			}
		}
	}
	return srcs, locks, whole
}

// projectManifests returns the files, one of which an install or build
// command c reads in its working directory: the manifests of its
// ecosystem (package.json for npm install, go.mod for go build), or those
// of a Python project for pip install . ; nil for other commands.
func projectManifests(c *ShellCommand) []string {
	if isPip(c) {
		if c.Has(".", "-e", "--editable") {
			return []string{"pyproject.toml", "setup.py", "setup.cfg"}
		}
		return nil
	}
	for _, e := range ecosystems {
		if e.name == "make" || e.name == "pip" || !e.install(c) && !e.build(c) {
			continue
		}
		var out []string
		for _, m := range e.manifests {
			if !strings.ContainsAny(m, "*?[") && !strings.HasPrefix(m, ".") {
				out = append(out, m)
			}
		}
		if len(out) > 0 {
			return out
		}
	}
	return nil
}

// declaredEmpty is a scope in which the variables declared with no value
// are set and empty; others are not set.
type declaredEmpty struct{ *Scope }

func (d declaredEmpty) Get(key string) (string, bool) {
	if v, ok := d.Scope.Get(key); ok {
		return v, true
	}
	return "", d.Var(key) != nil
}

// relativeScript is the path of a script a command runs from the copied
// context (scripts/build.sh, ./ci/setup), or "".
func relativeScript(c *ShellCommand) string {
	if len(c.Args) == 0 || c.InSubst {
		return ""
	}
	p := c.Ran()
	if strings.HasPrefix(p, "/") || strings.HasPrefix(p, "-") || strings.ContainsAny(p, "$*?[") || !strings.Contains(strings.TrimPrefix(p, "./"), "/") && !strings.HasSuffix(p, ".sh") {
		return ""
	}
	p = path.Clean(p)
	if strings.HasPrefix(p, "..") || strings.HasPrefix(p, "node_modules/") {
		return ""
	}
	return p
}

func sourceExists(dir, src string) bool {
	p := filepath.Join(dir, filepath.FromSlash(src))
	if strings.ContainsAny(src, "*?[") {
		m, _ := filepath.Glob(p)
		return len(m) > 0
	}
	_, err := os.Lstat(p)
	return err == nil
}
