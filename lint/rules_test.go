package lint

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// fired lints src (no context) and returns the rules that fired, by line.
func fired(t *testing.T, src string, cfg *Config) map[string][]int {
	t.Helper()
	res, err := Lint("Dockerfile", []byte(src), Options{Config: cfg})
	if err != nil {
		t.Fatalf("%v\n%s", err, src)
	}
	out := map[string][]int{}
	for _, f := range res.Findings {
		out[f.Rule] = append(out[f.Rule], f.Start.Line)
	}
	return out
}

func TestRuleCases(t *testing.T) {
	tests := []struct {
		name string
		src  string
		rule string
		want []int // lines; nil means the rule must not fire
	}{
		{"pip after source", "FROM python:3.12\nCOPY . /app\nRUN pip install -r /app/requirements.txt\n", "SourceCopiedBeforeDependencyInstall", []int{3}},
		{"pip after manifest", "FROM python:3.12\nCOPY requirements.txt /app/\nRUN pip install -r /app/requirements.txt\nCOPY . /app\n", "SourceCopiedBeforeDependencyInstall", nil},
		{"manifest glob", "FROM node:22\nCOPY package*.json ./\nRUN npm ci\nCOPY . .\n", "SourceCopiedBeforeDependencyInstall", nil},
		{"poetry no-root then root", "FROM python:3.12\nCOPY pyproject.toml poetry.lock ./\nRUN poetry install --no-root\nCOPY . .\nRUN poetry install\n", "SourceCopiedBeforeDependencyInstall", nil},
		{"dummy rust project", "FROM rust:1\nCOPY Cargo.toml Cargo.lock ./\nRUN mkdir src && echo 'fn main(){}' > src/main.rs && cargo build --release\nCOPY . .\nRUN cargo build --release\n", "SourceCopiedBeforeDependencyInstall", nil},
		{"dummy project with a workspace member", "FROM rust:1\nRUN USER=root cargo new --bin /app\nWORKDIR /app\nCOPY ./Cargo.* ./build.rs ./\nCOPY ./macros ./macros\nRUN cargo build --release && find . -not -path './target*' -delete\nCOPY . .\nRUN cargo build --release\n", "SourceCopiedBeforeDependencyInstall", nil},
		{"dummy rust build fills the registry", "FROM rust:1-alpine\nWORKDIR /usr/src/app\nCOPY Cargo.toml Cargo.lock ./\nRUN mkdir src && echo 'fn main() {}' > src/main.rs && cargo build --release && rm -rf src\nCOPY src ./src\nRUN touch src/main.rs && cargo build --release\n", "CacheMountMissing", nil},
		{"cargo build with no dummy build before", "FROM rust:1-alpine\nWORKDIR /usr/src/app\nCOPY Cargo.toml Cargo.lock ./\nCOPY src ./src\nRUN cargo build --release\n", "CacheMountMissing", []int{5}},
		{"cargo without dummy", "FROM rust:1\nCOPY . .\nRUN cargo build --release\n", "SourceCopiedBeforeDependencyInstall", []int{3}},
		{"inherited install", "FROM node:22 AS deps\nCOPY package.json package-lock.json ./\nRUN npm ci\nFROM deps\nCOPY . .\nRUN npm ci\n", "SourceCopiedBeforeDependencyInstall", nil},
		{"project install after deps copied from a stage", "FROM python:3.12 AS deps\nCOPY pyproject.toml poetry.lock ./\nRUN poetry install --only main\nFROM python:3.12\nCOPY --from=deps /opt/venv /opt/venv\nCOPY ./app /srv/app\nCOPY pyproject.toml poetry.lock /srv/\nRUN poetry install --only main\n", "SourceCopiedBeforeDependencyInstall", nil},
		{"install after a copy from a stage that installs nothing", "FROM alpine AS assets\nRUN echo x > /x\nFROM python:3.12\nCOPY --from=assets /x /x\nCOPY . /srv\nRUN pip install -r /srv/requirements.txt\n", "SourceCopiedBeforeDependencyInstall", []int{6}},
		{"apk update and add --no-cache in one RUN", "FROM alpine:3.20\nRUN apk update && \\\n    apk add --no-cache curl\n", "PackageIndexUpdateSeparated", nil},
		{"install of a downloaded .deb", "FROM debian:12-slim\nRUN apt-get update && apt-get install -y curl\nRUN curl -fsSLO https://example.com/tool_1.2.0_amd64.deb && apt-get install -y ./tool_1.2.0_amd64.deb\n", "PackageIndexUpdateSeparated", nil},
		{"install after an update whose lists are gone", "FROM debian:12-slim\nRUN apt-get update && apt-get install -y curl && rm -rf /var/lib/apt/lists/*\nRUN apt-get install -y jq\n", "PackageIndexUpdateSeparated", nil},
		{"install of a package and a .deb", "FROM debian:12-slim\nRUN apt-get update && apt-get install -y curl\nRUN apt-get install -y jq ./tool.deb\n", "PackageIndexUpdateSeparated", []int{3}},
		{"apk update alone", "FROM alpine:3.20\nRUN apk update\nRUN apk add curl\n", "PackageIndexUpdateSeparated", []int{2, 3}},
		{"a set-up script updates the index", "FROM debian:bookworm-slim\nRUN apt-get update && apt-get install -y curl && rm -rf /var/lib/apt/lists/*\nRUN curl -fsSL https://deb.nodesource.com/setup_24.x | bash - && apt-get install -y nodejs\n", "PackageIndexUpdateSeparated", nil},
		{"clone checked out at a tag in a later RUN", "FROM alpine/git\nARG REF=v1.2.3\nRUN git clone https://github.com/example/project.git /src\nWORKDIR /src\nRUN git checkout \"$REF\"\n", "UnpinnedRemoteInRun", nil},
		{"ref declared before the clone it selects from", "FROM alpine/git\nARG GIT_REF=v1.2.3\nRUN apk add --no-cache make\nRUN git clone https://github.com/example/project.git /src\nWORKDIR /src\nRUN git checkout \"$GIT_REF\"\n", "VolatileArgBeforeRun", []int{2}},
		{"clone of a branch whose default moves", "FROM alpine/git\nARG DISCOURSE_BRANCH=main\nRUN git clone --branch $DISCOURSE_BRANCH https://github.com/discourse/discourse.git /var/www/discourse\n", "UnpinnedRemoteInRun", []int{3}},
		{"global ARG whose default is a platform argument", "ARG FLAVOR=${TARGETARCH}\nFROM --platform=linux/amd64 scratch AS amd64\nFROM --platform=linux/arm64 scratch AS arm64\nFROM ${FLAVOR} AS image-archive\nFROM alpine:3.20\nCOPY --from=image-archive / /\n", "InvalidDefaultArgInFrom", nil},
		{"global ARG with no default in FROM", "ARG BASE\nFROM ${BASE}\n", "InvalidDefaultArgInFrom", []int{2}},
		{"global npm install of @latest", "FROM node:22\nRUN npm install -g corepack@latest pnpm@9.15.0\nRUN npm install -g typescript@5.7.2\n", "UnpinnedRemoteInRun", []int{2}},
		{"clone of a branch pinned by default", "FROM alpine/git\nARG REF=v3.4.1\nRUN git clone --branch \"$REF\" https://github.com/discourse/discourse.git /src\n", "UnpinnedRemoteInRun", nil},
		{"clone never checked out", "FROM alpine/git\nRUN git clone https://github.com/example/project.git /src\nWORKDIR /src\nRUN make\n", "UnpinnedRemoteInRun", []int{2}},
		{"gradle task of the project's own after the manifests", "FROM eclipse-temurin:21-jdk AS builder\nWORKDIR /usr/src/app/\nCOPY ./svc/gradlew* ./svc/settings.gradle* ./svc/build.gradle ./\nCOPY ./svc/gradle ./gradle\nRUN ./gradlew\nRUN ./gradlew downloadRepos\nCOPY ./svc/ ./\nCOPY ./pb/ ./proto\nRUN ./gradlew installDist -PprotoSourceDir=./proto\n", "SourceCopiedBeforeDependencyInstall", nil},
		{"gradle build with no dependency step", "FROM eclipse-temurin:21-jdk\nWORKDIR /app\nCOPY . .\nRUN ./gradlew installDist\n", "SourceCopiedBeforeDependencyInstall", []int{4}},
		{"install after a signing key from the context", "FROM debian:bookworm\nADD nodesource-repo.gpg.key /usr/share/keyrings/nodesource.asc\nRUN echo 'deb [signed-by=/usr/share/keyrings/nodesource.asc] https://deb.nodesource.com/node_22.x nodistro main' > /etc/apt/sources.list.d/nodesource.list && apt-get update && apt-get install -y nodejs\nRUN npm install -g pnpm@10\n", "StableStepAfterVolatileStep", nil},
		{"install after a source copy", "FROM node:22\nCOPY . /app\nRUN npm install -g pnpm@10\n", "StableStepAfterVolatileStep", []int{3}},
		{"copy from stage is not source", "FROM node:22\nCOPY --from=builder /src /src\nRUN npm ci\n", "SourceCopiedBeforeDependencyInstall", nil},
		{"cargo build with its target folder cached", "FROM rust:1\nWORKDIR /vector\nCOPY . .\nRUN --mount=type=cache,target=/vector/target --mount=type=cache,target=/usr/local/cargo/registry cargo build --bin vector\n", "SourceCopiedBeforeDependencyInstall", nil},
		{"go build with its build cache mounted", "FROM golang:1.26\nWORKDIR /src\nCOPY . .\nRUN --mount=type=cache,target=/root/.cache/go-build --mount=type=cache,target=/go/pkg/mod go build ./...\n", "SourceCopiedBeforeDependencyInstall", nil},
		{"mold wrapper", "FROM rust:1\nCOPY . .\nRUN /usr/bin/mold -run cargo build --release\n", "SourceCopiedBeforeDependencyInstall", []int{3}},
		{"sudo wrapper", "FROM ruby:3\nCOPY . .\nRUN sudo -E bundle install\n", "SourceCopiedBeforeDependencyInstall", []int{3}},
		{"sh -c", "FROM php:8\nCOPY . .\nRUN sh -c 'composer install --no-dev'\n", "SourceCopiedBeforeDependencyInstall", []int{3}},
		{"echo is not an install", "FROM node:22\nCOPY . .\nRUN echo npm ci\n", "SourceCopiedBeforeDependencyInstall", nil},
		{"heredoc install", "FROM node:22\nCOPY . .\nRUN <<EOF\nset -e\nnpm ci\nEOF\n", "SourceCopiedBeforeDependencyInstall", []int{3}},
		{"uv frozen without lock", "FROM python:3.12\nCOPY pyproject.toml ./\nRUN uv sync --frozen\n", "LockfileNotCopied", []int{3}},
		{"frozen install in an archive the same RUN unpacked", "FROM oven/bun:1.1.30\nWORKDIR /build\nRUN curl -fsSL https://example.com/archive/47bf101.tar.gz | tar xz --strip-components=1 && bun install --frozen-lockfile\n", "LockfileNotCopied", nil},
		{"frozen install before the RUN's download", "FROM oven/bun:1.1.30\nWORKDIR /build\nCOPY package.json ./\nRUN bun install --frozen-lockfile && curl -fsSL https://example.com/x.tar.gz | tar xz\n", "LockfileNotCopied", []int{4}},
		{"pnpm frozen with lock", "FROM node:22\nCOPY package.json pnpm-lock.yaml ./\nRUN pnpm install --frozen-lockfile\n", "LockfileNotCopied", nil},
		{"lock from parent stage", "FROM node:22 AS a\nCOPY package.json package-lock.json ./\nFROM a\nRUN npm ci\n", "LockfileNotCopied", nil},
		{"volatile ENV from ARG", "FROM alpine\nARG REL=1\nENV APP_REV=$GIT_SHA\nRUN apk add curl\nRUN echo $APP_REV\n", "VolatileArgBeforeRun", nil},
		{"volatile ENV", "FROM alpine\nARG GIT_SHA\nENV REV=$GIT_SHA\nRUN echo $REV\n", "VolatileArgBeforeRun", nil},
		{"ENV VERSION copying an ARG's constant default", "FROM debian:12\nARG PACKAGE_VERSION=12\nENV VERSION=${PACKAGE_VERSION}\nRUN apt-get update && apt-get install -y wget\n", "VolatileArgBeforeRun", nil},
		{"ENV VERSION copying an ARG with no default", "FROM debian:12\nARG PACKAGE_VERSION\nENV VERSION=${PACKAGE_VERSION}\nRUN apt-get update && apt-get install -y wget\n", "VolatileArgBeforeRun", []int{3}},
		{"ENV built from volatile ARG", "FROM alpine\nARG GIT_SHA\nRUN echo $GIT_SHA\nENV REV=$GIT_SHA\nRUN apk add curl\n", "VolatileArgBeforeRun", []int{4}},
		{"braces", "FROM alpine\nARG VERSION\nRUN echo ${VERSION}\n", "VolatileArgBeforeRun", nil},
		{"prefix is not use", "FROM alpine\nARG VERSION\nRUN echo $VERSION_X\n", "VolatileArgBeforeRun", []int{2}},
		{"volatile ARG inherited by a child stage", "FROM alpine AS base\nARG GIT_SHA\nFROM base\nRUN apk add curl\nRUN echo $GIT_SHA\n", "VolatileArgBeforeRun", []int{2}},
		{"vendored go", "FROM golang\nCOPY . .\nRUN go build -mod=vendor ./...\n", "SourceCopiedBeforeDependencyInstall", nil},
		{"secret named without context", "FROM alpine\nCOPY .env id_rsa.pub /app/\nCOPY config/ /c\n", "SecretInContext", []int{2}},
		{"example env is fine", "FROM alpine\nCOPY .env.example /app/\n", "SecretInContext", nil},
		{"prod config named", "FROM alpine\nCOPY config/production.yaml /app/\n", "EnvironmentConfigBaked", []int{2}},
		{"npm install with many flags", "FROM node\nCOPY . .\nRUN npm install --omit=dev --no-audit --no-fund --legacy-peer-deps --ignore-scripts --loglevel=error\n", "SourceCopiedBeforeDependencyInstall", []int{3}},
		{"npm install of a named package", "FROM node\nCOPY . .\nRUN npm install left-pad\n", "SourceCopiedBeforeDependencyInstall", nil},
		{"apt in heredoc together", "FROM debian\nRUN <<EOF\napt-get update\napt-get install -y curl\nEOF\n", "PackageIndexUpdateSeparated", nil},
		{"apt from parent stage", "FROM debian AS base\nRUN apt-get update && apt-get install -y curl\nFROM base\nRUN apt-get install -y git\n", "PackageIndexUpdateSeparated", []int{4}},
		{"dnf makecache", "FROM fedora\nRUN dnf makecache\nRUN dnf install -y git\n", "PackageIndexUpdateSeparated", []int{2, 3}},
		{"curl pipe with sudo", "FROM debian\nRUN curl -fsSL https://get.example.com | sudo bash -\n", "UnpinnedRemoteInRun", []int{2}},
		{"versioned download", "FROM debian\nRUN curl -fsSLO https://example.com/v1.2.3/tool.tgz\n", "UnpinnedRemoteInRun", nil},
		{"add git tag", "FROM alpine\nADD git@github.com:example/repo.git#v1.0.0 /src\n", "AddUrlWithoutChecksum", []int{2}},
		{"add local file", "FROM alpine\nADD app.tar.gz /app/\n", "AddUrlWithoutChecksum", nil},
		{"build date in subst", "FROM alpine\nRUN echo \"$(date +%s)\" > /ts\n", "NonDeterministicRun", []int{2}},
		{"date to stdout only", "FROM alpine\nRUN date && make\n", "NonDeterministicRun", nil},
		{"commit of a clone", "FROM golang:1.26\nRUN git clone --depth 1 --branch v1.2.3 https://github.com/example/tool /src\nRUN cd /src && export LDFLAGS=\"-X main.commit=$(git rev-parse --short HEAD)\" && go build -ldflags \"${LDFLAGS}\" -o /app .\n", "NonDeterministicRun", nil},
		{"commit of the copied context", "FROM golang:1.26\nCOPY . /src\nRUN cd /src && git rev-parse HEAD > /version\n", "NonDeterministicRun", []int{3}},
		{"volume gradle", "FROM gradle:8\nVOLUME /home/gradle/.gradle\n", "VolumeUsedAsBuildCache", []int{2}},
		{"stable after volatile arg", "FROM debian\nARG CI_PIPELINE_ID\nRUN apt-get update && apt-get install -y curl\n", "StableStepAfterVolatileStep", []int{3}},
		{"stable first", "FROM debian\nRUN apt-get update && apt-get install -y curl\nCOPY . /app\n", "StableStepAfterVolatileStep", nil},
		{"constant ENV with a volatile name", "FROM alpine\nENV VERSION=1.2.3 CI_SERVER_URL=https://gitlab.example.com\nRUN apk add curl\n", "VolatileArgBeforeRun", nil},
		{"ENV from a volatile ARG", "FROM alpine\nARG BUILD_NUMBER\nENV VERSION=1.$BUILD_NUMBER\nRUN apk add curl\n", "VolatileArgBeforeRun", []int{3}},
		{"architecture does not pin", "FROM debian\nARG TARGETARCH\nRUN curl -fsSLo /usr/local/bin/tool https://example.com/download/linux-${TARGETARCH}/tool\nRUN curl -fsSLO https://example.com/tool-linux-amd64.tar.gz\n", "UnpinnedRemoteInRun", []int{3, 4}},
		{"version with architecture", "FROM debian\nARG TARGETARCH\nRUN curl -fsSLO https://example.com/v1.4.0/tool-linux-${TARGETARCH}.tar.gz\n", "UnpinnedRemoteInRun", nil},
		{"yarn flag value is not the subcommand", "FROM node:22\nCOPY . .\nRUN yarn --frozen-lockfile --network-timeout 600000\n", "SourceCopiedBeforeDependencyInstall", []int{3}},
		{"make dependency target", "FROM golang:1.26\nCOPY . .\nRUN make deps\n", "SourceCopiedBeforeDependencyInstall", []int{3}},
		{"make build target is not an install", "FROM golang:1.26\nCOPY Makefile go.mod go.sum ./\nRUN make build\n", "SourceCopiedBeforeDependencyInstall", nil},
		{"patches and version pins are dependency inputs", "FROM node:22\nCOPY package.json yarn.lock .nvmrc NODE_VERSION ./\nCOPY patches ./patches\nRUN yarn install --frozen-lockfile\nCOPY . .\n", "SourceCopiedBeforeDependencyInstall", nil},
		{"glob covers the lockfile", "FROM node:22\nCOPY package*.json ./\nRUN npm ci\n", "LockfileNotCopied", nil},
		{"cache mount missing after manifest copy only", "FROM golang:1.26\nCOPY go.mod go.sum ./\nRUN go build ./...\n", "CacheMountMissing", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := fired(t, tt.src, nil)[tt.rule]
			if !slices.Equal(got, tt.want) {
				t.Errorf("%s fired on lines %v, want %v\n%s", tt.rule, got, tt.want, tt.src)
			}
		})
	}
}

