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

// scanBuildFiles reads the compose, bake and GitHub workflow files of the
// repository at root and returns the builds they declare: compose first,
// then bake, then workflows, each kind in path order. The files are looked
// for among tracked, the paths git tracks, or when git tracks nothing
// known, in a walk of the work tree.
func scanBuildFiles(root string, tracked []string) []namedBuild {
	var compose, bake []string
	add := func(p, name string) {
		switch {
		case isComposeName(name):
			compose = append(compose, p)
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
				if p != root && (strings.HasPrefix(d.Name(), ".") || skipDirs[d.Name()] || strings.Count(rel, string(filepath.Separator)) >= maxBuildFileDepth) {
					return filepath.SkipDir
				}
				return nil
			}
			add(p, d.Name())
			return nil
		})
	}
	flows, _ := filepath.Glob(filepath.Join(root, ".github", "workflows", "*.y*ml"))
	sort.Strings(compose)
	sort.Strings(bake)
	sort.Strings(flows)
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
	return out
}

var skipDirs = map[string]bool{"node_modules": true, "vendor": true, "third_party": true, "target": true, "dist": true, "build": true}

// inSkippedDir reports a path below a hidden or skipped folder, which the
// walk does not enter either.
func inSkippedDir(rel string) bool {
	parts := strings.Split(rel, "/")
	for _, d := range parts[:len(parts)-1] {
		if strings.HasPrefix(d, ".") || skipDirs[d] {
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
	return stem == "compose" || stem == "docker-compose" || strings.HasPrefix(stem, "docker-compose.") || strings.HasPrefix(stem, "compose.")
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

// interpolate applies compose's ${VAR:-default} and ${VAR-default} with no
// variables set; ok is false when a variable has no default.
func interpolate(s string) (string, bool) {
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			break
		}
		j := strings.Index(s[i:], "}")
		if j < 0 {
			return "", false
		}
		expr := s[i+2 : i+j]
		_, def, ok := strings.Cut(expr, "-")
		if !ok {
			return "", false
		}
		b.WriteString(s[:i] + strings.TrimPrefix(def, "-"))
		s = s[i+j+1:]
	}
	out := b.String()
	return out, !strings.Contains(out, "$")
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
		ctxPath, ok1 := interpolate(b.Context)
		dfPath, ok2 := interpolate(b.Dockerfile)
		if !ok1 || !ok2 {
			continue
		}
		ctx, ok1 := resolve(filepath.Dir(file), ctxPath)
		df, ok2 := resolve(ctx, dfPath)
		if !ok1 || !ok2 {
			continue
		}
		out = append(out, namedBuild{dockerfile: df, context: ctx, args: composeArgs(&b.Args),
			why: fmt.Sprintf("named by %s, service %s", relTo(root, file), name)})
	}
	return out
}

func composeArgs(n *yaml.Node) map[string]string {
	args := map[string]string{}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			args[n.Content[i].Value] = n.Content[i+1].Value
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			if k, v, ok := strings.Cut(c.Value, "="); ok {
				args[k] = v
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
		ctx, ok1 := resolve(filepath.Dir(file), ctxPath)
		df, ok2 := resolve(ctx, dfPath)
		if !ok1 || !ok2 {
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
