package lint

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

// fix is a rewrite of the Dockerfile (line edits) and of the ignore file
// (lines to append).
type fix struct {
	edits  []edit
	ignore []string
	// keys name what the fix achieves, like "the npm dependencies of the
	// COPY on line 3 are installed before it". Once fixes with all of a
	// fix's keys are applied, it is already done: it counts as applied and
	// adds nothing, so two findings on one COPY do not repeat its manifests
	// and install.
	keys []string
}

// done reports whether fixes applied already achieve everything fx does.
func (fx *fix) done(applied map[string]bool) bool {
	for _, k := range fx.keys {
		if !applied[k] {
			return false
		}
	}
	return len(fx.keys) > 0
}

// edit deletes lines [del, delEnd] (none when del is 0) and inserts text
// before line at.
type edit struct {
	del, delEnd int
	at          int
	text        []string
}

// Fixed is the outcome of applying fixes.
type Fixed struct {
	Dockerfile   []byte   // the rewritten Dockerfile
	IgnoreAppend []string // entries to append to the ignore file
	Applied      []Finding
	Skipped      []Finding // fixes dropped because they overlapped or did not parse
}

// Fix applies the fixes of the fixable findings in r. A fix is kept only
// when the Dockerfile still parses with it.
func (r *Result) Fix() *Fixed {
	out := &Fixed{Dockerfile: r.Dockerfile.Source}
	lines := r.Dockerfile.Lines
	var kept []edit
	seen := map[string]bool{}
	done := map[string]bool{}
	for _, f := range r.Findings {
		if f.fix == nil {
			continue
		}
		if f.fix.done(done) {
			out.Applied = append(out.Applied, f)
			continue
		}
		try := append(append([]edit(nil), kept...), f.fix.edits...)
		if overlapping(try) {
			out.Skipped = append(out.Skipped, f)
			continue
		}
		text := render(lines, try, r.Dockerfile.eol())
		if _, err := Parse(r.File, text, nil); err != nil {
			out.Skipped = append(out.Skipped, f)
			continue
		}
		kept = try
		out.Dockerfile = text
		for _, k := range f.fix.keys {
			done[k] = true
		}
		out.Applied = append(out.Applied, f)
		for _, ig := range f.fix.ignore {
			if !seen[ig] {
				seen[ig] = true
				out.IgnoreAppend = append(out.IgnoreAppend, ig)
			}
		}
	}
	return out
}

func overlapping(edits []edit) bool {
	type rng struct{ a, b int }
	var rs []rng
	for _, e := range edits {
		if e.del > 0 {
			rs = append(rs, rng{e.del, e.delEnd})
		}
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].a < rs[j].a })
	for i := 1; i < len(rs); i++ {
		if rs[i].a <= rs[i-1].b {
			return true
		}
	}
	for _, e := range edits {
		for _, r := range rs {
			if e.at > r.a && e.at <= r.b {
				return true
			}
		}
	}
	return false
}

// eol is the Dockerfile's line ending, kept by fixes.
func (df *Dockerfile) eol() string {
	if bytes.Contains(df.Source, []byte("\r\n")) {
		return "\r\n"
	}
	return "\n"
}

// render applies line edits; lines are 1-based in edits.
func render(lines []string, edits []edit, eol string) []byte {
	var b bytes.Buffer
	deleted := map[int]bool{}
	inserts := map[int][]string{}
	for _, e := range edits {
		for l := e.del; e.del > 0 && l <= e.delEnd; l++ {
			deleted[l] = true
		}
		inserts[e.at] = append(inserts[e.at], e.text...)
	}
	for i, l := range lines {
		n := i + 1
		for _, t := range inserts[n] {
			b.WriteString(t)
			b.WriteString(eol)
		}
		if !deleted[n] {
			b.WriteString(l)
			if i < len(lines)-1 {
				b.WriteString(eol)
			}
		}
	}
	for i, t := range inserts[len(lines)+1] {
		if i == 0 && b.Len() > 0 && !bytes.HasSuffix(b.Bytes(), []byte(eol)) {
			b.WriteString(eol) // the last line had no line ending
		}
		b.WriteString(t)
		b.WriteString(eol)
	}
	return b.Bytes()
}