func TestConfig(t *testing.T) {
	cfg, err := ParseConfig("c", []byte("failLevel: info\nvolatileArgs: [DEPLOY_*]\nrules:\n  NonDeterministicRun: error\n  UnpinnedRemoteInRun: off\nbuildkitChecks: false\n"))
	if err != nil {
		t.Fatal(err)
	}
	src := "FROM alpine\nARG DEPLOY_ID\nRUN date > /d\nRUN curl https://x.example/latest | sh\nCMD echo hi\n"
	res, err := Lint("Dockerfile", []byte(src), Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	var rules []string
	for _, f := range res.Findings {
		rules = append(rules, f.Rule+"/"+f.Severity.String())
	}
	want := []string{"VolatileArgBeforeRun/warning", "NonDeterministicRun/error"}
	if !slices.Equal(rules, want) {
		t.Errorf("got %v, want %v", rules, want)
	}
	if cfg.FailLevel != SeverityInfo {
		t.Errorf("failLevel = %v", cfg.FailLevel)
	}
	for _, bad := range []string{"rules: {Nope: off}\n", "rules: {CacheMountMissing: loud}\n", "failLevel: extreme\n", "unknown: 1\n", "volatileArgs: ['[']\n"} {
		if _, err := ParseConfig("c", []byte(bad)); err == nil {
			t.Errorf("config %q: want error", bad)
		}
	}
	if _, err := ParseConfig("c", nil); err != nil {
		t.Errorf("empty config: %v", err)
	}
}

func TestFindConfig(t *testing.T) {
	root := t.TempDir()
	nested := root + "/a/b"
	if err := mkdirWrite(nested, root+"/"+ConfigName); err != nil {
		t.Fatal(err)
	}
	if got := FindConfig(nested); got != root+"/"+ConfigName {
		t.Errorf("FindConfig = %q", got)
	}
	if err := os.WriteFile(root+"/other.yaml", []byte("failLevel: info\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		file, dir string
		want      Severity
	}{
		{"", nested, SeverityError},                  // found from dir up
		{root + "/other.yaml", nested, SeverityInfo}, // named
		{"", t.TempDir(), DefaultConfig().FailLevel}, // none: the defaults
	} {
		if cfg, err := ResolveConfig(tc.file, tc.dir); err != nil || cfg.FailLevel != tc.want {
			t.Errorf("ResolveConfig(%q, %q) = %+v, %v; want fail level %v", tc.file, tc.dir, cfg, err, tc.want)
		}
	}
	if _, err := ResolveConfig(root+"/missing.yaml", nested); err == nil {
		t.Error("ResolveConfig of a missing file: no error")
	}
}

func TestShellCommands(t *testing.T) {
	sc := ParseScript("set -e; sudo -E apt-get install -y curl | tee log && echo $(git rev-parse HEAD) > /v\nif true; then env A=1 npm ci; fi", 10)
	var names []string
	for _, c := range sc.Commands {
		names = append(names, c.Name())
	}
	for _, want := range []string{"set", "apt-get", "tee", "echo", "git", "npm"} {
		if !slices.Contains(names, want) {
			t.Errorf("command %s not found in %v", want, names)
		}
	}
	for _, c := range sc.Commands {
		switch c.Name() {
		case "apt-get":
			if c.PipedTo != "tee" || c.Line != 10 {
				t.Errorf("apt-get: %+v", c)
			}
		case "git":
			if !c.InSubst {
				t.Errorf("git should be inside a substitution")
			}
		case "npm":
			if c.Line != 11 || strings.Join(c.Args, " ") != "npm ci" {
				t.Errorf("npm: %+v", c)
			}
		}
	}
	for src, want := range map[string]string{
		"curl -LsSf https://astral.sh/uv/install.sh | env UV_INSTALL_DIR=/bin sh": "sh",
		"curl -fsSL https://example.com/setup | sudo -E bash -":                   "bash",
		"curl -fsSL https://example.com/x.tar.gz | tar xz":                        "tar",
	} {
		if c := ParseScript(src, 1).Commands[0]; c.PipedTo != want {
			t.Errorf("%s: piped to %q, want %q", src, c.PipedTo, want)
		}
	}
	if bad := ParseScript("echo 'unterminated", 1); bad.Err == nil || len(bad.Commands) == 0 {
		t.Errorf("a body that is not shell should still give rough commands: %+v", bad)
	}
}

func mkdirWrite(dir, file string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(file, []byte("failLevel: error\n"), 0o644)
}

func TestIgnorePatternsWithoutContext(t *testing.T) {
	res, err := Lint("Dockerfile", []byte("FROM alpine\nCOPY secrets/ /s\nCOPY app /app\n"), Options{IgnorePatterns: []string{"secrets"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Findings) != 1 || res.Findings[0].Rule != "CopyIgnoredFile" || res.Findings[0].Start.Line != 2 {
		t.Errorf("findings: %+v", res.Findings)
	}
}

func TestVolatileFixSkipsImplicitReaders(t *testing.T) {
	res, err := Lint("Dockerfile", []byte("FROM alpine\nARG VERSION\nRUN make build\nLABEL v=$VERSION\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range res.Findings {
		if f.Rule == "VolatileArgBeforeRun" && f.Fixable {
			t.Errorf("make may read VERSION from the environment; no fix should be offered")
		}
	}
}

func TestFixKeepsCRLF(t *testing.T) {
	src := "FROM debian\r\nRUN apt-get update\r\nRUN apt-get install -y curl\r\n"
	res, err := Lint("Dockerfile", []byte(src), Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := string(res.Fix().Dockerfile)
	if want := "FROM debian\r\nRUN apt-get update && apt-get install -y curl\r\n"; got != want {
		t.Errorf("fixed = %q, want %q", got, want)
	}
}

// The merged update goes before the install's variable assignments and
// wrappers, which stay with the install; RUN's flags stay with RUN.
func TestFixMergeUpdateKeepsAssignments(t *testing.T) {
	for src, want := range map[string]string{
		"FROM debian\nRUN apt-get update\nRUN DEBIAN_FRONTEND=noninteractive apt-get install -y curl\n": "FROM debian\nRUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y curl\n",
		"FROM debian\nRUN apt-get update\nRUN --network=default A=1 B=2 apt-get install -y curl\n":      "FROM debian\nRUN --network=default apt-get update && A=1 B=2 apt-get install -y curl\n",
		"FROM debian\nRUN apt-get update\nRUN sudo apt-get install -y curl\n":                           "FROM debian\nRUN apt-get update && sudo apt-get install -y curl\n",
	} {
		res, err := Lint("Dockerfile", []byte(src), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if got := string(res.Fix().Dockerfile); got != want {
			t.Errorf("fixed %q = %q, want %q", src, got, want)
		}
	}
}

func TestRuleByName(t *testing.T) {
	if r := RuleByName("VolatileArgBeforeRun"); r == nil || !r.Fixable {
		t.Errorf("VolatileArgBeforeRun: %+v", r)
	}
	if r := RuleByName("JSONArgsRecommended"); r == nil || !r.BuildKit || r.URL == "" {
		t.Errorf("JSONArgsRecommended: %+v", r)
	}
	if RuleByName("Nope") != nil {
		t.Error("unknown rule found")
	}
}

func TestCheckErrorTrue(t *testing.T) {
	res, err := Lint("Dockerfile", []byte("# check=error=true\nFROM alpine\nCMD echo hi\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Findings) != 1 || res.Findings[0].Severity != SeverityError {
		t.Errorf("BuildKit checks are errors with check=error=true: %+v", res.Findings)
	}
}

// A moved ARG takes its description comment along and lands above the
// comments of the step it goes before, so a "# strata:ignore=" stays with
// its instruction.
func TestFixMoveKeepsComments(t *testing.T) {
	src := "# syntax=docker/dockerfile:1\nFROM alpine\n# GIT_SHA the commit being built\nARG GIT_SHA\nRUN apk add --no-cache curl\n" +
		"# strata:ignore=UnpinnedRemoteInRun\nRUN curl -fsSL https://example.com/latest/tool -o /tool && echo $GIT_SHA > /version\n"
	want := "# syntax=docker/dockerfile:1\nFROM alpine\nRUN apk add --no-cache curl\n# GIT_SHA the commit being built\nARG GIT_SHA\n" +
		"# strata:ignore=UnpinnedRemoteInRun\nRUN curl -fsSL https://example.com/latest/tool -o /tool && echo $GIT_SHA > /version\n"
	res, err := Lint("Dockerfile", []byte(src), Options{})
	if err != nil {
		t.Fatal(err)
	}
	fx := res.Fix()
	if got := string(fx.Dockerfile); got != want {
		t.Fatalf("fixed =\n%s\nwant\n%s", got, want)
	}
	again, err := Lint("Dockerfile", fx.Dockerfile, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range again.Findings {
		if f.Rule == "UnpinnedRemoteInRun" || f.Rule == "VolatileArgBeforeRun" {
			t.Errorf("after the fix: %d: %s %s", f.Start.Line, f.Rule, f.Message)
		}
	}
}

func TestMavenProjectListMessage(t *testing.T) {
	res, err := Lint("Dockerfile", []byte("FROM maven:3\nCOPY . .\nRUN mvn -B -pl modules/api -am package\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range res.Findings {
		if f.Rule == "SourceCopiedBeforeDependencyInstall" {
			if !strings.HasPrefix(f.Message, "mvn package runs after") {
				t.Errorf("message %q, want it to name mvn package", f.Message)
			}
			return
		}
	}
	t.Errorf("no SourceCopiedBeforeDependencyInstall finding: %v", res.Findings)
}

func TestSecretContent(t *testing.T) {
	tests := []struct {
		name, file, body string
		secret, public   bool
	}{
		{"rsa private key", "deploy.pem", "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n", true, false},
		{"openssh private key", "id_ed25519", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n", true, false},
		{"pgp public key", "repo.gpg.key", "-----BEGIN PGP PUBLIC KEY BLOCK-----\nmQIN\n", false, true},
		{"pgp private key", "signing.asc", "-----BEGIN PGP PRIVATE KEY BLOCK-----\nlQcY\n", true, false},
		{"certificate", "ca.pem", "-----BEGIN CERTIFICATE-----\nMIID\n", false, true},
		{"public pem", "jwt.pem", "-----BEGIN PUBLIC KEY-----\nMFkw\n", false, true},
		{"env with a password", ".env", "DB_HOST=db\nDB_PASSWORD=hunter2hunter2\n", true, false},
		{"env with a placeholder", ".env", "DB_PASSWORD=changeme\nAPI_KEY=your_api_key\nTOKEN=\n", false, false},
		{"env of public settings", ".env.production", "VITE_API_URL=https://api.example.com\nVITE_PUBLIC_TOKEN=pk_live_abcdef\n", false, false},
		{"env with a variable", ".env", "SECRET_KEY=${SECRET_KEY}\n", false, false},
		{"env of key paths", "tls.env", "WEED_GRPC_CLIENT_KEY=/etc/seaweedfs/tls/client01.dev.key\nAPI_KEY_FILE=/run/secrets/api_key\nTLS_KEY=./certs/server.key\n", false, false},
		{"empty values", ".env.docker", "DB_PASSWORD=\nDB_DATABASE=\"pixelfed_prod\"\nAPP_KEY=\nREDIS_PASSWORD=\r\nREDIS_HOST=redis\n", false, false},
		{"password in a URL", "config.env", "MONGO_URI=mongodb+srv://app:s3cr3tV4lue@cluster.example.net/db\n", true, false},
		{"placeholder in a URL", "config.env", "DATABASE_URL=postgres://postgres:insecure_password@localhost/app\n", false, false},
		{"aws key in anything", ".env", "AWS_ACCESS_KEY_ID=AKIAABCDEFGHIJKLMNOP\n", true, false},
		{"npmrc token", ".npmrc", "//registry.npmjs.org/:_authToken=npm_abcdefghijklmnop\n", true, false},
		{"npmrc with a variable", ".npmrc", "//registry.npmjs.org/:_authToken=${NPM_TOKEN}\n", false, true},
		{"netrc", ".netrc", "machine github.com login x password ghp_abc\n", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			secret, public := secretContent(secretName(tt.file), []byte(tt.body))
			if secret != tt.secret || public != tt.public {
				t.Errorf("secretContent = %v, %v; want %v, %v", secret, public, tt.secret, tt.public)
			}
		})
	}
}

// StableStepAfterVolatileStep calls global tools pinned only when each
// carries its version.
func TestStableStepWording(t *testing.T) {
	for src, want := range map[string]string{
		"FROM node:22\nCOPY . .\nRUN npm install -g corepack\n":                                "installs global tools",
		"FROM node:22\nCOPY . .\nRUN npm install -g pnpm@9.1.0 @scope/cli@2.0.0\n":             "installs pinned global tools",
		"FROM node:22\nCOPY . .\nRUN npm install -g pnpm@9.1.0 @scope/cli\n":                   "installs global tools",
		"FROM golang:1.26\nCOPY . .\nRUN go install golang.org/x/tools/cmd/stringer@v0.30.0\n": "installs pinned global tools",
	} {
		res, err := Lint("Dockerfile", []byte(src), Options{})
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		for _, f := range res.Findings {
			if f.Rule == RuleStableStepAfterVolatileStep.Name {
				got = f.Message
			}
		}
		if !strings.HasPrefix(got, "this RUN "+want+" ") && !strings.Contains(got, want+" ") || strings.Contains(got, "pinned") != strings.Contains(want, "pinned") {
			t.Errorf("%q: %q, want it to say %q", src, got, want)
		}
	}
}

// CacheMountMissing names the cache where the stage's environment puts
// it, and says nothing of a store an earlier install filled in a layer (a
// cache mount there would hide it from the build).
func TestCacheMountTargets(t *testing.T) {
	for src, want := range map[string]string{
		"FROM rust:1\nCOPY . .\nRUN cargo build --release\n":                                                                                                                "target=/usr/local/cargo/registry",
		"FROM rust:1\nENV CARGO_HOME=/root/.cargo\nCOPY . .\nRUN cargo build --release\n":                                                                                   "target=/root/.cargo/registry",
		"FROM golang:1.26\nENV GOCACHE=/cache/go\nCOPY . .\nRUN go build ./...\n":                                                                                           "target=/cache/go --mount=type=cache,target=/go/pkg/mod",
		"FROM maven:3\nCOPY pom.xml .\nRUN mvn dependency:go-offline\nCOPY . .\nRUN mvn package\n":                                                                          "",
		"FROM maven:3\nCOPY . .\nRUN mvn package\n":                                                                                                                         "target=/root/.m2",
		"FROM eclipse-temurin:21-jdk\nWORKDIR /app\nCOPY gradlew build.gradle ./\nCOPY gradle ./gradle\nRUN ./gradlew downloadRepos\nCOPY . .\nRUN ./gradlew installDist\n": "",
	} {
		res, err := Lint("Dockerfile", []byte(src), Options{})
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		for _, f := range res.Findings {
			if f.Rule == RuleCacheMountMissing.Name {
				got = f.Message
			}
		}
		if want == "" && got != "" || want != "" && !strings.Contains(got, "--mount=type=cache,"+want) {
			t.Errorf("%q: %q, want %q", src, got, want)
		}
	}
}

// UnpinnedRemoteInRun finds floating versions in pip archives and
// package-manager shims too.
func TestUnpinnedInstallers(t *testing.T) {
	cases := []struct {
		src  string
		want []int
	}{
		{"FROM python:3.12\nRUN pip install https://github.com/getsentry/sentry-nodestore-s3/archive/main.zip\n", []int{2}},
		{"FROM python:3.12\nRUN pip install https://github.com/org/pkg/archive/refs/tags/v1.2.3.zip#sha256=0123\n", nil},
		{"FROM node:22\nRUN corepack enable && corepack prepare pnpm@latest --activate\n", []int{2}},
		{"FROM node:22\nRUN corepack enable && corepack prepare pnpm@9.12.1 --activate\n", nil},
		{"FROM node:22\nRUN npx -y create-thing@latest app\n", []int{2}},
	}
	for _, tc := range cases {
		if got := fired(t, tc.src, nil)[RuleUnpinnedRemoteInRun.Name]; !slices.Equal(got, tc.want) {
			t.Errorf("%q: lines %v, want %v", tc.src, got, tc.want)
		}
	}
}

// cargo's registry is where the stage's cargo keeps it: /usr/local/cargo
// on a Rust image, /root/.cargo when cargo comes from the system's
// packages, CARGO_HOME when the stage sets it.
func TestCargoCacheDir(t *testing.T) {
	for src, want := range map[string]string{
		"FROM rust:1.86-alpine\nCOPY . .\nRUN cargo build --release\n":                          "target=/usr/local/cargo/registry",
		"FROM alpine:3.23\nRUN apk add --no-cache cargo\nCOPY . .\nRUN cargo build --release\n": "target=/root/.cargo/registry",
		"FROM alpine:3.23 AS base\nRUN apk add cargo\nFROM base\nCOPY . .\nRUN cargo build\n":   "target=/root/.cargo/registry",
		"FROM debian:12\nENV CARGO_HOME=/opt/cargo\nCOPY . .\nRUN cargo build\n":                "target=/opt/cargo/registry",
	} {
		res, err := Lint("Dockerfile", []byte(src), Options{})
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(res.Findings, func(f Finding) bool { return f.Rule == "CacheMountMissing" })
		if i < 0 || !strings.Contains(res.Findings[i].Message, want) {
			t.Errorf("%s: %v, want %s", src, res.Findings, want)
		}
	}
}
