package lint

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxBuildFileDepth bounds how deep below the repository root compose and
// bake files are looked for, so a large repository stays quick to scan.
const maxBuildFileDepth = 4

// maxBuildFileSize skips files too large to be hand-written build files.
const maxBuildFileSize = 1 << 20

// scanBuildFiles reads the compose, bake, GitHub workflow files and
// Makefiles of the repository at root and returns the builds they declare:
// compose first, then bake, workflows, Makefiles, each kind in path order. The files are looked
// for among tracked, the paths git tracks, or when git tracks nothing
// known, in a walk of the work tree.
func scanBuildFiles(root string, tracked []string) []namedBuild {
	var compose, bake, makefiles, devcontainers []string
	add := func(p, name string) {
		rel, _ := filepath.Rel(root, p)
		switch {
		case isDevcontainerFile(filepath.ToSlash(rel)):
			devcontainers = append(devcontainers, p)
		case isComposeName(name):
			compose = append(compose, p)
		case isMakefileName(name):
			makefiles = append(makefiles, p)
		case strings.HasPrefix(name, "docker-bake") && (strings.HasSuffix(name, ".hcl") || strings.HasSuffix(name, ".json")):
			bake = append(bake, p)
		}
	}
	for _, rel := range tracked {
		if strings.Count(rel, "/") <= maxBuildFileDepth && !inSkippedDir(rel) {
			add(filepath.Join(root, filepath.FromSlash(rel)), path.Base(rel))
		}
	}
	if len(tracked) == 0 {
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			rel, _ := filepath.Rel(root, p)
			if d.IsDir() {
				if p != root && (skippedDir(d.Name()) || strings.Count(rel, string(filepath.Separator)) >= maxBuildFileDepth) {
					return filepath.SkipDir
				}
				return nil
			}
			add(p, d.Name())
			return nil
		})
	}
	flows, _ := filepath.Glob(filepath.Join(root, ".github", "workflows", "*.y*ml"))
	pipelines := pipelineFiles(root)
	sort.Strings(compose)
	sort.Strings(bake)
	sort.Strings(flows)
	sort.Strings(makefiles)
	var out []namedBuild
	for _, f := range compose {
		out = append(out, readBuildFile(root, f, composeBuilds)...)
	}
	for _, f := range bake {
		out = append(out, readBuildFile(root, f, bakeBuilds)...)
	}
	for _, f := range flows {
		out = append(out, readBuildFile(root, f, workflowBuilds)...)
	}
	for _, f := range pipelines {
		out = append(out, readBuildFile(root, f, pipelineBuilds)...)
	}
	sort.Strings(devcontainers)
	for _, f := range devcontainers {
		out = append(out, readBuildFile(root, f, devcontainerBuilds)...)
	}
	for _, f := range makefiles {
		out = append(out, readBuildFile(root, f, makefileBuilds)...)
	}
	return out
}

var skipDirs = map[string]bool{"node_modules": true, "vendor": true, "third_party": true, "target": true, "dist": true, "build": true}

// toolDirs are the hidden folders of version control, caches, virtual
// environments and editors. Other hidden folders (.ci, .devcontainer,
// .docker, .github) hold build files and Dockerfiles like any other.
var toolDirs = map[string]bool{".git": true, ".hg": true, ".svn": true, ".cache": true, ".venv": true, ".tox": true, ".nox": true,
	".terraform": true, ".next": true, ".nuxt": true, ".svelte-kit": true, ".angular": true, ".turbo": true, ".vercel": true,
	".idea": true, ".vscode": true, ".gradle": true, ".m2": true, ".npm": true, ".yarn": true, ".pnpm-store": true, ".direnv": true,
	".mypy_cache": true, ".pytest_cache": true, ".ruff_cache": true, ".parcel-cache": true, ".serverless": true, ".bundle": true,
	".cargo": true, ".rustup": true, ".local": true}

// skippedDir reports a folder that holds no build files of the project:
// a tool's hidden folder, dependencies or build outputs.
func skippedDir(name string) bool {
	return toolDirs[name] || skipDirs[name]
}

// inSkippedDir reports a path below a skipped folder, which the walk does
// not enter either.
func inSkippedDir(rel string) bool {
	parts := strings.Split(rel, "/")
	for _, d := range parts[:len(parts)-1] {
		if skippedDir(d) {
			return true
		}
	}
	return false
}

