package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
	"mvdan.cc/sh/v3/shell"
)

// The CI recipes in docs/ci run strata commands; every one must name real
// subcommands and flags, and its --help must work.
func TestCIRecipesUseRealCommands(t *testing.T) {
	files, err := filepath.Glob("../../../docs/ci/*.yml")
	if err != nil || len(files) < 2 {
		t.Fatalf("recipes: %v %v", files, err)
	}
	for _, f := range files {
		dt, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc any
		if err := yaml.Unmarshal(dt, &doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		cmds := strataCommands(doc)
		if len(cmds) < 3 {
			t.Fatalf("%s: found %d strata commands, want lint, index and build", f, len(cmds))
		}
		for _, line := range cmds {
			cmdline, _, _ := strings.Cut(line, " > ")       // the redirection is the shell's
			cmdline = ghExpr.ReplaceAllString(cmdline, "x") // GitHub substitutes ${{ ... }} first
			args, err := shell.Fields(cmdline, func(name string) string { return "x" })
			if err != nil {
				t.Fatalf("%s: %q: %v", f, line, err)
			}
			args = args[1:] // strata
			root := NewRootCmd(Streams{In: strings.NewReader(""), Out: &bytes.Buffer{}, Err: &bytes.Buffer{}})
			cmd, rest, err := root.Find(args)
			if err != nil || cmd == root {
				t.Errorf("%s: %q: no such strata command", f, line)
				continue
			}
			for _, a := range rest {
				if !strings.HasPrefix(a, "-") || a == "-" {
					continue
				}
				name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
				ok := cmd.Flags().Lookup(name) != nil
				if !strings.HasPrefix(a, "--") && len(name) == 1 {
					ok = cmd.Flags().ShorthandLookup(name) != nil
				}
				if !ok {
					t.Errorf("%s: %q: %s has no flag %s", f, line, cmd.CommandPath(), a)
				}
			}
			var out, errOut bytes.Buffer
			help := append(strings.Fields(strings.TrimPrefix(cmd.CommandPath(), "strata ")), "--help")
			if code := Main(help, strings.NewReader(""), &out, &errOut); code != 0 || !strings.Contains(out.String(), "Usage:") {
				t.Errorf("strata %s: exit %d\n%s", strings.Join(help, " "), code, errOut.String())
			}
		}
	}
}

var ghExpr = regexp.MustCompile(`\$\{\{[^}]*\}\}`)

// strataCommands returns every shell line in run: and script: entries that
// runs strata.
func strataCommands(n any) []string {
	var out []string
	add := func(s string) {
		for _, l := range strings.Split(s, "\n") {
			l = strings.TrimSpace(l)
			if strings.HasPrefix(l, "strata ") {
				out = append(out, l)
			}
		}
	}
	switch v := n.(type) {
	case map[string]any:
		for k, c := range v {
			switch s := c.(type) {
			case string:
				if k == "run" || k == "script" {
					add(s)
				}
			case []any:
				if k == "script" {
					for _, x := range s {
						if str, ok := x.(string); ok {
							add(str)
						}
					}
					continue
				}
				out = append(out, strataCommands(s)...)
			default:
				out = append(out, strataCommands(c)...)
			}
		}
	case []any:
		for _, c := range v {
			out = append(out, strataCommands(c)...)
		}
	}
	return out
}

// The pre-commit hooks run strata lint (and lint --fix) on the files
// Dockerfiles are named by: each entry is a real command line, and its
// files pattern picks Dockerfiles.
func TestPreCommitHooks(t *testing.T) {
	dt, err := os.ReadFile("../../../.pre-commit-hooks.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var hooks []struct{ ID, Name, Entry, Language, Files string }
	if err := yaml.Unmarshal(dt, &hooks); err != nil || len(hooks) != 2 {
		t.Fatalf("hooks: %d, %v", len(hooks), err)
	}
	for _, h := range hooks {
		if h.ID == "" || h.Name == "" || h.Language != "golang" || !strings.HasPrefix(h.Entry, "strata lint") {
			t.Errorf("hook %+v", h)
		}
		re, err := regexp.Compile(h.Files)
		if err != nil {
			t.Fatalf("%s files: %v", h.ID, err)
		}
		for _, f := range []string{"Dockerfile", "app/Dockerfile", "Dockerfile.dev", "web/api.Dockerfile", "Containerfile"} {
			if !re.MatchString(f) {
				t.Errorf("%s does not lint %s", h.ID, f)
			}
		}
		if re.MatchString("main.go") {
			t.Errorf("%s lints main.go", h.ID)
		}
		// pre-commit appends the file names to the entry.
		dir := t.TempDir()
		df := filepath.Join(dir, "Dockerfile")
		if err := os.WriteFile(df, []byte("FROM debian\nRUN apt-get update\nRUN apt-get install -y curl\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		args := append(strings.Fields(h.Entry)[1:], df)
		var out, errOut bytes.Buffer
		code := Main(args, strings.NewReader(""), &out, &errOut)
		fixed, _ := os.ReadFile(df)
		switch {
		case strings.Contains(h.Entry, "--fix"):
			if !strings.Contains(string(fixed), "apt-get update && apt-get install") {
				t.Errorf("%s: exit %d, Dockerfile not fixed:\n%s%s", h.ID, code, fixed, errOut.String())
			}
		case code != 1:
			t.Errorf("%s: exit %d on a Dockerfile with findings, want 1\n%s", h.ID, code, errOut.String())
		}
	}
}

// strata's own frontend image Dockerfile has nothing to fix.
func TestRepositoryDockerfileIsClean(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := Main([]string{"lint", "../../../Dockerfile"}, strings.NewReader(""), &out, &errOut); code != 0 {
		t.Fatalf("strata lint Dockerfile: exit %d\n%s%s", code, out.String(), errOut.String())
	}
}
