package lint

import (
	"fmt"
	"path"
	"slices"
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
			"step re-runs often, so it does not fire on every file. Only a cache mount on the tool's own directory (its usual path, " +
			"or a path naming it, like /cache/go-build) counts; for go the module cache is needed too unless an earlier step " +
			"ran go mod download or the build uses a vendor folder (vendor/modules.txt copied, -mod=vendor). The path follows the stage's ENV (CARGO_HOME, GOCACHE, GOPATH, GRADLE_USER_HOME, " +
			"PIP_CACHE_DIR, ...), and cargo's is /root/.cargo when cargo comes from the system's packages rather than " +
			"a Rust image. Maven, Gradle, Cargo, NuGet and Mix keep their packages where they cache them: after an install " +
			"step that filled that store in a layer (mvn dependency:go-offline, cargo fetch, a cargo build of a dummy project " +
			"before the sources, any Gradle or Maven task run before), a cache mount would hide it, so the rule says nothing.",
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
			"classic builder it even discards what later steps write there. Use RUN --mount=type=cache for build caches. " +
			"A node_modules volume after the install that filled it is not reported: development images declare one so " +
			"that a bind mount of the sources does not hide the modules.",
		Bad:  "FROM maven:3-eclipse-temurin-21\nVOLUME /root/.m2\n",
		Good: "FROM maven:3-eclipse-temurin-21\nRUN --mount=type=cache,target=/root/.m2 mvn -B package\n",
	},
	Format: func(dir string) string {
		return fmt.Sprintf("VOLUME %s does not keep a cache between builds; use RUN --mount=type=cache,target=%s", dir, dir)
	},
}

// cacheDir is where an ecosystem keeps what a cache mount should hold,
// and a word that recognises a cache mount of it at another path (a
// GOCACHE or npm_config_cache set elsewhere).
type cacheDir struct{ target, word string }

// cacheDirs are the cache directories of each ecosystem's build and
// install steps; go mod download fills only the module cache (goModCache).
var cacheDirs = map[string]cacheDir{
	"go": {"/root/.cache/go-build", "go-build"}, "cargo": {"/usr/local/cargo/registry", "cargo"}, "npm": {"/root/.npm", "npm"},
	"yarn": {"/usr/local/share/.cache/yarn", "yarn"}, "pnpm": {"/root/.local/share/pnpm/store", "pnpm"}, "bun": {"/root/.bun/install/cache", "bun"},
	"pip": {"/root/.cache/pip", "pip"}, "uv": {"/root/.cache/uv", "uv"}, "poetry": {"/root/.cache/pypoetry", "poetry"},
	"pipenv": {"/root/.cache/pipenv", "pipenv"}, "maven": {"/root/.m2", ".m2"}, "gradle": {"/root/.gradle", "gradle"},
	"dotnet": {"/root/.nuget/packages", "nuget"}, "composer": {"/root/.composer/cache", "composer"}, "bundler": {"/usr/local/bundle/cache", "bundle"},
	"mix": {"/root/.hex", "hex"},
}

var goModCache = cacheDir{"/go/pkg/mod", "pkg/mod"}

// cacheEnv are, per ecosystem, the variables that move its cache and the
// path of the cache under their value.
var cacheEnv = map[string][]struct{ name, sub string }{
	"go": {{"GOCACHE", ""}}, "gomod": {{"GOMODCACHE", ""}, {"GOPATH", "/pkg/mod"}},
	"cargo": {{"CARGO_HOME", "/registry"}}, "npm": {{"npm_config_cache", ""}, {"NPM_CONFIG_CACHE", ""}},
	"yarn": {{"YARN_CACHE_FOLDER", ""}}, "pnpm": {{"PNPM_STORE_DIR", ""}}, "bun": {{"BUN_INSTALL_CACHE_DIR", ""}},
	"pip": {{"PIP_CACHE_DIR", ""}}, "uv": {{"UV_CACHE_DIR", ""}}, "poetry": {{"POETRY_CACHE_DIR", ""}},
	"pipenv": {{"PIPENV_CACHE_DIR", ""}}, "gradle": {{"GRADLE_USER_HOME", ""}}, "dotnet": {{"NUGET_PACKAGES", ""}},
	"composer": {{"COMPOSER_CACHE_DIR", ""}, {"COMPOSER_HOME", "/cache"}},
}

