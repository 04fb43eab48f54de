package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-build/strata/lint"
)

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func runStrata(t *testing.T, stdin string, args ...string) (code int, out, errOut string) {
	t.Helper()
	var o, e bytes.Buffer
	code = Main(args, strings.NewReader(stdin), &o, &e)
	return code, o.String(), e.String()
}

const npmProject = "FROM node:22\nWORKDIR /app\nCOPY . .\nRUN npm ci\n"

func TestLintExitCodes(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"bad/Dockerfile":          npmProject,
		"bad/package.json":        "{}",
		"bad/package-lock.json":   "{}",
		"bad/index.js":            "x\n",
		"bad/.dockerignore":       "Dockerfile\n",
		"good/Dockerfile":         "FROM alpine\nRUN apk add --no-cache curl\n",
		"broken/Dockerfile":       "FROM alpine\nFOO bar\n",
		"info/Dockerfile":         "FROM python:3.12\nCOPY app.py /app/\nRUN apt-get update && apt-get install -y libpq5\n",
		"info/app.py":             "print()\n",
		"info/.dockerignore":      "Dockerfile\n",
		"nested/x/app.Dockerfile": "FROM alpine\n",
	})
	tests := []struct {
		name string
		args []string
		code int
		out  string
	}{
		{"clean", []string{"lint", filepath.Join(dir, "good")}, 0, ""},
		{"findings", []string{"lint", filepath.Join(dir, "bad", "Dockerfile")}, 1, "SourceCopiedBeforeDependencyInstall"},
		{"fail-level none", []string{"lint", "--fail-level", "none", filepath.Join(dir, "bad")}, 0, "SourceCopiedBeforeDependencyInstall"},
		{"info below warning", []string{"lint", filepath.Join(dir, "info")}, 0, "StableStepAfterVolatileStep"},
		{"info at info", []string{"lint", "--fail-level=info", filepath.Join(dir, "info")}, 1, "StableStepAfterVolatileStep"},
		{"parse error, others linted", []string{"lint", filepath.Join(dir, "broken"), filepath.Join(dir, "bad")}, 2, "SourceCopiedBeforeDependencyInstall"},
		{"bad format", []string{"lint", "--format", "yaml", filepath.Join(dir, "good")}, 2, ""},
		{"bad fail level", []string{"lint", "--fail-level", "loud", filepath.Join(dir, "good")}, 2, ""},
		{"missing path", []string{"lint", filepath.Join(dir, "nope")}, 2, ""},
		{"bad context", []string{"lint", "--context", filepath.Join(dir, "nope"), filepath.Join(dir, "good")}, 2, ""},
		{"finds *.Dockerfile", []string{"lint", "--format", "json", filepath.Join(dir, "nested")}, 0, `"findings": []`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runStrata(t, "", tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out, errOut)
			}
			if !strings.Contains(out, tt.out) {
				t.Errorf("stdout lacks %q:\n%s", tt.out, out)
			}
		})
	}
}

