package lint

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func writeTree(t *testing.T, files map[string]string) string {
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
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	return real
}

const frontendDockerfile = "FROM node:22\nWORKDIR /app\nCOPY frontend/package.json frontend/yarn.lock ./\nRUN yarn install --frozen-lockfile\nCOPY frontend .\n"

func TestDiscoverContext(t *testing.T) {
	repo := map[string]string{
		".git/HEAD":                "ref: refs/heads/main\n",
		"docker/Dockerfile":        frontendDockerfile,
		"frontend/package.json":    "{}",
		"frontend/yarn.lock":       "",
		"frontend/src/index.js":    "",
		"services/api/Dockerfile":  "FROM golang:1.26\nCOPY go.mod go.sum ./\nRUN go mod download\nCOPY . .\n",
		"services/api/go.mod":      "module x\n",
		"services/api/go.sum":      "",
		"tools/Dockerfile":         "FROM alpine\nRUN echo hi\n",
		"lost/Dockerfile":          "FROM alpine\nCOPY nowhere /x\n",
		"deploy/app.Dockerfile":    "FROM alpine\nCOPY $X /x\n",
		"deploy/other/Dockerfile":  "FROM alpine\n",
		"deploy/third/Dockerfile":  "FROM alpine\n",
		"deploy/fourth/Dockerfile": "FROM alpine\n",
		"deploy/fifth/Dockerfile":  "FROM alpine\n",
		"apps/api/Dockerfile":      "FROM node:22\nCOPY . .\nRUN pnpm install --frozen-lockfile\n",
		"apps/api/package.json":    "{}",
		"pnpm-lock.yaml":           "",
	}
	tests := []struct {
		name       string
		extra      map[string]string
		dockerfile string
		dir        string // relative to the repository
		reason     string
		args       map[string]string
	}{
		{"sources at the root", nil, "docker/Dockerfile", ".", "the repository root, where its COPY sources are", nil},
		{"sources beside it", nil, "services/api/Dockerfile", "services/api", "the Dockerfile's folder, where its COPY sources are", nil},
		{"copies nothing", nil, "tools/Dockerfile", "tools", "the Dockerfile's folder: it copies nothing from a context", nil},
		{"source named by an undeclared variable", map[string]string{"undeclared/Dockerfile": "FROM alpine\nCOPY $X /x\n"},
			"undeclared/Dockerfile", "undeclared", "the Dockerfile's folder: it copies nothing from a context", nil},
		{"source named by an ARG nothing sets", map[string]string{"jar/Dockerfile": "FROM alpine\nARG NAME\nCOPY ${NAME}.jar /app.jar\n"},
			"jar/Dockerfile", "", NoContextReason + ": its COPY sources are in no folder up to the repository root", nil},
		{"source named by a platform ARG", map[string]string{"plat/Dockerfile": "FROM alpine\nARG TARGETARCH\nCOPY bin/app-${TARGETARCH} /app\n", "plat/bin/app-" + runtime.GOARCH: ""},
			"plat/Dockerfile", "plat", "the Dockerfile's folder, where its COPY sources are", nil},
		{"sources nowhere", nil, "lost/Dockerfile", "", NoContextReason + ": its COPY sources are in no folder up to the repository root", nil},
		{"whole context, placed by the script it runs", map[string]string{"tilt/Dockerfile": "FROM rust\nWORKDIR /v\nCOPY . .\nRUN scripts/environment/install-protoc.sh\n", "scripts/environment/install-protoc.sh": "#!/bin/sh\n"},
			"tilt/Dockerfile", ".", "the repository root, where its COPY sources are", nil},
		{"whole context, nothing to place it", map[string]string{"ctxdot/Dockerfile": "FROM alpine\nCOPY . /app\n", "ctxdot/app.conf": ""},
			"ctxdot/Dockerfile", "ctxdot", "the Dockerfile's folder: it copies the whole context (COPY .), which does not say where that is", nil},
		{"whole context, from a folder of Dockerfiles only", map[string]string{"images/Dockerfile.agent": "FROM alpine\nCOPY . /app\n", "images/Dockerfile.server": "FROM alpine\n", "images/.dockerignore": ""},
			"images/Dockerfile.agent", ".", "the nearest folder up from the Dockerfile that holds more than Dockerfiles: it copies the whole context (COPY .)", nil},
		{"whole context, then make", map[string]string{"images/Dockerfile.agent": "FROM golang:1.22\nWORKDIR /src\nCOPY . .\nARG CI_COMMIT_SHA\nRUN make build\n", "images/app.conf": "", "Makefile": "build:\n\tgo build .\n"},
			"images/Dockerfile.agent", ".", "the repository root, where its COPY sources are", nil},
		{"whole context, then make in a WORKDIR below it", map[string]string{"images/Dockerfile.agent": "FROM golang:1.22\nWORKDIR /src\nCOPY . .\nWORKDIR /src/cmd\nRUN make build\n", "images/app.conf": "", "Makefile": ""},
			"images/Dockerfile.agent", "images", "the Dockerfile's folder: it copies the whole context (COPY .), which does not say where that is", nil},
		{"whole context, then make in a folder of it", map[string]string{"images/Dockerfile.agent": "FROM golang:1.22\nWORKDIR /src\nCOPY . .\nRUN cd cmd && make build\n", "images/app.conf": "", "Makefile": ""},
			"images/Dockerfile.agent", "images", "the Dockerfile's folder: it copies the whole context (COPY .), which does not say where that is", nil},
		{"a Makefile out of date: its context lacks the COPY sources", map[string]string{"docker/multi/Makefile": "build:\n\tdocker build -t example/app .\n", "docker/multi/Dockerfile": "FROM ruby:3.3\nCOPY Gemfile Gemfile.lock /app/\nRUN bundle install\nCOPY ./ /app/\n", "Gemfile": "", "Gemfile.lock": ""},
			"docker/multi/Dockerfile", ".", "the repository root, where its COPY sources are, not docker/multi (named by docker/multi/Makefile, docker build -t), which lacks them", nil},
		{"a compose context without the Makefile a later make needs", map[string]string{"compose.yaml": "services:\n  agent:\n    build:\n      context: images\n      dockerfile: Dockerfile.agent\n", "images/Dockerfile.agent": "FROM golang:1.22\nWORKDIR /src\nCOPY . .\nWORKDIR /src/cmd\nRUN make build\n", "images/app.conf": "", "Makefile": ""},
			"images/Dockerfile.agent", "images", "named by compose.yaml, service agent", nil},
		{"a compose context that lacks one build output found elsewhere", map[string]string{"test/proxy/docker-compose.yml": "services:\n  app:\n    build:\n      context: .\n      dockerfile: Dockerfile\n", "test/proxy/Dockerfile": "FROM alpine:3.20\nCOPY weed /usr/bin/weed\n", "weed/main.go": "package main\n"},
			"test/proxy/Dockerfile", "test/proxy", "named by test/proxy/docker-compose.yml, service app", nil},
		{"a Makefile whose context lacks build outputs only", map[string]string{"docker/out/Makefile": "build:\n\tdocker build -t example/app .\n", "docker/out/Dockerfile": "FROM alpine\nCOPY dist/app /app\n"},
			"docker/out/Dockerfile", "docker/out", "named by docker/out/Makefile, docker build -t", nil},
		{"workflow file named by a matrix", map[string]string{".github/workflows/ci.yml": "jobs:\n  b:\n    strategy:\n      matrix:\n        container: [alpine, debian]\n    steps:\n      - uses: docker/build-push-action@v6\n        with:\n          context: .\n          file: ./ci/Dockerfile.ci.${{ matrix.container }}-base\n          build-args: VARIANT=${{ matrix.container }}\n", "ci/Dockerfile.ci.alpine-base": "FROM alpine\nCOPY nowhere-here /x\n", "ci/Dockerfile.ci.debian-base": "FROM debian\n"},
			"ci/Dockerfile.ci.alpine-base", ".", "named by .github/workflows/ci.yml, docker/build-push-action", map[string]string{"VARIANT": "${{ matrix.container }}"}},
		{"Dev Container build", map[string]string{".devcontainer/devcontainer.json": "// the development container\n{\n  \"name\": \"app\", /* built from the repository */\n  \"build\": {\n    \"dockerfile\": \"../deploy/third/Dockerfile\",\n    \"context\": \"..\",\n    \"args\": {\"VARIANT\": \"bookworm\"},\n  },\n  \"customizations\": {\"url\": \"http://example.com/a//b\"},\n}\n"},
			"deploy/third/Dockerfile", ".", "named by .devcontainer/devcontainer.json, build.dockerfile", map[string]string{"VARIANT": "bookworm"}},
		{"workflow run with an expression in its flags", map[string]string{".github/workflows/t.yml": "jobs:\n  b:\n    steps:\n      - run: docker build --build-arg=\"BASE=${{ matrix.base }}\" -t \"${{ matrix.tag }}\" deploy/third\n"},
			"deploy/third/Dockerfile", "deploy/third", "named by .github/workflows/t.yml, docker build", nil},
		{"bake file in a folder, run from the root", map[string]string{"images/docker-bake.hcl": "variable \"ALPINE_TAG\" { default = \"3.23.4\" }\ntarget \"admin-tools\" {\n  context = \"images\"\n  dockerfile = \"targets/admin-tools.Dockerfile\"\n  args = { ALPINE_TAG = \"${ALPINE_TAG}\" }\n}\n", "images/targets/admin-tools.Dockerfile": "ARG ALPINE_TAG\nFROM alpine:${ALPINE_TAG}\nCOPY ./build/tool /usr/local/bin/\n"},
			"images/targets/admin-tools.Dockerfile", "images", "named by images/docker-bake.hcl, target admin-tools", map[string]string{"ALPINE_TAG": "3.23.4"}},
		{"Woodpecker plugin step", map[string]string{".woodpecker/docker.yaml": "steps:\n  publish:\n    image: woodpeckerci/plugin-docker-buildx:6.1.1\n    settings:\n      repo: example/app\n      dockerfile: deploy/third/Dockerfile\n      build_args: 'CI_COMMIT_SHA=${CI_COMMIT_SHA},MODE=prod'\n"},
			"deploy/third/Dockerfile", ".", "named by .woodpecker/docker.yaml, plugin-docker-buildx", map[string]string{"CI_COMMIT_SHA": "${CI_COMMIT_SHA}", "MODE": "prod"}},
		{"Drone plugin and commands", map[string]string{".drone.yml": "kind: pipeline\nsteps:\n- name: image\n  image: plugins/docker\n  settings:\n    context: deploy\n    dockerfile: deploy/fourth/Dockerfile\n- name: other\n  image: docker:27\n  commands:\n  - cd deploy && docker build -f fifth/Dockerfile .\n"},
			"deploy/fifth/Dockerfile", "deploy", "named by .drone.yml, docker build -f", nil},
		{"whole context of a pnpm workspace member", map[string]string{"pnpm-workspace.yaml": "packages:\n  - apps/*\n", "apps/web/Dockerfile": "FROM node:22\nWORKDIR /app\nCOPY . .\nRUN pnpm install\n", "apps/web/package.json": `{"dependencies": {"@acme/ui": "workspace:*", "react": "catalog:"}}`},
			"apps/web/Dockerfile", ".", "the workspace root: the package.json beside the Dockerfile depends on workspace packages (workspace: or catalog:), which only the root brings", nil},
		{"whole context of a member that needs no other", map[string]string{"pnpm-workspace.yaml": "packages:\n  - apps/*\n", "apps/web/Dockerfile": "FROM node:22\nWORKDIR /app\nCOPY . .\nRUN pnpm install\n", "apps/web/package.json": `{"dependencies": {"react": "19.0.0"}}`},
			"apps/web/Dockerfile", "apps/web", "the Dockerfile's folder, where its COPY sources are", nil},
		{"whole context, then an install that reads a manifest above", map[string]string{"package.json": "{}", "package-lock.json": "{}", "extras/docker/development/Dockerfile": "FROM node:22\nWORKDIR /src\nCOPY . /src\nRUN npm install && npm run build\n", "extras/docker/development/README.md": "", "extras/docker/production/entrypoint.sh": ""},
			"extras/docker/development/Dockerfile", ".", "the repository root, where its COPY sources are", nil},
		{"build outputs, a .dockerignore at the root", map[string]string{".dockerignore": "dist/\n!dist/**/app\n"}, "lost/Dockerfile", ".",
			"the nearest folder up from the Dockerfile with a .dockerignore; its COPY sources are not in the repository (build outputs?)", nil},
		{"build outputs, a .dockerignore beside it", map[string]string{"lost/.dockerignore": "*.tmp\n", ".dockerignore": "x\n"}, "lost/Dockerfile", "lost",
			"the Dockerfile's folder with a .dockerignore; its COPY sources are not in the repository (build outputs?)", nil},
		{"lockfile of a frozen install places a whole-context copy", nil, "apps/api/Dockerfile", ".", "the repository root, where its COPY sources are", nil},
		{"compose", map[string]string{"docker/docker-compose.yml": "services:\n  web:\n    build:\n      context: ..\n      dockerfile: docker/Dockerfile\n      args:\n        NODE_ENV: production\n"},
			"docker/Dockerfile", ".", "named by docker/docker-compose.yml, service web", map[string]string{"NODE_ENV": "production"}},
		{"compose file named docker-compose-NAME.yml", map[string]string{"docker/docker-compose-queue.yml": "services:\n  worker:\n    build:\n      context: ..\n      dockerfile: deploy/fifth/Dockerfile\n"},
			"deploy/fifth/Dockerfile", ".", "named by docker/docker-compose-queue.yml, service worker", nil},
		{"compose short form and defaults", map[string]string{"compose.yaml": "services:\n  api:\n    build: ${API_DIR:-./services/api}\n"},
			"services/api/Dockerfile", "services/api", "named by compose.yaml, service api", nil},
		{"compose inline Dockerfile names no file", map[string]string{"compose.yaml": "services:\n  api:\n    build:\n      context: .\n      dockerfile_inline: |\n        FROM alpine\n"},
			"tools/Dockerfile", "tools", "the Dockerfile's folder: it copies nothing from a context", nil},
		{"compose file in a hidden folder", map[string]string{".ci/compose.cypress.yaml": "services:\n  cypress:\n    build:\n      context: ../\n      dockerfile: .ci/Dockerfile.cypress\n", ".ci/Dockerfile.cypress": "FROM node:22\nCOPY . /app\n"},
			".ci/Dockerfile.cypress", ".", "named by .ci/compose.cypress.yaml, service cypress", nil},
		{"compose variables from the project's .env", map[string]string{"compose.yaml": "services:\n  api:\n    build:\n      context: ./\n      dockerfile: ${API_DOCKERFILE}\n      args:\n        AGENT_VERSION: ${AGENT_VERSION}\n        UNSET: ${NOPE}\n", ".env": "# versions\nAPI_DOCKERFILE=./services/api/Dockerfile\nexport AGENT_VERSION=\"2.30.0\"\n", "go.mod": "module x\n", "go.sum": ""},
			"services/api/Dockerfile", ".", "named by compose.yaml, service api", map[string]string{"AGENT_VERSION": "2.30.0"}},
		{"compose variable without default is skipped", map[string]string{"compose.yaml": "services:\n  api:\n    build: ${API_DIR}\n"},
			"services/api/Dockerfile", "services/api", "the Dockerfile's folder, where its COPY sources are", nil},
		{"bake hcl", map[string]string{"docker-bake.hcl": "variable \"CTX\" {\n  default = \"deploy\"\n}\ntarget \"base\" {\n  context = CTX\n}\ntarget \"app\" {\n  inherits = [\"base\"]\n  dockerfile = \"app.Dockerfile\"\n  args = { A = \"1\" }\n}\n"},
			"deploy/app.Dockerfile", "deploy", "named by docker-bake.hcl, target app", map[string]string{"A": "1"}},
		{"bake json", map[string]string{"docker-bake.json": `{"target": {"t": {"context": ".", "dockerfile": "tools/Dockerfile"}}}`},
			"tools/Dockerfile", ".", "named by docker-bake.json, target t", nil},
		{"a build-push-action of another vendor", map[string]string{".github/workflows/image.yml": "jobs:\n  image:\n    steps:\n      - uses: depot/build-push-action@v1\n        with:\n          context: .\n          file: deploy/third/Dockerfile\n"},
			"deploy/third/Dockerfile", ".", "named by .github/workflows/image.yml, depot/build-push-action", nil},
		{"build-push-action", map[string]string{".github/workflows/release.yml": "jobs:\n  push:\n    steps:\n      - uses: actions/checkout@v4\n      - uses: docker/build-push-action@v6\n        with:\n          context: .\n          file: ./deploy/other/Dockerfile\n          push: true\n          build-args: |\n            V=2\n"},
			"deploy/other/Dockerfile", ".", "named by .github/workflows/release.yml, docker/build-push-action", map[string]string{"V": "2"}},
		{"build-push-action beside values of other types", map[string]string{".github/workflows/release.yml": "jobs:\n  push:\n    steps:\n      - uses: docker/build-push-action@v6\n        with:\n          context: .\n          file: deploy/other/Dockerfile\n          push: true\n          platforms: [linux/amd64, linux/arm64]\n"},
			"deploy/other/Dockerfile", ".", "named by .github/workflows/release.yml, docker/build-push-action", nil},
		{"build-push-action without context", map[string]string{".github/workflows/ci.yaml": "jobs:\n  b:\n    steps:\n      - uses: docker/build-push-action@v5\n        with:\n          file: deploy/third/Dockerfile\n"},
			"deploy/third/Dockerfile", ".", "named by .github/workflows/ci.yaml, docker/build-push-action", nil},
		{"docker build in a run step", map[string]string{".github/workflows/ci.yml": "jobs:\n  b:\n    defaults:\n      run:\n        working-directory: deploy\n    steps:\n      - run: |\n          docker build --pull -t x:latest --build-arg A=1 -f fourth/Dockerfile ..\n          docker buildx build --push -f=fifth/Dockerfile .\n"},
			"deploy/fourth/Dockerfile", ".", "named by .github/workflows/ci.yml, docker build --pull", map[string]string{"A": "1"}},
		{"docker build after a cd in a run step", map[string]string{".github/workflows/ci.yml": "jobs:\n  b:\n    steps:\n      - run: cd deploy && docker build -f third/Dockerfile .\n"},
			"deploy/third/Dockerfile", "deploy", "named by .github/workflows/ci.yml, docker build -f", nil},
		{"Makefile recipe, run in the Makefile's folder", map[string]string{"deploy/Makefile": "IMAGE ?= app\n\nimage: ## build it\n\t@docker build \\\n\t\t-t $(IMAGE) \\\n\t\t-f other/Dockerfile ..\n"},
			"deploy/other/Dockerfile", ".", "named by deploy/Makefile, docker build -t", nil},
		{"Makefile recipe through a variable", map[string]string{"Makefile": "BUILDX ?= 1\nifeq ($(BUILDX),1)\n\tOCI_BUILD := DOCKER_BUILDKIT=1 docker buildx build $(OCI_BUILD_ARGS)\nelse\n\tOCI_BUILD := DOCKER_BUILDKIT=1 docker build $(OCI_BUILD_ARGS)\nendif\nIMAGE ?= app\n\nimage:\n\t$(OCI_BUILD) -t $(IMAGE) -f deploy/fourth/Dockerfile .\n"},
			"deploy/fourth/Dockerfile", ".", "named by Makefile, docker buildx build", nil},
		{"Makefile recipe after a cd it cannot follow", map[string]string{"Makefile": "image:\n\tcd $(DIR) && docker build -f deploy/fifth/Dockerfile .\n"},
			"deploy/fifth/Dockerfile", "deploy/fifth", "the Dockerfile's folder: it copies nothing from a context", nil},
		{"docker buildx build in a run step", map[string]string{".github/workflows/ci.yml": "jobs:\n  b:\n    steps:\n      - working-directory: deploy\n        run: docker buildx build --push -f=fifth/Dockerfile .\n"},
			"deploy/fifth/Dockerfile", "deploy", "named by .github/workflows/ci.yml, docker buildx build", nil},
		{"expression in the workflow is skipped", map[string]string{".github/workflows/ci.yml": "jobs:\n  b:\n    steps:\n      - uses: docker/build-push-action@v6\n        with:\n          context: ${{ matrix.dir }}\n          file: docker/Dockerfile\n"},
			"docker/Dockerfile", ".", "the repository root, where its COPY sources are", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{}
			for k, v := range repo {
				files[k] = v
			}
			for k, v := range tt.extra {
				files[k] = v
			}
			root := writeTree(t, files)
			dc, err := DiscoverContext(filepath.Join(root, filepath.FromSlash(tt.dockerfile)))
			if err != nil {
				t.Fatal(err)
			}
			want := ""
			if tt.dir != "" {
				want = filepath.Join(root, filepath.FromSlash(tt.dir))
			}
			if dc.Dir != want {
				t.Errorf("dir %s, want %s", dc.Dir, want)
			}
			if dc.Reason != tt.reason {
				t.Errorf("reason %q, want %q", dc.Reason, tt.reason)
			}
			if !reflect.DeepEqual(dc.BuildArgs, tt.args) {
				t.Errorf("build args %v, want %v", dc.BuildArgs, tt.args)
			}
		})
	}
}