// in returns d moved where the step's environment puts the ecosystem's
// cache (ENV CARGO_HOME=/root/.cargo puts cargo's at /root/.cargo/registry).
func (d cacheDir) in(eco string, scope *Scope) cacheDir {
	if scope == nil {
		return d
	}
	for _, e := range cacheEnv[eco] {
		if v := scope.Var(e.name); v != nil && v.Env && strings.HasPrefix(v.Value, "/") && !strings.Contains(v.Value, "$") {
			return cacheDir{target: strings.TrimSuffix(v.Value, "/") + e.sub, word: d.word}
		}
	}
	return d
}

// storeCaches are the ecosystems whose cache directory is their package
// store itself: an install step before fills it in a layer, which a cache
// mount on the same directory would hide from the build (mvn
// dependency:go-offline, then mvn package). mix deps.get fills deps/ and
// ~/.hex: the compile after it fetches nothing.
var storeCaches = map[string]bool{"maven": true, "gradle": true, "cargo": true, "dotnet": true, "mix": true}

// neededCaches returns the cache directories a build command c needs:
// the ecosystem's build cache, and for go the module cache too unless an
// earlier step of the stage downloaded the modules (modsDownloaded).
// Install steps are SourceCopiedBeforeDependencyInstall's: once they come
// before the sources, they do not re-run often.
func neededCaches(c *ShellCommand, modsDownloaded bool, prefetched map[string]bool, scope *Scope) []cacheDir {
	for _, e := range ecosystems {
		if !e.build(c) {
			continue
		}
		if prefetched[e.name] {
			return nil
		}
		if e.name == "go" && !modsDownloaded && !goVendored(c, scope) {
			return []cacheDir{cacheDirs["go"].in("go", scope), goModCache.in("gomod", scope)}
		}
		return []cacheDir{cacheDirs[e.name].in(e.name, scope)}
	}
	return nil
}

// distroCargo is where cargo keeps its registry when it comes from the
// system's packages (apk add cargo) rather than the rust image, whose
// CARGO_HOME is /usr/local/cargo.
var distroCargo = cacheDir{"/root/.cargo/registry", "cargo"}

// forStage moves the cargo registry to distroCargo in a stage that is not
// built on a Rust image and does not set CARGO_HOME.
func forStage(d cacheDir, st *Stage, scope *Scope) cacheDir {
	if d != cacheDirs["cargo"] {
		return d
	}
	if scope != nil {
		if v := scope.Var("CARGO_HOME"); v != nil && v.Env {
			return d
		}
	}
	for ; st != nil; st = st.Parent {
		if st.Parent == nil {
			image, _, _ := strings.Cut(strings.ToLower(st.Base), ":")
			if strings.Contains(image, "rust") || strings.Contains(image, "cargo") || strings.Contains(image, "$") {
				return d
			}
		}
	}
	return distroCargo
}

// goVendored reports a go command that builds from vendor/ (-mod=vendor,
// in its flags or in GOFLAGS): it does not read the module cache.
func goVendored(c *ShellCommand, scope *Scope) bool {
	if slices.Contains(c.Args, "-mod=vendor") {
		return true
	}
	if scope != nil {
		if v := scope.Var("GOFLAGS"); v != nil && strings.Contains(v.Value, "-mod=vendor") {
			return true
		}
	}
	return false
}

// copiesVendor reports a copy that brings a Go module's vendor folder
// (vendor/modules.txt): go build then uses it by default, not the module
// cache.
func copiesVendor(cs *copySet) bool {
	for _, e := range cs.entries {
		if e.Path == "vendor/modules.txt" || strings.HasSuffix(e.Path, "/vendor/modules.txt") {
			return true
		}
	}
	return false
}

