package lint

import (
	"fmt"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

// RuleCacheMountMissing: rule 11.
var RuleCacheMountMissing = Rule[func(cmd, dirs string, copyLine int) string]{
	RuleInfo: RuleInfo{
		Name:        "CacheMountMissing",
		Severity:    SeverityInfo,
		Description: "A compile or install step that re-runs on every source change has no --mount=type=cache on its cache directory",
		URL:         docURL("CacheMountMissing"),
		Explain: "A step after a broad COPY re-runs whenever any source file changes. With a cache mount on the tool's cache " +
			"directory it starts warm instead of downloading and compiling everything again. The rule speaks only where the " +
			"step re-runs often, so it does not fire on every file.",
		Bad:  "FROM golang:1.26\nWORKDIR /src\nCOPY . .\nRUN go build -o /app .\n",
		Good: "FROM golang:1.26\nWORKDIR /src\nCOPY . .\nRUN --mount=type=cache,target=/root/.cache/go-build --mount=type=cache,target=/go/pkg/mod go build -o /app .\n",
	},
	Format: func(cmd, dirs string, copyLine int) string {
		return fmt.Sprintf("%s re-runs whenever the sources copied on line %d change; add --mount=type=cache,target=%s", cmd, copyLine, dirs)
	},
}

// RuleVolumeUsedAsBuildCache: rule 12.
var RuleVolumeUsedAsBuildCache = Rule[func(dir string) string]{
	RuleInfo: RuleInfo{
		Name:        "VolumeUsedAsBuildCache",
		Severity:    SeverityWarning,
		Description: "VOLUME on a dependency cache directory (~/.m2, ~/.gradle, .cache, node_modules)",
		URL:         docURL("VolumeUsedAsBuildCache"),
		Explain: "VOLUME does not cache anything between builds; it only declares a mount point for containers, and with the " +
			"classic builder it even discards what later steps write there. Use RUN --mount=type=cache for build caches.",
		Bad:  "FROM maven:3-eclipse-temurin-21\nVOLUME /root/.m2\n",
		Good: "FROM maven:3-eclipse-temurin-21\nRUN --mount=type=cache,target=/root/.m2 mvn -B package\n",
	},
	Format: func(dir string) string {
		return fmt.Sprintf("VOLUME %s does not keep a cache between builds; use RUN --mount=type=cache,target=%s", dir, dir)
	},
}

// cacheDirs are where each ecosystem keeps what a cache mount should hold.
var cacheDirs = map[string]string{
	"go": "/root/.cache/go-build", "cargo": "/usr/local/cargo/registry", "npm": "/root/.npm", "yarn": "/usr/local/share/.cache/yarn",
	"pnpm": "/root/.local/share/pnpm/store", "bun": "/root/.bun/install/cache", "pip": "/root/.cache/pip", "uv": "/root/.cache/uv",
	"poetry": "/root/.cache/pypoetry", "pipenv": "/root/.cache/pipenv", "maven": "/root/.m2", "gradle": "/root/.gradle",
	"dotnet": "/root/.nuget/packages", "composer": "/root/.composer/cache", "bundler": "/usr/local/bundle/cache", "mix": "/root/.hex",
}

func checkCacheMounts(p *pass) {
	for _, st := range p.df.Stages {
		copyLine := 0
		for _, s := range st.Steps {
			if cs := p.copied(s); cs != nil && p.broadCopy(cs) {
				copyLine = s.Start
				continue
			}
			if copyLine == 0 || s.Script == nil || hasCacheMount(s) {
				continue
			}
			for _, c := range s.Script.Commands {
				e := buildEcosystem(c)
				if e == nil {
					continue
				}
				p.report(RuleCacheMountMissing.Info(), s, RuleCacheMountMissing.Format(short(c), cacheDirs[e.name], copyLine), nil)
				break
			}
		}
	}
}

func buildEcosystem(c *ShellCommand) *ecosystem {
	for _, e := range ecosystems {
		if e.build(c) {
			return e
		}
	}
	return nil
}

func hasCacheMount(s *Step) bool {
	for _, m := range s.Mounts {
		if m.Type == instructions.MountTypeCache {
			return true
		}
	}
	return false
}

var cacheVolumes = []string{".m2", ".gradle", ".cache", "node_modules", ".npm", ".yarn", "go/pkg/mod", ".cargo/registry", "cargo/registry", ".nuget", ".ivy2", ".sbt", ".pnpm-store", ".composer"}

func checkVolumes(p *pass) {
	for _, st := range p.df.Stages {
		for _, s := range st.Steps {
			v, ok := s.Cmd.(*instructions.VolumeCommand)
			if !ok {
				continue
			}
			for _, dir := range v.Volumes {
				d := strings.TrimSuffix(dir, "/")
				for _, c := range cacheVolumes {
					if strings.HasSuffix(d, "/"+c) || d == c || strings.HasSuffix(d, "~/"+c) {
						p.report(RuleVolumeUsedAsBuildCache.Info(), s, RuleVolumeUsedAsBuildCache.Format(dir), nil)
						break
					}
				}
			}
		}
	}
}