func TestDiscoverOutsideRepository(t *testing.T) {
	dir := writeTree(t, map[string]string{"app/Dockerfile": frontendDockerfile, "frontend/package.json": "{}"})
	dc, err := DiscoverContext(filepath.Join(dir, "app", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if dc.Dir != filepath.Join(dir, "app") || dc.Repo != nil || !strings.Contains(dc.Reason, "not in a git repository") {
		t.Errorf("got %+v", dc)
	}
}

// TestGitIndex reads the index that git writes, in each version.
func TestGitIndex(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	for _, version := range []string{"2", "3", "4"} {
		t.Run("v"+version, func(t *testing.T) {
			dir := writeTree(t, map[string]string{"a.txt": "", "deep/er/b.env": "", "deep/er/c.env": "", "untracked.key": ""})
			for _, args := range [][]string{{"init", "-q"}, {"add", "a.txt", "deep"}, {"update-index", "--index-version", version}} {
				cmd := exec.Command("git", args...)
				cmd.Dir = dir
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("git %v: %v\n%s", args, err, out)
				}
			}
			r, err := OpenRepo(dir)
			if err != nil {
				t.Fatal(err)
			}
			for p, want := range map[string]bool{"a.txt": true, "deep/er/b.env": true, "deep/er/c.env": true, "untracked.key": false} {
				got, ok := r.Tracked(filepath.Join(dir, filepath.FromSlash(p)))
				if !ok || got != want {
					t.Errorf("Tracked(%s) = %v, %v; want %v", p, got, ok, want)
				}
			}
			if _, ok := r.Tracked(filepath.Dir(dir)); ok {
				t.Error("a path outside the repository must not be known")
			}
		})
	}
}

// A submodule's files are tracked by its own index; one left empty (as
// actions/checkout leaves them) brings what the build has, not nothing.
func TestSubmodules(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	git := func(dir string, args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-c", "protocol.file.allow=always", "-c", "user.name=t", "-c", "user.email=t@example.com"}, args...)...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	web := writeTree(t, map[string]string{
		"package.json":             `{"name": "web"}`,
		"package-lock.json":        "{}",
		"index.js":                 "x\n",
		"test/fixtures/server.key": "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgHcTz6sE2I2yPB\n-----END RSA PRIVATE KEY-----\n",
	})
	git(web, "init", "-q")
	git(web, "add", ".")
	git(web, "commit", "-qm", "web")
	root := writeTree(t, map[string]string{
		"Dockerfile":    "FROM node:22\nWORKDIR /src\nCOPY web .\nRUN npm ci && npm run build\n",
		".dockerignore": "node_modules\n",
	})
	git(root, "init", "-q")
	git(root, "submodule", "add", "-q", web, "web")
	git(root, "add", ".")
	git(root, "commit", "-qm", "app")
	rules := func() map[string]bool {
		t.Helper()
		res, err := LintFile(filepath.Join(root, "Dockerfile"), Options{ContextDir: root})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, f := range res.Findings {
			out[f.Rule] = true
		}
		return out
	}
	if got := rules(); got["SecretInContext"] || !got["SourceCopiedBeforeDependencyInstall"] {
		t.Errorf("checked out: %v; want no SecretInContext for the submodule's committed fixture", got)
	}
	git(root, "submodule", "deinit", "-q", "-f", "web")
	if got := rules(); got["LockfileNotCopied"] || !got["SourceCopiedBeforeDependencyInstall"] {
		t.Errorf("not checked out: %v; want no LockfileNotCopied", got)
	}
}

