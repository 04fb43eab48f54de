package main

import (
	"fmt"
	"math/rand"
	"strings"
)

// lintCorpus generates n varied Dockerfiles, the same ones for a given seed:
// single and multi-stage, several ecosystems, good and bad layer order,
// volatile ARGs, package installs, downloads, heredocs and BuildKit-check
// triggers.
func lintCorpus(n int, seed int64) [][]byte {
	r := rand.New(rand.NewSource(seed))
	out := make([][]byte, n)
	for i := range out {
		out[i] = []byte(oneDockerfile(r, i))
	}
	return out
}

var bases = []struct{ image, manifests, install, build string }{
	{"node:22-bookworm", "package.json package-lock.json", "npm ci", "npm run build"},
	{"node:22-alpine", "package.json yarn.lock", "yarn install --frozen-lockfile", "yarn build"},
	{"golang:1.26", "go.mod go.sum", "go mod download", "go build -o /out/app ./cmd/app"},
	{"python:3.12-slim", "requirements.txt", "pip install --no-cache-dir -r requirements.txt", "python -m compileall ."},
	{"python:3.12", "pyproject.toml uv.lock", "uv sync --frozen --no-install-project", "uv sync --frozen"},
	{"rust:1.85", "Cargo.toml Cargo.lock", "cargo fetch", "cargo build --release --locked"},
	{"maven:3-eclipse-temurin-21", "pom.xml", "mvn -B dependency:go-offline", "mvn -B package -DskipTests"},
	{"ruby:3.3", "Gemfile Gemfile.lock", "bundle install --deployment", "bundle exec rake assets:precompile"},
	{"mcr.microsoft.com/dotnet/sdk:9.0", "app.csproj", "dotnet restore", "dotnet publish -c Release -o /out"},
	{"composer:2", "composer.json composer.lock", "composer install --no-dev", "php artisan optimize"},
}

func oneDockerfile(r *rand.Rand, i int) string {
	b := &strings.Builder{}
	base := bases[r.Intn(len(bases))]
	if r.Intn(4) == 0 {
		b.WriteString("# syntax=docker/dockerfile:1\n")
	}
	if r.Intn(3) == 0 {
		fmt.Fprintf(b, "ARG BASE_TAG=%d\n", r.Intn(20))
	}
	multi := r.Intn(2) == 0
	stage := ""
	if multi {
		stage = " AS build"
	}
	fmt.Fprintf(b, "FROM %s%s\n", base.image, stage)
	if r.Intn(3) == 0 {
		b.WriteString("ARG GIT_SHA\nARG BUILD_NUMBER=0\n")
	}
	switch r.Intn(4) {
	case 0:
		b.WriteString("RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl git \\\n    && rm -rf /var/lib/apt/lists/*\n")
	case 1:
		b.WriteString("RUN apt-get update\nRUN apt-get install -y make gcc\n")
	case 2:
		b.WriteString("RUN <<EOF\nset -eux\napt-get update\napt-get install -y --no-install-recommends tini\nrm -rf /var/lib/apt/lists/*\nEOF\n")
	}
	b.WriteString("WORKDIR /src\n")
	if r.Intn(2) == 0 {
		fmt.Fprintf(b, "COPY %s ./\nRUN %s\nCOPY . .\n", base.manifests, base.install)
	} else {
		fmt.Fprintf(b, "COPY . .\nRUN %s\n", base.install)
	}
	if r.Intn(3) == 0 {
		fmt.Fprintf(b, "RUN --mount=type=cache,target=/root/.cache %s\n", base.build)
	} else {
		fmt.Fprintf(b, "RUN %s\n", base.build)
	}
	if r.Intn(5) == 0 {
		b.WriteString("RUN curl -fsSL https://example.com/install.sh | sh\n")
	}
	if r.Intn(6) == 0 {
		b.WriteString("RUN echo \"built $(date)\" > /build-info\n")
	}
	if r.Intn(6) == 0 {
		fmt.Fprintf(b, "ADD https://example.com/tool-%d.tar.gz /opt/\n", r.Intn(9))
	}
	for j := r.Intn(4); j > 0; j-- {
		fmt.Fprintf(b, "ENV OPT_%d=%d\n", j, r.Intn(100))
	}
	if multi {
		b.WriteString("\nFROM debian:bookworm-slim\n")
		if r.Intn(2) == 0 {
			b.WriteString("RUN useradd -r app\nUSER app\n")
		}
		b.WriteString("COPY --from=build /out /app\n")
	}
	if r.Intn(2) == 0 {
		b.WriteString("EXPOSE 8080\n")
	}
	if r.Intn(3) == 0 {
		fmt.Fprintf(b, "LABEL org.opencontainers.image.revision=$GIT_SHA build=%d\n", i)
	}
	if r.Intn(2) == 0 {
		b.WriteString("CMD [\"/app/run\"]\n")
	} else {
		b.WriteString("CMD /app/run --port 8080\n")
	}
	return b.String()
}
