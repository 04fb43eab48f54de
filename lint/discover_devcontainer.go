package lint

import (
	"encoding/json"
	"fmt"
	"path"
	"path/filepath"
	"regexp"
)

// isDevcontainerFile reports a Dev Container configuration (rel is relative
// to the repository root): .devcontainer.json, .devcontainer/devcontainer.json
// or .devcontainer/NAME/devcontainer.json.
func isDevcontainerFile(rel string) bool {
	switch path.Base(rel) {
	case ".devcontainer.json":
		return path.Dir(rel) == "."
	case "devcontainer.json":
		dir := path.Dir(rel)
		return dir == ".devcontainer" || path.Dir(dir) == ".devcontainer"
	}
	return false
}

// devcontainerBuilds reads the build of a Dev Container configuration:
// build.dockerfile and build.context (the configuration's folder by
// default), relative to the file, and build.args; the older top-level
// dockerFile and context too. The file is JSON with comments and trailing
// commas.
func devcontainerBuilds(root, file string, dt []byte) []namedBuild {
	var cfg struct {
		Build struct {
			Dockerfile string            `json:"dockerfile"`
			Context    string            `json:"context"`
			Args       map[string]string `json:"args"`
		} `json:"build"`
		DockerFile string `json:"dockerFile"`
		Context    string `json:"context"`
	}
	if json.Unmarshal(plainJSON(dt), &cfg) != nil {
		return nil
	}
	df := cmpOr(cfg.Build.Dockerfile, cfg.DockerFile)
	if df == "" {
		return nil // an image or a compose file: no Dockerfile of its own
	}
	base := filepath.Dir(file)
	dockerfile, ok := resolve(base, df)
	if !ok {
		return nil
	}
	ctx, ok := resolve(base, cmpOr(cmpOr(cfg.Build.Context, cfg.Context), "."))
	if !ok {
		return nil
	}
	var args map[string]string
	if len(cfg.Build.Args) > 0 {
		args = cfg.Build.Args
	}
	return []namedBuild{{dockerfile: dockerfile, context: ctx, args: args, why: fmt.Sprintf("named by %s, build.dockerfile", relTo(root, file))}}
}

// jsoncNoise matches, outside strings, what JSON with comments adds to
// JSON: // and /* */ comments, and a comma before a closing bracket.
var jsoncNoise = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|//[^\n]*|/\*(?s:.*?)\*/|,(\s*[}\]])`)

// plainJSON turns JSON with comments and trailing commas into JSON.
func plainJSON(dt []byte) []byte {
	return jsoncNoise.ReplaceAllFunc(dt, func(m []byte) []byte {
		switch {
		case m[0] == '"':
			return m
		case m[0] == ',':
			return m[1:]
		}
		return nil
	})
}
