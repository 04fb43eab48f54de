package lint

import (
	"fmt"
	"path"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
)

// isPipelineFile reports a Woodpecker or Drone pipeline file (rel is
// relative to the repository root): .woodpecker.yml, .woodpecker/*.yaml,
// .drone.yml.
func isPipelineFile(rel string) bool {
	ext := path.Ext(rel)
	if ext != ".yml" && ext != ".yaml" {
		return false
	}
	stem := strings.TrimSuffix(rel, ext)
	return stem == ".woodpecker" || stem == ".drone" || path.Dir(rel) == ".woodpecker"
}

// pipelineBuilds reads the builds of a Woodpecker or Drone pipeline: steps
// whose image is a docker build plugin (woodpeckerci/plugin-docker-buildx,
// plugins/docker and its kin), whose settings dockerfile (Dockerfile by
// default) and context (the repository by default) are relative to the
// repository root, and the docker build commands of steps' commands, run
// at the root. Steps are a map by name or a list, under steps or the older
// pipeline key.
func pipelineBuilds(root, file string, dt []byte) []namedBuild {
	var doc struct {
		Steps    yaml.Node `yaml:"steps"`
		Pipeline yaml.Node `yaml:"pipeline"`
	}
	if !decodedYAML(yaml.Unmarshal(dt, &doc)) {
		return nil
	}
	type step struct {
		Image    string               `yaml:"image"`
		Settings map[string]yaml.Node `yaml:"settings"`
		Commands []string             `yaml:"commands"`
	}
	var steps []step
	for _, n := range []*yaml.Node{&doc.Steps, &doc.Pipeline} {
		switch n.Kind {
		case yaml.MappingNode:
			for i := 1; i < len(n.Content); i += 2 {
				var s step
				if decodedYAML(n.Content[i].Decode(&s)) {
					steps = append(steps, s)
				}
			}
		case yaml.SequenceNode:
			for _, c := range n.Content {
				var s step
				if decodedYAML(c.Decode(&s)) {
					steps = append(steps, s)
				}
			}
		}
	}
	name := relTo(root, file)
	var out []namedBuild
	for _, s := range steps {
		image, _, _ := strings.Cut(s.Image, ":")
		if buildPlugin(image) {
			ctxPath := cmpOr(settingString(s.Settings["context"]), ".")
			ctx, ok := resolve(root, ctxPath)
			if !ok {
				continue
			}
			df, ok := resolve(root, cmpOr(settingString(s.Settings["dockerfile"]), "Dockerfile"))
			if !ok {
				continue
			}
			out = append(out, namedBuild{dockerfile: df, context: ctx, args: settingArgs(s.Settings["build_args"]),
				why: fmt.Sprintf("named by %s, %s", name, path.Base(image))})
			continue
		}
		for _, b := range scriptBuilds(strings.Join(s.Commands, "\n"), root) {
			b.why = fmt.Sprintf("named by %s, %s", name, b.why)
			out = append(out, b)
		}
	}
	return out
}

// buildPlugin reports the image of a pipeline plugin that builds a
// Dockerfile from settings.dockerfile and settings.context.
func buildPlugin(image string) bool {
	switch path.Base(image) {
	case "plugin-docker-buildx", "docker-buildx", "docker", "plugin-kaniko", "kaniko", "drone-kaniko", "buildah", "plugin-buildah":
		return strings.Contains(image, "/")
	}
	return false
}

// settingString is a plugin setting's value when it is one string without
// a variable (a path); "" otherwise.
func settingString(n yaml.Node) string {
	if n.Kind != yaml.ScalarNode || strings.Contains(n.Value, "$") {
		return ""
	}
	return n.Value
}

// settingArgs reads build_args of a plugin: "A=1,B=2", a list of A=1, or
// a map.
func settingArgs(n yaml.Node) map[string]string {
	var lines []string
	switch n.Kind {
	case yaml.ScalarNode:
		lines = strings.FieldsFunc(n.Value, func(r rune) bool { return r == ',' || r == '\n' })
	case yaml.SequenceNode:
		for _, c := range n.Content {
			lines = append(lines, c.Value)
		}
	case yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			lines = append(lines, n.Content[i-1].Value+"="+n.Content[i].Value)
		}
	}
	return lineArgs(strings.Join(lines, "\n"))
}

// pipelineFiles are the pipeline files of the repository at root.
func pipelineFiles(root string) []string {
	var out []string
	for _, pat := range []string{".woodpecker.y*ml", ".drone.y*ml", filepath.Join(".woodpecker", "*.y*ml")} {
		m, _ := filepath.Glob(filepath.Join(root, pat))
		for _, f := range m {
			if rel, err := filepath.Rel(root, f); err == nil && isPipelineFile(filepath.ToSlash(rel)) {
				out = append(out, f)
			}
		}
	}
	return out
}