// stepText returns the source lines of a step.
func (df *Dockerfile) stepText(s *Step) []string {
	if s.Start < 1 || s.End > len(df.Lines) || s.Start > s.End {
		return nil
	}
	return append([]string(nil), df.Lines[s.Start-1:s.End]...)
}

// moveBefore moves step s, with the comment lines right above it (a
// description, a "# strata:ignore="), to just before line at, above the
// comment lines that belong to the instruction there.
func (df *Dockerfile) moveBefore(s *Step, at int) edit {
	start := df.commentsAbove(s.Start)
	text := append(append([]string(nil), df.Lines[start-1:s.Start-1]...), df.stepText(s)...)
	return edit{del: start, delEnd: s.End, at: df.commentsAbove(at), text: text}
}

// moveBlockBefore moves the consecutive steps first..last to just before
// line at, with the comments above first.
func (df *Dockerfile) moveBlockBefore(first, last *Step, at int) edit {
	start := df.commentsAbove(first.Start)
	var text []string
	for _, s := range first.Stage.Steps[first.Index : last.Index+1] {
		if len(text) == 0 {
			text = append(text, df.Lines[start-1:s.Start-1]...)
		} else {
			text = append(text, df.Lines[first.Stage.Steps[s.Index-1].End:s.Start-1]...)
		}
		text = append(text, df.stepText(s)...)
	}
	return edit{del: start, delEnd: last.End, at: df.commentsAbove(at), text: text}
}

var parserDirective = regexp.MustCompile(`(?i)^#\s*(syntax|escape|check)\s*=`)

// commentsAbove returns the first line of the comment block that ends
// right above line (line itself when there is none). Parser directives
// stay where they are.
func (df *Dockerfile) commentsAbove(line int) int {
	for line > 1 && line-1 <= len(df.Lines) {
		t := strings.TrimSpace(df.Lines[line-2])
		if !strings.HasPrefix(t, "#") || parserDirective.MatchString(t) {
			break
		}
		line--
	}
	return line
}

// copyFlags returns the flags of a COPY worth repeating on a manifest COPY.
func copyFlags(s *Step) string {
	var keep []string
	for _, f := range s.Node.Flags {
		l := strings.ToLower(f)
		if strings.HasPrefix(l, "--chown") || strings.HasPrefix(l, "--chmod") || strings.HasPrefix(l, "--link") {
			keep = append(keep, f)
		}
	}
	if len(keep) == 0 {
		return ""
	}
	return strings.Join(keep, " ") + " "
}

// manifestCopies returns the COPY steps that bring the manifests (files and
// directories at the root of the context) to where the source COPY src puts
// them. Files share one COPY; each directory gets its own, to a destination
// of its name: a COPY with several sources copies the contents of a
// directory source, not the directory, so requirements/base.txt beside
// requirements.txt would land at base.txt.
func manifestCopies(src *copySet, names []string) []string {
	// The source COPY made dest a directory; a single file copied to a
	// path without a trailing slash would become a file of that name.
	dest := strings.TrimSuffix(src.step.Dest, "/") + "/"
	flags := copyFlags(src.step)
	var files, dirs, nested []string
	for _, n := range names {
		switch {
		case src.isDir(n):
			dirs = append(dirs, n)
		case strings.Contains(n, "/"):
			nested = append(nested, n)
		default:
			files = append(files, n)
		}
	}
	var out []string
	if len(files) > 0 {
		out = append(out, fmt.Sprintf("COPY %s%s %s", flags, strings.Join(files, " "), dest))
	}
	for _, d := range dirs {
		out = append(out, fmt.Sprintf("COPY %s%s %s%s/", flags, d, dest, d))
	}
	// A file in a folder keeps its place: one COPY per folder.
	for len(nested) > 0 {
		dir := path.Dir(nested[0])
		var same []string
		nested = slices.DeleteFunc(nested, func(n string) bool {
			if path.Dir(n) == dir {
				same = append(same, n)
				return true
			}
			return false
		})
		out = append(out, fmt.Sprintf("COPY %s%s %s%s/", flags, strings.Join(same, " "), dest, dir))
	}
	return out
}

