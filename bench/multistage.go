package main

import (
	"context"

	"github.com/strata-build/strata/integration/testenv"
)

// multiStageDockerfile is appDockerfile's application built in a builder
// stage, with only the build output in the image: the dependency step is
// in no image's inline cache.
const multiStageDockerfile = `FROM %[1]s AS build
RUN mkdir -p /usr/share/sys && head -c 4000000 /dev/urandom > /usr/share/sys/pkgs.bin
WORKDIR /app
COPY lock.txt ./
RUN sleep %[3]d && mkdir -p deps && for i in $(seq %[2]d); do head -c 5000000 /dev/urandom > deps/lib$i.so; yes "$(cat lock.txt)" | head -c 5000000 > deps/lib$i.txt; done
COPY src/ ./src/
RUN cat src/*.txt > app.bin && for i in $(seq 3); do sha256sum app.bin deps/lib1.so >/dev/null; done

FROM %[1]s
COPY --from=build /app/app.bin /app/app.bin
`

// multiStageScenario is the one-change scenario for a multi-stage
// Dockerfile: v1 is pushed, v2 differs by one source line in a new
// commit, and each contender builds v2 on a fresh runner. The pipelines
// compared: BuildKit's registry cache with mode=max, BuildKit's inline
// cache from :latest, strata with no flags (v1 pushed by strata too), and
// strata with no flags after a v1 that BuildKit pushed with a mode=max
// registry cache beside it (docker buildx build --cache-to
// type=registry,ref=REPO:buildcache,mode=max).
func multiStageScenario(ctx context.Context, b *bed, cfg config, link string, proxy *testenv.Proxy) ([]Result, error) {
	return changeLoop{label: "multi-stage", result: "multi-stage-one-change", name: "multi", dockerfile: multiStageDockerfile, contenders: multiStageContenders}.run(ctx, b, cfg, link, proxy)
}

// multiStageContenders are the multi-stage scenario's contenders, building
// the context ctxDir with the binaries in bin.
func multiStageContenders(bin, ctxDir string) []contender {
	buildctl, strata := contextCommands(bin, ctxDir)
	maxV1 := func(addr, repo string) (string, []string) {
		return buildctl(addr, "--output", "type=image,name="+repo+":latest,push=true", "--export-cache", "type=inline",
			"--export-cache", "type=registry,ref="+repo+":buildcache,mode=max")
	}
	return []contender{
		{name: "BuildKit, registry cache mode=max", v1: maxV1,
			v2: func(addr, repo string) (string, []string) {
				return buildctl(addr, "--output", "type=image,name="+repo+":v2,push=true", "--import-cache", "type=registry,ref="+repo+":buildcache",
					"--export-cache", "type=registry,ref="+repo+":buildcache,mode=max")
			}},
		{name: "BuildKit, inline cache from :latest", v1: func(addr, repo string) (string, []string) {
			return buildctl(addr, "--output", "type=image,name="+repo+":latest,push=true", "--export-cache", "type=inline")
		}, v2: func(addr, repo string) (string, []string) {
			return buildctl(addr, "--output", "type=image,name="+repo+":v2,push=true", "--export-cache", "type=inline", "--import-cache", "type=registry,ref="+repo+":latest")
		}},
		{name: "strata, no flags (v1 by strata)",
			v1: func(addr, repo string) (string, []string) {
				return strata(addr, "-t", repo+":v1", "-t", repo+":latest", "--push")
			},
			v2: func(addr, repo string) (string, []string) { return strata(addr, "-t", repo+":v2", "--push") }},
		{name: "strata, no flags (v1 by BuildKit with mode=max)", v1: maxV1,
			v2: func(addr, repo string) (string, []string) { return strata(addr, "-t", repo+":v2", "--push") }},
	}
}