func TestReadGitIndexRejectsGarbage(t *testing.T) {
	for _, dt := range [][]byte{nil, []byte("DIRC"), []byte("DIRC\x00\x00\x00\x02\xff\xff\xff\xff"), []byte("XXXX\x00\x00\x00\x02\x00\x00\x00\x00")} {
		if _, _, err := readGitIndex(dt, 20); err == nil {
			t.Errorf("%q: want an error", dt)
		}
	}
}

// TestDiscoverFromGitIndex finds the compose file among the files git
// tracks, and not in an untracked copy under node_modules.
func TestDiscoverFromGitIndex(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	root := writeTree(t, map[string]string{
		"docker/Dockerfile":                 frontendDockerfile,
		"frontend/package.json":             "{}",
		"frontend/yarn.lock":                "",
		"deploy/compose.yaml":               "services:\n  web:\n    build:\n      context: ..\n      dockerfile: docker/Dockerfile\n",
		"node_modules/x/docker-compose.yml": "services:\n  x:\n    build: ../../docker\n",
	})
	for _, args := range [][]string{{"init", "-q"}, {"add", "docker", "frontend", "deploy"}} {
		cmd := exec.Command("git", args...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	dc, err := DiscoverContext(filepath.Join(root, "docker", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if dc.Dir != root || dc.Reason != "named by deploy/compose.yaml, service web" || dc.Repo == nil {
		t.Errorf("got %+v", dc)
	}
	if tracked, ok := dc.Repo.Tracked(filepath.Join(root, "frontend", "package.json")); !tracked || !ok {
		t.Error("frontend/package.json should be tracked")
	}
}

// TestSecretsReadGitIndex: with only a context directory, as strata build
// lints, a committed env file of placeholders passes and an untracked one
// fails.
func TestSecretsReadGitIndex(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	root := writeTree(t, map[string]string{
		"app/Dockerfile":   "FROM alpine\nCOPY . /app\n",
		"app/.env":         "API_URL=https://api.example.com\nAPI_KEY=your_api_key\n",
		"app/main.txt":     "x\n",
		"other/Dockerfile": "FROM alpine\nCOPY . /app\n",
		"other/.env":       "API_URL=https://api.example.com\n",
	})
	for _, args := range [][]string{{"init", "-q"}, {"add", "app"}} {
		cmd := exec.Command("git", args...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	for dir, want := range map[string]int{"app": 0, "other": 1} {
		ctx := filepath.Join(root, dir)
		res, err := LintFile(filepath.Join(ctx, "Dockerfile"), Options{ContextDir: ctx})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, f := range res.Findings {
			if f.Rule == "SecretInContext" && f.Severity == SeverityError {
				n++
				if !strings.Contains(f.Message, ".env (not tracked by git)") {
					t.Errorf("%s: %s", dir, f.Message)
				}
			}
		}
		if n != want {
			t.Errorf("%s: %d SecretInContext errors, want %d", dir, n, want)
		}
	}
}

// OptionsFor gives each Dockerfile the context strata lint lints it
// against: the caller's, else the discovered one, and none for standard
// input without one.
func TestOptionsFor(t *testing.T) {
	root := writeTree(t, map[string]string{
		".git/HEAD":             "ref: refs/heads/main\n",
		"docker/Dockerfile":     frontendDockerfile,
		"docker/app.Dockerfile": frontendDockerfile,
		"frontend/package.json": "{}",
		"frontend/yarn.lock":    "",
	})
	t.Chdir(root)
	d := NewDiscoverer()
	df := filepath.Join(root, "docker", "Dockerfile")
	for _, tc := range []struct {
		name             string
		file             string
		in               Options
		share            bool
		dir, dfPath, why string
		repo, opened     bool
	}{
		{"discovered, shown relative", df, Options{}, true, ".", df, "the repository root, where its COPY sources are", true, true},
		{"discovered, not shared", df, Options{}, false, ".", df, "the repository root, where its COPY sources are", true, false},
		{"the caller's", df, Options{ContextDir: "frontend", ContextReason: "--context"}, true, "frontend", df, "--context", true, true},
		{"standard input alone", Stdin, Options{}, true, "", "", "", false, false},
		{"standard input with a context", Stdin, Options{ContextDir: "frontend"}, true, "frontend", filepath.Join("frontend", "Dockerfile"), "", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := d.OptionsFor(tc.file, tc.in, tc.share)
			if err != nil {
				t.Fatal(err)
			}
			if got.ContextDir != tc.dir || got.DockerfilePath != tc.dfPath || got.ContextReason != tc.why || (got.Repo != nil) != tc.repo || (got.Context != nil) != tc.opened {
				t.Errorf("OptionsFor(%s) = dir %q, Dockerfile %q, reason %q, repo %v, context %v", tc.file, got.ContextDir, got.DockerfilePath, got.ContextReason, got.Repo != nil, got.Context != nil)
			}
		})
	}
	a, _ := d.OptionsFor(df, Options{}, true)
	b, _ := d.OptionsFor(filepath.Join(root, "docker", "app.Dockerfile"), Options{}, true)
	if a.Context == nil || a.Context != b.Context {
		t.Error("two Dockerfiles of one context walk it twice")
	}
}

// Compose's interpolation, with the variables of the project's .env.
func TestInterpolate(t *testing.T) {
	env := map[string]string{"DIR": "./web", "EMPTY": "", "V": "1.2"}
	for in, want := range map[string]string{
		"${DIR}":            "./web",
		"$DIR/Dockerfile":   "./web/Dockerfile",
		"${NOPE:-./api}":    "./api",
		"${EMPTY:-def}":     "def",
		"${EMPTY-def}":      "",
		"app:$${V}-${V}":    "app:${V}-1.2",
		"v${V}.${V:-x}-end": "v1.2.1.2-end",
	} {
		if got, ok := interpolate(in, env); !ok || got != want {
			t.Errorf("interpolate(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"${NOPE}", "$NOPE", "${UNCLOSED"} {
		if got, ok := interpolate(in, env); ok {
			t.Errorf("interpolate(%q) = %q, want it refused", in, got)
		}
	}
}

// The build arguments a compose file passes set the ARGs they name when
// the rules expand variables, under the caller's; values only the CI
// knows leave the defaults standing. BuildKit's InvalidDefaultArgInFrom
// still reads the defaults alone, as BuildKit does.
func TestDiscoveredBuildArgs(t *testing.T) {
	root := writeTree(t, map[string]string{
		".git/HEAD": "ref: refs/heads/main\n",
		"Dockerfile": "ARG BASE\nFROM ${BASE}\nARG TOOL_VERSION\nARG CHANNEL=stable\n" +
			"ADD https://example.com/tool/v${TOOL_VERSION}/${CHANNEL}/tool.tgz /tmp/\n",
		"compose.yaml": "services:\n  app:\n    build:\n      context: .\n      args:\n        BASE: alpine:3.20\n        TOOL_VERSION: 1.2.3\n        CHANNEL: ${{ github.ref_name }}\n",
	})
	t.Chdir(root)
	d := NewDiscoverer()
	for _, tc := range []struct {
		name  string
		given map[string]string
		ctx   string // --context: no discovery
		url   string
	}{
		{"compose's", nil, "", "https://example.com/tool/v1.2.3/stable/tool.tgz"},
		{"given over compose's", map[string]string{"TOOL_VERSION": "2.0.0"}, "", "https://example.com/tool/v2.0.0/stable/tool.tgz"},
		{"given empty", map[string]string{"TOOL_VERSION": ""}, "", "https://example.com/tool/v/stable/tool.tgz"},
		// Not set by anything: the message keeps the variables.
		{"none", nil, root, "https://example.com/tool/v${TOOL_VERSION}/${CHANNEL}/tool.tgz"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts, err := d.OptionsFor(filepath.Join(root, "Dockerfile"), Options{BuildArgs: tc.given, ContextDir: tc.ctx}, true)
			if err != nil {
				t.Fatal(err)
			}
			res, err := LintFile(filepath.Join(root, "Dockerfile"), opts)
			if err != nil {
				t.Fatal(err)
			}
			var url, defArg bool
			for _, f := range res.Findings {
				switch f.Rule {
				case "AddUrlWithoutChecksum":
					url = strings.Contains(f.Message, tc.url)
					if !url {
						t.Errorf("message %q does not name %s", f.Message, tc.url)
					}
				case "InvalidDefaultArgInFrom":
					defArg = true
				}
			}
			if !url {
				t.Errorf("no AddUrlWithoutChecksum finding naming %s: %v", tc.url, res.Findings)
			}
			if !defArg {
				t.Errorf("no InvalidDefaultArgInFrom: BASE has no default, whatever compose passes")
			}
		})
	}
}

// A Makefile's recipes as make reads them: a tab line is a recipe only in a
// rule, a tab-indented assignment in a conditional is an assignment, and a
// define block holds neither rules nor recipes.
func TestMakefileLines(t *testing.T) {
	src := "VERSION ?= 1\n" +
		"ifeq ($(CI),true)\n\tOCI_BUILD := docker buildx build --push\nelse\n\tOCI_BUILD := docker build\nendif\n" +
		"define HELP\nimage: build the image\n\tnot a recipe\nendef\n" +
		"image: ## build\n\t@$(OCI_BUILD) \\\n\t\t-t app:$(VERSION) .\n\n# comment\n\t-echo done\n" +
		"OTHER = x\n\tnot a recipe either\n"
	got := recipeLines(src)
	want := []string{"$(OCI_BUILD) -t app:$(VERSION) .", "echo done"}
	if !slices.Equal(got, want) {
		t.Errorf("recipes %q, want %q", got, want)
	}
	vars := makeVars(src)
	if vars["OCI_BUILD"] != "docker buildx build --push" || vars["VERSION"] != "1" || vars["OTHER"] != "x" {
		t.Errorf("variables %q", vars)
	}
	if got := expandMake(got[0], vars); got != "docker buildx build --push -t app:1 ." {
		t.Errorf("expanded %q", got)
	}
}