func TestLintStdinJSON(t *testing.T) {
	code, out, _ := runStrata(t, "FROM alpine\nRUN apt-get update\nRUN apt-get install -y curl\n", "lint", "--format", "json", "-")
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	var doc struct {
		Version  int `json:"version"`
		Findings []struct {
			Rule string `json:"rule"`
			File string `json:"file"`
			Line int    `json:"line"`
		} `json:"findings"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if doc.Version != 2 || len(doc.Findings) == 0 || doc.Findings[0].File != "-" || doc.Findings[0].Line != 2 {
		t.Errorf("unexpected: %+v", doc)
	}
}

func TestLintParseErrorInJSON(t *testing.T) {
	code, out, errOut := runStrata(t, "FROM alpine\nFOO bar\n", "lint", "--format", "json", "-")
	if code != 2 || !strings.Contains(out, `"rule": "ParseError"`) || !strings.Contains(out, `"line": 2`) || !strings.Contains(errOut, "-:2:") {
		t.Errorf("exit %d\n%s\n%s", code, out, errOut)
	}
}

func TestLintFixAndDiff(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"Dockerfile":        npmProject,
		"package.json":      "{}",
		"package-lock.json": "{}",
		"index.js":          "x\n",
		"node_modules/a.js": "x\n",
		".dockerignore":     "Dockerfile\n",
	})
	df := filepath.Join(dir, "Dockerfile")
	code, out, _ := runStrata(t, "", "lint", "--diff", df)
	if code != 1 || !strings.Contains(out, "+COPY package-lock.json package.json ./") || !strings.Contains(out, "+node_modules") {
		t.Errorf("diff (exit %d):\n%s", code, out)
	}
	if dt, _ := os.ReadFile(df); string(dt) != npmProject {
		t.Fatal("--diff must not write")
	}
	code, out, errOut := runStrata(t, "", "lint", "--fix", df)
	dt, _ := os.ReadFile(df)
	want := "FROM node:22\nWORKDIR /app\nCOPY package-lock.json package.json ./\nRUN npm ci\nCOPY . .\n"
	if string(dt) != want {
		t.Errorf("fixed Dockerfile:\n%s\nwant\n%s\n(exit %d) %s %s", dt, want, code, out, errOut)
	}
	ig, _ := os.ReadFile(filepath.Join(dir, ".dockerignore"))
	if !strings.Contains(string(ig), "\nnode_modules\n") || !strings.HasPrefix(string(ig), "Dockerfile\n") {
		t.Errorf(".dockerignore after fix:\n%s", ig)
	}
	if code != 0 {
		t.Errorf("after --fix nothing should remain at warning level: exit %d\n%s", code, out)
	}
}

// Two Dockerfiles that share a context and no ignore file yet: one patch
// creates the ignore file once, and git apply takes it whole.
func TestLintDiffOfSharedIgnoreApplies(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"Dockerfile":        npmProject,
		"Dockerfile.dev":    npmProject,
		"package.json":      "{}",
		"package-lock.json": "{}",
		"index.js":          "x\n",
		"node_modules/a.js": "x\n",
	})
	t.Chdir(dir)
	code, out, errOut := runStrata(t, "", "lint", "--diff", ".")
	if code != 1 || strings.Count(out, "+++ b/.dockerignore") != 1 || !strings.Contains(out, "--- /dev/null\n+++ b/.dockerignore\n@@ -0,0 +1,") {
		t.Fatalf("diff (exit %d):\n%s%s", code, out, errOut)
	}
	if err := os.WriteFile("fix.patch", []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command("git", "apply", "fix.patch").CombinedOutput(); err != nil {
		t.Fatalf("git apply: %v\n%s\n%s", err, b, out)
	}
	if err := os.Remove("fix.patch"); err != nil {
		t.Fatal(err)
	}
	ig, _ := os.ReadFile(".dockerignore")
	if string(ig) != "# added by strata lint --fix\nnode_modules\n" {
		t.Errorf(".dockerignore after the patch: %q", ig)
	}
	if code, out, _ := runStrata(t, "", "lint", "--diff", "."); code != 0 || out != "" {
		t.Errorf("after the patch (exit %d):\n%s", code, out)
	}
}

// A fix of one Dockerfile does not add to a shared ignore file what
// another Dockerfile's build reads: .git, for a build that runs git.
func TestLintFixKeepsWhatASharedIgnoreFileNeeds(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		".git/HEAD":              "ref: refs/heads/main\n",
		".git/config":            "[core]\n",
		"compose.yaml":           "services:\n  app:\n    build: .\n",
		"Makefile":               "image:\n\tdocker build -f docker/prod/Dockerfile -t app .\n",
		"Dockerfile":             "FROM golang:1.26\nWORKDIR /src\nCOPY . .\n",
		"docker/prod/Dockerfile": "FROM alpine/git:2.45.2\nWORKDIR /src\nCOPY . .\nRUN git rev-parse HEAD > /version\n",
		"main.go":                "package main\n",
		".dockerignore":          "/build\n",
	})
	t.Chdir(dir)
	for _, mode := range []string{"--diff", "--fix"} {
		_, out, errOut := runStrata(t, "", "lint", mode, ".")
		if !strings.Contains(errOut, ".git is not added to .dockerignore: docker/prod/Dockerfile shares it and reads .git") {
			t.Errorf("%s: stderr %q", mode, errOut)
		}
		if strings.Contains(out, "+.git") || strings.Contains(errOut, "fixed") {
			t.Errorf("%s adds .git:\n%s%s", mode, out, errOut)
		}
		if ig, _ := os.ReadFile(".dockerignore"); string(ig) != "/build\n" {
			t.Errorf("%s: .dockerignore is now %q", mode, ig)
		}
	}
}

func TestLintConfigFile(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"Dockerfile":   "FROM alpine\nARG DEPLOY_ID\nRUN echo hi\nLABEL id=$DEPLOY_ID\nRUN date > /d\n",
		".strata.yaml": "failLevel: error\nvolatileArgs: [DEPLOY_*]\nrules:\n  NonDeterministicRun: error\n",
	})
	code, out, errOut := runStrata(t, "", "lint", "--config", filepath.Join(dir, ".strata.yaml"), dir)
	if code != 1 || !strings.Contains(out, "VolatileArgBeforeRun") || !strings.Contains(out, "error NonDeterministicRun") {
		t.Errorf("exit %d\n%s%s", code, out, errOut)
	}
	bad := writeFiles(t, map[string]string{"c.yaml": "rules:\n  NoSuchRule: off\n"})
	if code, _, errOut := runStrata(t, "", "lint", "--config", filepath.Join(bad, "c.yaml"), dir); code != 2 || !strings.Contains(errOut, "NoSuchRule") {
		t.Errorf("unknown rule in config: exit %d %s", code, errOut)
	}
}

func TestLintListRules(t *testing.T) {
	code, out, _ := runStrata(t, "", "lint", "--list-rules")
	if code != 0 || !strings.Contains(out, "SourceCopiedBeforeDependencyInstall") || !strings.Contains(out, "JSONArgsRecommended") {
		t.Errorf("exit %d\n%s", code, out)
	}
}

// TestLintDiscoversRootContext: strata lint run at the root of a repository
// whose docker/Dockerfile is built from the root finds what
// strata lint --context . docker/Dockerfile finds.
func TestLintDiscoversRootContext(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		".git/HEAD":             "ref: refs/heads/main\n",
		".dockerignore":         "node_modules\n",
		"docker/Dockerfile":     "FROM node:22\nWORKDIR /app\nCOPY ./frontend .\nRUN yarn --frozen-lockfile --network-timeout 600000\nRUN yarn build\n",
		"frontend/package.json": "{}",
		"frontend/yarn.lock":    "",
		"frontend/src/index.js": "x\n",
	})
	t.Chdir(dir)
	type finding struct {
		Rule    string `json:"rule"`
		File    string `json:"file"`
		Line    int    `json:"line"`
		Message string `json:"message"`
		Context struct {
			Dir    string `json:"dir"`
			Reason string `json:"reason"`
		} `json:"context"`
	}
	run := func(args ...string) []finding {
		t.Helper()
		_, out, errOut := runStrata(t, "", append([]string{"lint", "--format", "json"}, args...)...)
		var doc struct {
			Findings []finding `json:"findings"`
		}
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatalf("%v\n%s\n%s", err, out, errOut)
		}
		return doc.Findings
	}
	found, given := run(), run("--context", ".", "docker/Dockerfile")
	if len(found) == 0 || len(found) != len(given) {
		t.Fatalf("discovered: %+v\ngiven: %+v", found, given)
	}
	rules := map[string]bool{}
	for i := range found {
		a, b := found[i], given[i]
		if a.Rule != b.Rule || a.File != b.File || a.Line != b.Line || a.Message != b.Message || a.Context.Dir != b.Context.Dir {
			t.Errorf("finding %d differs:\ndiscovered %+v\ngiven      %+v", i, a, b)
		}
		if a.Context.Reason != "the repository root, where its COPY sources are" || b.Context.Reason != "--context" {
			t.Errorf("reasons %q, %q", a.Context.Reason, b.Context.Reason)
		}
		rules[a.Rule] = true
	}
	if !rules["SourceCopiedBeforeDependencyInstall"] || rules["MissingDockerignore"] || rules["LockfileNotCopied"] {
		t.Errorf("rules found: %v", rules)
	}
	_, out, _ := runStrata(t, "", "lint", "--fail-level", "none")
	if !strings.HasPrefix(out, "docker/Dockerfile: build context . (the repository root, where its COPY sources are)\n") {
		t.Errorf("text output does not say which context:\n%s", out)
	}
	if err := os.WriteFile("docker/stale.Dockerfile", []byte("FROM alpine\nCOPY gone/ /x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Sources found nowhere may be build outputs: the .dockerignore
	// written for the context places it; with none, there is no context.
	_, out, _ = runStrata(t, "", "lint", "--fail-level", "none", "docker/stale.Dockerfile")
	if want := "docker/stale.Dockerfile: build context . (the nearest folder up from the Dockerfile with a .dockerignore; its COPY sources are not in the repository (build outputs?))\n"; out != want {
		t.Errorf("text output:\n%s\nwant\n%s", out, want)
	}
	if err := os.Remove(".dockerignore"); err != nil {
		t.Fatal(err)
	}
	_, out, _ = runStrata(t, "", "lint", "--fail-level", "none", "docker/stale.Dockerfile")
	if want := "docker/stale.Dockerfile: no build context (" + lint.NoContextReason + ": its COPY sources are in no folder up to the repository root)\n"; out != want {
		t.Errorf("text output:\n%s\nwant\n%s", out, want)
	}
}