// hookFiles returns the context files and folders that the install hooks
// of the context's package.json name, as far as src copies them.
func (p *pass) hookFiles(src *copySet, e *ecosystem) []string {
	var out []string
	for _, rel := range p.installInputs(e) {
		for _, ent := range src.entries {
			if ent.Path == rel || strings.HasPrefix(ent.Path, rel+"/") {
				out = append(out, rel)
				break
			}
		}
	}
	return out
}

// hookPaths returns the relative paths that the install hooks of the
// context's package.json name (preinstall, install, postinstall, prepare:
// node scripts/postinstall.js, prisma generate
// --schema=prisma/schema.prisma): an install before the sources needs
// them.
func (p *pass) hookPaths(e *ecosystem) []string {
	if !e.node() {
		return nil
	}
	var hooks []string
	scripts := p.packageScripts()
	for _, hook := range installHooks {
		if h := scripts[hook]; h != "" {
			hooks = append(hooks, h)
		}
	}
	var out []string
	for _, c := range ParseScript(strings.Join(hooks, "\n"), 1).Commands {
		for _, a := range c.Args[1:] {
			if _, v, ok := strings.Cut(a, "="); ok && strings.HasPrefix(a, "-") {
				a = v
			}
			if a == "" || strings.HasPrefix(a, "-") || strings.Contains(a, "$") || path.IsAbs(a) {
				continue
			}
			if rel := path.Clean(a); rel != "." && rel != ".." && !strings.HasPrefix(rel, "../") && strings.ContainsAny(rel, "./") {
				out = append(out, rel)
			}
		}
	}
	return out
}

// installInputs are the context paths an install with e reads beyond its
// manifests: the files its install hooks name, and its local path
// dependencies.
func (p *pass) installInputs(e *ecosystem) []string {
	if in, ok := p.inputs[e]; ok {
		return in
	}
	if p.inputs == nil {
		p.inputs = map[*ecosystem][]string{}
	}
	p.inputs[e] = append(p.hookPaths(e), p.localDeps(e)...)
	return p.inputs[e]
}

// localDeps are the folders the manifests at the context's root name as
// local path dependencies (gem "x", path: "vendor/gems/x"; {:forum, path:
// "./forum"}; "file:../lib" in package.json; path = "crates/x" in
// Cargo.toml; replace => ./x in go.mod): the install reads their manifests
// and often their sources, which makes them inputs of the install. A
// bundler project's vendor/gems and vendor/cache count too.
func (p *pass) localDeps(e *ecosystem) []string {
	if p.ctx == nil {
		return nil
	}
	var out []string
	for _, ld := range localDepSpecs[e.name] {
		dt, err := os.ReadFile(filepath.Join(p.ctx.Dir(), ld.file))
		if err != nil || len(dt) > 1<<20 {
			continue
		}
		for _, m := range ld.re.FindAllSubmatch(dt, -1) {
			if rel := path.Clean(string(m[1])); rel != "." && !path.IsAbs(rel) && !strings.HasPrefix(rel, "..") {
				out = append(out, rel)
			}
		}
	}
	if e.name == "bundler" {
		out = append(out, "vendor/gems", "vendor/cache")
	}
	return out
}