// hasCacheMountFor reports a cache mount on d's directory (or one above
// it), by its usual path or by its word.
func hasCacheMountFor(s *Step, d cacheDir) bool {
	for _, m := range s.Mounts {
		if m.Type != instructions.MountTypeCache {
			continue
		}
		t := strings.TrimSuffix(strings.ToLower(m.Target), "/")
		if t == d.target || strings.HasPrefix(d.target, t+"/") || strings.Contains(t, d.word) {
			return true
		}
	}
	return false
}

func checkCacheMounts(p *pass) {
	for _, st := range p.df.Stages {
		copyLine := 0
		modsDownloaded := false
		prefetched := map[string]bool{}
		for _, s := range st.Steps {
			cs := p.copied(s)
			if cs != nil && copiesVendor(cs) {
				modsDownloaded = true // go builds from vendor/, not the module cache
			}
			if cs != nil && p.broadCopy(cs) && !cs.placeholdersOnly() {
				copyLine = s.Start
				continue
			}
			if s.Script == nil {
				continue
			}
			for _, c := range s.Script.Commands {
				if copyLine != 0 {
					var missing []string
					for _, d := range neededCaches(c, modsDownloaded, prefetched, s.Scope) {
						d = forStage(d, s.Stage, s.Scope)
						if !hasCacheMountFor(s, d) {
							missing = append(missing, d.target)
						}
					}
					if len(missing) > 0 {
						p.report(RuleCacheMountMissing.Info(), s, RuleCacheMountMissing.Format(short(c), strings.Join(missing, " --mount=type=cache,target="), copyLine), nil)
						break
					}
				}
				if c.Is("go", "mod", "download") || c.Is("go", "mod", "vendor") {
					modsDownloaded = true
				}
				for _, e := range ecosystems {
					// A build before the sources came (cargo's dummy-project
					// build) fills the store as an install does.
					filled := e.install(c) || runsBuildTool(c, e) || copyLine == 0 && e.build(c)
					if storeCaches[e.name] && filled && !hasCacheMountFor(s, cacheDirs[e.name].in(e.name, s.Scope)) {
						prefetched[e.name] = true
					}
				}
			}
		}
	}
}

var cacheVolumes = []string{".m2", ".gradle", ".cache", "node_modules", ".npm", ".yarn", "go/pkg/mod", ".cargo/registry", "cargo/registry", ".nuget", ".ivy2", ".sbt", ".pnpm-store", ".composer"}

// installedBefore reports whether a RUN before step s, in its stage or the
// stages it is built on, installs a project's dependencies.
func installedBefore(st *Stage, s *Step) bool {
	for cur := st; cur != nil; cur = cur.Parent {
		for _, r := range cur.Steps {
			if cur == st && r.Index >= s.Index {
				break
			}
			if r.Script == nil {
				continue
			}
			for _, e := range ecosystems {
				if has(r.Script, e.install) {
					return true
				}
			}
		}
	}
	return false
}

func checkVolumes(p *pass) {
	for _, st := range p.df.Stages {
		for _, s := range st.Steps {
			v, ok := s.Cmd.(*instructions.VolumeCommand)
			if !ok {
				continue
			}
			for _, dir := range v.Volumes {
				d := strings.TrimSuffix(dir, "/")
				if path.Base(d) == "node_modules" && installedBefore(st, s) {
					// The project's own modules, installed above: the
					// volume keeps them from being hidden by a bind mount
					// of the sources when the container runs.
					continue
				}
				for _, c := range cacheVolumes {
					// The cache directory itself or one inside it (/root/.m2/repository).
					if strings.Contains("/"+d+"/", "/"+c+"/") {
						p.report(RuleVolumeUsedAsBuildCache.Info(), s, RuleVolumeUsedAsBuildCache.Format(dir), nil)
						break
					}
				}
			}
		}
	}
}
