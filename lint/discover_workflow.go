package lint

import (
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// workflowBuilds reads the builds of a GitHub Actions workflow: steps that
// use docker/build-push-action or an action with its inputs
// (depot/build-push-action, useblacksmith/build-push-action), whose
// context: and file: are relative to the repository root (no context means
// the repository itself), and run: steps that call docker build or docker
// buildx build.
func workflowBuilds(root, file string, dt []byte) []namedBuild {
	var doc struct {
		Jobs map[string]struct {
			Defaults struct {
				Run struct {
					WorkingDirectory string `yaml:"working-directory"`
				} `yaml:"run"`
			} `yaml:"defaults"`
			Steps []struct {
				Uses             string            `yaml:"uses"`
				With             map[string]string `yaml:"with"`
				Run              string            `yaml:"run"`
				WorkingDirectory string            `yaml:"working-directory"`
			} `yaml:"steps"`
		} `yaml:"jobs"`
	}
	if !decodedYAML(yaml.Unmarshal(dt, &doc)) {
		return nil
	}
	name := relTo(root, file)
	var out []namedBuild
	for _, job := range doc.Jobs {
		for _, st := range job.Steps {
			if action, _, _ := strings.Cut(st.Uses, "@"); strings.HasSuffix(action, "/build-push-action") {
				ctxPath := st.With["context"]
				if ctxPath == "" {
					ctxPath = "."
				}
				ctx, ok := resolve(root, ctxPath)
				if !ok || strings.Contains(ctxPath, "{{") {
					continue
				}
				dfs := []string{filepath.Join(ctx, "Dockerfile")}
				if f := st.With["file"]; f != "" {
					// A file named by a matrix (Dockerfile.${{ matrix.os }})
					// is each Dockerfile that matches.
					if dfs, ok = workflowFiles(root, f); !ok {
						continue
					}
				}
				for _, df := range dfs {
					out = append(out, namedBuild{dockerfile: df, context: ctx, args: lineArgs(st.With["build-args"]),
						why: fmt.Sprintf("named by %s, %s", name, action)})
				}
				continue
			}
			if st.Run == "" {
				continue
			}
			wd := st.WorkingDirectory
			if wd == "" {
				wd = job.Defaults.Run.WorkingDirectory
			}
			base, ok := resolve(root, cmpOr(wd, "."))
			if !ok {
				continue
			}
			// An expression is no shell: it stands as a word of its
			// own, and a build argument made of one is not known.
			run := workflowExpr.ReplaceAllString(st.Run, exprVar)
			for _, b := range scriptBuilds(run, base) {
				b.why = fmt.Sprintf("named by %s, %s", name, b.why)
				maps.DeleteFunc(b.args, func(_, v string) bool { return strings.Contains(v, exprVar) })
				if len(b.args) == 0 {
					b.args = nil
				}
				out = append(out, b)
			}
		}
	}
	return out
}

// exprVar is the word a workflow expression stands as in a run: step.
const exprVar = "WORKFLOW_EXPRESSION"

// workflowExpr is a ${{ }} expression of a workflow.
var workflowExpr = regexp.MustCompile(`\$\{\{[^}]*\}\}`)

// workflowFiles resolves a workflow's file: relative to root; one with
// expressions stands for the Dockerfiles that match it with each
// expression as a wildcard.
func workflowFiles(root, f string) ([]string, bool) {
	if !strings.Contains(f, "${{") {
		df, ok := resolve(root, f)
		return []string{df}, ok
	}
	pat := workflowExpr.ReplaceAllString(f, "*")
	if strings.ContainsAny(pat, "$[") || strings.Count(pat, "*") > 2 {
		return nil, false
	}
	abs, ok := resolve(root, pat)
	if !ok {
		return nil, false
	}
	m, err := filepath.Glob(abs)
	if err != nil || len(m) == 0 || len(m) > 20 {
		return nil, false
	}
	var out []string
	for _, p := range m {
		if isDockerfileName(filepath.Base(p)) {
			out = append(out, p)
		}
	}
	return out, len(out) > 0
}

// decodedYAML reports whether a document decoded, perhaps in part: a value
// of another type than expected (a list where a string was) is left out
// and the rest is kept.
func decodedYAML(err error) bool {
	var te *yaml.TypeError
	return err == nil || errors.As(err, &te)
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func lineArgs(s string) map[string]string {
	args := map[string]string{}
	for _, l := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), "="); ok && k != "" {
			args[k] = v
		}
	}
	if len(args) == 0 {
		return nil
	}
	return args
}

// dockerBoolFlags are the flags of docker build that take no value.
var dockerBoolFlags = map[string]bool{"--push": true, "--load": true, "--pull": true, "--no-cache": true, "-q": true, "--quiet": true,
	"--rm": true, "--force-rm": true, "--squash": true, "--compress": true, "--check": true, "--debug": true}

// dockerBuild reads `docker build [flags] CONTEXT` (also buildx build and
// podman build): its -f/--file and its context, relative to base, and its
// --build-arg KEY=VALUE.
func dockerBuild(c *ShellCommand, base string) (namedBuild, bool) {
	args := c.Args
	switch {
	case (c.Name() == "docker" || c.Name() == "podman") && len(args) > 1 && args[1] == "build":
		args = args[2:]
	case c.Name() == "docker" && len(args) > 2 && args[1] == "buildx" && args[2] == "build":
		args = args[3:]
	case c.Name() == "docker" && len(args) > 1 && args[1] == "image" && len(args) > 2 && args[2] == "build":
		args = args[3:]
	default:
		return namedBuild{}, false
	}
	file, ctxArg := "", ""
	var buildArgs []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") || a == "-" {
			ctxArg = a
			continue
		}
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			if dockerBoolFlags[a] || i+1 >= len(args) {
				continue
			}
			i++
			k, v = a, args[i]
		}
		switch k {
		case "-f", "--file":
			file = v
		case "--build-arg":
			buildArgs = append(buildArgs, v)
		}
	}
	ctx, ok := resolve(base, ctxArg)
	if !ok {
		return namedBuild{}, false
	}
	df := filepath.Join(ctx, "Dockerfile")
	if file != "" {
		// docker build reads -f relative to the working directory.
		if df, ok = resolve(base, file); !ok {
			return namedBuild{}, false
		}
	}
	return namedBuild{dockerfile: df, context: ctx, args: lineArgs(strings.Join(buildArgs, "\n"))}, true
}