// localDepSpecs say, per ecosystem, where a manifest names a local path
// dependency: the file and a pattern whose first group is the path.
var localDepSpecs = map[string][]struct {
	file string
	re   *regexp.Regexp
}{
	"bundler": {{"Gemfile", regexp.MustCompile(`(?m)\bpath(?::|\s*=>)\s*["']([^"'$#{}]+)["']`)}, {"Gemfile.lock", regexp.MustCompile(`(?m)^  remote: ([^\s:]+)$`)},
		// A file the Gemfile loads (require File.join(__dir__, 'lib/gemfile_helper.rb'), eval_gemfile).
		{"Gemfile", regexp.MustCompile(`["']((?:\./)?[\w.-]+/[\w./-]+\.rb)["']`)}, {"Gemfile", regexp.MustCompile(`\beval_gemfile\s*\(?\s*["']([^"'#{}]+)["']`)}},
	"mix":    {{"mix.exs", regexp.MustCompile(`\bpath:\s*"([^"#{}]+)"`)}},
	"npm":    {{"package.json", regexp.MustCompile(`"(?:file|link):([^"]+)"`)}},
	"yarn":   {{"package.json", regexp.MustCompile(`"(?:file|link|portal):([^"]+)"`)}},
	"pnpm":   {{"package.json", regexp.MustCompile(`"(?:file|link):([^"]+)"`)}},
	"bun":    {{"package.json", regexp.MustCompile(`"(?:file|link):([^"]+)"`)}},
	"cargo":  {{"Cargo.toml", regexp.MustCompile(`\bpath\s*=\s*"([^"]+)"`)}},
	"go":     {{"go.mod", regexp.MustCompile(`(?m)=>\s*(\.{1,2}/\S*)`)}},
	"poetry": {{"pyproject.toml", regexp.MustCompile(`\bpath\s*=\s*"([^"]+)"`)}},
	"uv":     {{"pyproject.toml", regexp.MustCompile(`\bpath\s*=\s*"([^"]+)"`)}},
}

// inputsOnly reports a copy whose source files all lie in the install's
// other inputs (installInputs): it feeds the install, as its manifests
// do.
func (p *pass) inputsOnly(cs *copySet, e *ecosystem) bool {
	files := cs.sourceFiles()
	if !cs.exact || len(files) == 0 {
		return false
	}
	paths := p.installInputs(e)
	for _, f := range files {
		if !slices.ContainsFunc(paths, func(rel string) bool { return f.Path == rel || strings.HasPrefix(f.Path, rel+"/") }) {
			return false
		}
	}
	return true
}

// installHooks are the package.json scripts an install runs.
var installHooks = []string{"preinstall", "install", "postinstall", "prepare"}

// packageScripts returns the scripts of the package.json at the context's
// root; none when it is not there or does not parse.
func (p *pass) packageScripts() map[string]string {
	if p.ctx == nil || p.scriptsRead {
		return p.scripts
	}
	p.scriptsRead = true
	dt, err := os.ReadFile(filepath.Join(p.ctx.Dir(), "package.json"))
	if err != nil || len(dt) > 1<<20 {
		return nil
	}
	var pkg struct {
		Scripts map[string]string `json:"scripts"`
	}
	if json.Unmarshal(dt, &pkg) != nil {
		return nil
	}
	p.scripts = pkg.Scripts
	return p.scripts
}

// depsKey names the fixes that install the dependencies of ecosystem e
// before the source COPY src.
func depsKey(src *copySet, e *ecosystem) string {
	return fmt.Sprintf("deps %d %s", src.step.Start, e.name)
}