func isComposeName(n string) bool {
	ext := filepath.Ext(n)
	if ext != ".yml" && ext != ".yaml" {
		return false
	}
	stem := strings.TrimSuffix(n, ext)
	for _, p := range []string{"docker-compose", "compose"} {
		if stem == p || strings.HasPrefix(stem, p+".") || strings.HasPrefix(stem, p+"-") {
			return true
		}
	}
	return false
}

func readBuildFile(root, file string, parse func(root, file string, dt []byte) []namedBuild) []namedBuild {
	fi, err := os.Stat(file)
	if err != nil || fi.Size() > maxBuildFileSize {
		return nil
	}
	dt, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	return parse(root, file, dt)
}

func relTo(root, p string) string {
	if r, err := filepath.Rel(root, p); err == nil {
		return filepath.ToSlash(r)
	}
	return p
}

// resolve joins a relative path onto base; ok is false for URLs and for
// values that still hold variables.
func resolve(base, p string) (string, bool) {
	if p == "" || strings.Contains(p, "$") || strings.Contains(p, "://") || strings.HasPrefix(p, "git@") {
		return "", false
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(base, filepath.FromSlash(p))
	}
	return filepath.Clean(p), true
}

// interpolate applies compose's ${VAR}, ${VAR:-default}, ${VAR-default}
// and $VAR with the variables of env (the project's .env file); ok is false
// when a variable is neither set nor defaulted.
func interpolate(s string, env map[string]string) (string, bool) {
	var b strings.Builder
	for {
		i := strings.Index(s, "$")
		if i < 0 || i+1 == len(s) {
			b.WriteString(s)
			break
		}
		b.WriteString(s[:i])
		s = s[i+1:]
		var expr string
		switch {
		case s[0] == '$': // $$ is a literal $
			b.WriteByte('$')
			s = s[1:]
			continue
		case s[0] == '{':
			j := strings.Index(s, "}")
			if j < 0 {
				return "", false
			}
			expr, s = s[1:j], s[j+1:]
		default:
			j := 0
			for j < len(s) && (s[j] == '_' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= '0' && s[j] <= '9') {
				j++
			}
			if j == 0 {
				return "", false
			}
			expr, s = s[:j], s[j:]
		}
		name, def, hasDef := strings.Cut(expr, "-")
		colon := strings.HasSuffix(name, ":")
		name = strings.TrimSuffix(name, ":")
		v, set := env[name]
		switch {
		case set && (v != "" || !colon):
			b.WriteString(v)
		case hasDef:
			b.WriteString(def)
		default:
			return "", false
		}
	}
	return b.String(), true
}

// dotEnv reads the variables of the .env file in dir, as compose does for
// the project there: KEY=VALUE lines, # comments, quotes taken off.
func dotEnv(dir string) map[string]string {
	dt, err := os.ReadFile(filepath.Join(dir, ".env"))
	if err != nil || len(dt) > 1<<20 {
		return nil
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(dt), "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "export "))
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" || strings.HasPrefix(k, "#") {
			continue
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		} else if i := strings.Index(v, " #"); i >= 0 {
			v = strings.TrimSpace(v[:i])
		}
		env[strings.TrimSpace(k)] = v
	}
	return env
}

// composeBuilds reads the build sections of a compose file.
func composeBuilds(root, file string, dt []byte) []namedBuild {
	var doc struct {
		Services map[string]struct {
			Build yaml.Node `yaml:"build"`
		} `yaml:"services"`
	}
	if !decodedYAML(yaml.Unmarshal(dt, &doc)) {
		return nil
	}
	names := make([]string, 0, len(doc.Services))
	for n := range doc.Services {
		names = append(names, n)
	}
	sort.Strings(names)
	env := dotEnv(filepath.Dir(file))
	var out []namedBuild
	for _, name := range names {
		n := doc.Services[name].Build
		var b struct {
			Context    string    `yaml:"context"`
			Dockerfile string    `yaml:"dockerfile"`
			Inline     string    `yaml:"dockerfile_inline"`
			Args       yaml.Node `yaml:"args"`
		}
		switch n.Kind {
		case yaml.ScalarNode:
			b.Context = n.Value
		case yaml.MappingNode:
			if n.Decode(&b) != nil {
				continue
			}
		default:
			continue
		}
		if b.Inline != "" {
			continue // the Dockerfile is in the compose file itself
		}
		if b.Context == "" {
			b.Context = "."
		}
		if b.Dockerfile == "" {
			b.Dockerfile = "Dockerfile"
		}
		ctxPath, ok1 := interpolate(b.Context, env)
		dfPath, ok2 := interpolate(b.Dockerfile, env)
		if !ok1 || !ok2 {
			continue
		}
		ctx, ok1 := resolve(filepath.Dir(file), ctxPath)
		df, ok2 := resolve(ctx, dfPath)
		if !ok1 || !ok2 {
			continue
		}
		out = append(out, namedBuild{dockerfile: df, context: ctx, args: composeArgs(&b.Args, env),
			why: fmt.Sprintf("named by %s, service %s", relTo(root, file), name)})
	}
	return out
}

func composeArgs(n *yaml.Node, env map[string]string) map[string]string {
	args := map[string]string{}
	set := func(k, v string) {
		// A value that needs a variable neither .env nor a default gives
		// is left out, as an unset build argument.
		if v, ok := interpolate(v, env); ok {
			args[k] = v
		}
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			set(n.Content[i].Value, n.Content[i+1].Value)
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			if k, v, ok := strings.Cut(c.Value, "="); ok {
				set(k, v)
			}
		}
	}
	if len(args) == 0 {
		return nil
	}
	return args
}

// bakeTarget is one target of a bake file, as far as contexts go.
type bakeTarget struct {
	Context    *string           `json:"context"`
	Dockerfile *string           `json:"dockerfile"`
	Args       map[string]string `json:"args"`
	Inherits   []string          `json:"inherits"`
}

// bakeBuilds reads the targets of a docker-bake.hcl or .json file. Paths
// are relative to the bake file's folder, the dockerfile to the context.
func bakeBuilds(root, file string, dt []byte) []namedBuild {
	var targets map[string]*bakeTarget
	if strings.HasSuffix(file, ".json") {
		var doc struct {
			Target map[string]*bakeTarget `json:"target"`
		}
		if json.Unmarshal(dt, &doc) != nil {
			return nil
		}
		targets = doc.Target
	} else {
		targets = bakeHCL(dt)
	}
	names := make([]string, 0, len(targets))
	for n := range targets {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []namedBuild
	for _, name := range names {
		t := bakeInherit(targets, name, 0)
		ctxPath, dfPath := ".", "Dockerfile"
		if t.Context != nil {
			ctxPath = *t.Context
		}
		if t.Dockerfile != nil {
			dfPath = *t.Dockerfile
		}
		// bake resolves paths in the folder it runs in: the bake file's
		// own, or the repository root for docker buildx bake -f
		// docker/docker-bake.hcl run there. The first where the
		// Dockerfile exists counts, else the bake file's own.
		var ctx, df string
		for i, base := range []string{filepath.Dir(file), root} {
			c, ok1 := resolve(base, ctxPath)
			d, ok2 := resolve(c, dfPath)
			if !ok1 || !ok2 {
				continue
			}
			_, err := os.Stat(d)
			if err == nil || i == 0 {
				ctx, df = c, d
			}
			if err == nil {
				break
			}
		}
		if ctx == "" {
			continue
		}
		out = append(out, namedBuild{dockerfile: df, context: ctx, args: t.Args,
			why: fmt.Sprintf("named by %s, target %s", relTo(root, file), name)})
	}
	return out
}

// bakeInherit merges the targets a target inherits, nearest last.
func bakeInherit(targets map[string]*bakeTarget, name string, depth int) bakeTarget {
	t := targets[name]
	if t == nil || depth > 8 {
		return bakeTarget{}
	}
	var out bakeTarget
	for _, parent := range t.Inherits {
		p := bakeInherit(targets, parent, depth+1)
		if p.Context != nil {
			out.Context = p.Context
		}
		if p.Dockerfile != nil {
			out.Dockerfile = p.Dockerfile
		}
	}
	if t.Context != nil {
		out.Context = t.Context
	}
	if t.Dockerfile != nil {
		out.Dockerfile = t.Dockerfile
	}
	out.Args = t.Args
	return out
}