// fixInstallOrder puts a COPY of the manifests and the install before the
// source COPY. Offered only when the context is known, the copy is the
// context root, and the steps in between cannot change the outcome: either
// the install moves up past other COPYs, or the source COPY moves down past
// metadata steps (WORKDIR, ENV, ...) that it does not depend on.
func (p *pass) fixInstallOrder(src *copySet, run *Step, e *ecosystem) *fix {
	if !src.exact || len(src.sources) != 1 || src.sources[0] != "." || run.Stage != src.step.Stage {
		return nil
	}
	for _, c := range run.Script.Commands {
		if needsSource(c) {
			return nil
		}
	}
	if p.workspace(src) {
		// The install needs the manifest of every member of the
		// workspace too, which a rewrite cannot list safely.
		return nil
	}
	// The run may install for several ecosystems (pip install -r
	// requirements.txt && npm ci): it moves once, with the manifests of all.
	var files, keys []string
	for _, e2 := range ecosystems {
		if e2 == e || installsWith(run.Script, e2) {
			files = append(files, topManifests(src, e2)...)
			files = append(files, p.hookFiles(src, e2)...)
			keys = append(keys, depsKey(src, e2))
		}
	}
	slices.Sort(files)
	files = slices.Compact(files)
	if len(files) == 0 {
		return nil
	}
	between := run.Stage.Steps[src.step.Index+1 : run.Index]
	onlyCopies, onlyMeta, workdir := true, true, false
	for _, mid := range between {
		switch mid.Cmd.(type) {
		case *instructions.CopyCommand, *instructions.AddCommand:
			onlyMeta = false
		case *instructions.WorkdirCommand:
			onlyCopies, workdir = false, true
		case *instructions.EnvCommand, *instructions.ArgCommand, *instructions.LabelCommand, *instructions.ExposeCommand, *instructions.UserCommand:
			onlyCopies = false
		default:
			return nil
		}
	}
	manifests := manifestCopies(src, files)
	switch {
	case onlyCopies:
		// Both go above the source COPY's comments, the manifests first.
		return &fix{keys: keys, edits: []edit{
			{at: p.df.commentsAbove(src.step.Start), text: manifests},
			p.df.moveBefore(run, src.step.Start),
		}}
	case onlyMeta && !strings.Contains(src.step.Node.Original, "$") && (!workdir || strings.HasPrefix(src.step.Dest, "/")):
		// The manifests are copied where the source COPY was, before the
		// metadata steps, so the directories they create come out as the
		// source COPY made them: a WORKDIR (or a USER) first would create
		// the destination with another owner, which a later COPY --chown
		// onto the existing directory does not change.
		return &fix{keys: keys, edits: []edit{
			{at: src.step.Start, text: manifests},
			p.df.moveBefore(src.step, run.End+1),
		}}
	}
	return nil
}

// workspace reports whether the copied context is a monorepo workspace
// (npm, yarn, pnpm, Cargo or Go): its install reads the manifests of
// members in folders of their own.
func (p *pass) workspace(src *copySet) bool {
	for _, e := range src.entries {
		switch e.Path {
		case "pnpm-workspace.yaml", "lerna.json", "go.work", "rush.json":
			return true
		case "package.json":
			if head, ok := p.head(e); ok && bytes.Contains(head, []byte(`"workspaces"`)) {
				return true
			}
		case "Cargo.toml":
			if head, ok := p.head(e); ok && bytes.Contains(head, []byte("[workspace]")) {
				return true
			}
		}
	}
	return false
}

// fixGoModDownload adds a go.mod COPY and go mod download before the source COPY.
// Its key is the one of fixInstallOrder: a go mod download after the source
// COPY that is moved up already feeds the build.
func (p *pass) fixGoModDownload(src *copySet, e *ecosystem) *fix {
	if !src.exact || len(src.sources) != 1 || src.sources[0] != "." {
		return nil
	}
	var files []string
	for _, f := range []string{"go.mod", "go.sum"} {
		for _, e := range src.entries {
			if e.Path == f {
				files = append(files, f)
			}
		}
	}
	if len(files) == 0 || files[0] != "go.mod" {
		return nil
	}
	// The download runs where the manifests go: in the working directory
	// for a relative destination, else in the destination itself (COPY .
	// /src/app with no WORKDIR /src/app builds with RUN cd /src/app && ...).
	run := "RUN go mod download"
	if dest := src.step.Dest; path.IsAbs(dest) {
		if strings.ContainsAny(dest, " \t'\"$") {
			return nil
		}
		run = "RUN cd " + path.Clean(dest) + " && go mod download"
	}
	return &fix{keys: []string{depsKey(src, e)}, edits: []edit{{at: p.df.commentsAbove(src.step.Start), text: append(manifestCopies(src, files), run)}}}
}

// installsWith reports whether a script installs dependencies with ecosystem e.
func installsWith(sc *Script, e *ecosystem) bool {
	for _, c := range sc.Commands {
		if e.install(c) {
			return true
		}
	}
	return false
}
