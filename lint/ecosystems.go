package lint

import (
	"path"
	"strings"
)

// ecosystem is a package manager: the files its install needs and the
// commands that install, build or enforce the lockfile.
type ecosystem struct {
	name      string
	manifests []string // base-name globs
	dirs      []string // directories that belong with the manifests
	// install reports a command that fetches dependencies from the
	// manifests alone.
	install func(c *ShellCommand) bool
	// build reports a command that compiles the sources and fetches missing
	// dependencies on the way.
	build func(c *ShellCommand) bool
	// frozen returns the lockfiles, one of which c requires.
	frozen func(c *ShellCommand) []string
}

func none(*ShellCommand) bool { return false }

// node reports the package managers of package.json, whose install runs
// its scripts' install hooks.
func (e *ecosystem) node() bool {
	return e.name == "npm" || e.name == "yarn" || e.name == "pnpm" || e.name == "bun"
}

func isPip(c *ShellCommand) bool {
	n := c.Name()
	if strings.HasPrefix(n, "pip") {
		return c.Sub() == "install"
	}
	if strings.HasPrefix(n, "python") {
		return c.Has("pip") && c.Has("install") && c.Has("-m")
	}
	return n == "uv" && c.Is("uv", "pip", "install")
}

var ecosystems = []*ecosystem{
	{name: "npm", manifests: []string{"package.json", "package-lock.json", "npm-shrinkwrap.json", ".npmrc"},
		install: func(c *ShellCommand) bool {
			// npm install <pkg> adds a package; without names it installs the manifest.
			return c.Name() == "npm" && (c.Sub() == "ci" || (c.Sub() == "install" || c.Sub() == "i") && len(c.Positional()) == 1)
		}, build: none,
		frozen: func(c *ShellCommand) []string {
			if c.Is("npm", "ci") {
				return []string{"package-lock.json", "npm-shrinkwrap.json"}
			}
			return nil
		}},
	{name: "yarn", manifests: []string{"package.json", "yarn.lock", ".yarnrc", ".yarnrc.yml"}, dirs: []string{".yarn"},
		install: func(c *ShellCommand) bool { return c.Name() == "yarn" && (c.Sub() == "" || c.Sub() == "install") },
		build:   none,
		frozen: func(c *ShellCommand) []string {
			if c.Name() == "yarn" && (c.Sub() == "" || c.Sub() == "install") && c.Has("--frozen-lockfile", "--immutable") {
				return []string{"yarn.lock"}
			}
			return nil
		}},
	{name: "pnpm", manifests: []string{"package.json", "pnpm-lock.yaml", "pnpm-workspace.yaml", ".npmrc"},
		install: func(c *ShellCommand) bool {
			return c.Name() == "pnpm" && (c.Sub() == "install" || c.Sub() == "i" || c.Sub() == "fetch")
		}, build: none,
		frozen: func(c *ShellCommand) []string {
			if c.Name() == "pnpm" && (c.Sub() == "fetch" || c.Has("--frozen-lockfile")) {
				return []string{"pnpm-lock.yaml"}
			}
			return nil
		}},
	{name: "bun", manifests: []string{"package.json", "bun.lockb", "bun.lock", "bunfig.toml"},
		install: func(c *ShellCommand) bool { return c.Name() == "bun" && (c.Sub() == "install" || c.Sub() == "i") },
		build:   none,
		frozen: func(c *ShellCommand) []string {
			if c.Name() == "bun" && c.Has("--frozen-lockfile") {
				return []string{"bun.lock", "bun.lockb"}
			}
			return nil
		}},
	{name: "pip", manifests: []string{"requirements*.txt", "constraints*.txt"}, dirs: []string{"requirements"},
		install: func(c *ShellCommand) bool { return isPip(c) && c.Has("-r", "--requirement", "--requirement=") },
		build:   none, frozen: func(*ShellCommand) []string { return nil }},
	{name: "poetry", manifests: []string{"pyproject.toml", "poetry.lock", "poetry.toml"},
		install: func(c *ShellCommand) bool { return c.Is("poetry", "install") },
		build:   none, frozen: func(*ShellCommand) []string { return nil }},
	{name: "uv", manifests: []string{"pyproject.toml", "uv.lock", ".python-version"},
		install: func(c *ShellCommand) bool { return c.Is("uv", "sync") },
		build:   none,
		frozen: func(c *ShellCommand) []string {
			if c.Is("uv", "sync") && c.Has("--frozen", "--locked") {
				return []string{"uv.lock"}
			}
			return nil
		}},
	{name: "pipenv", manifests: []string{"Pipfile", "Pipfile.lock"},
		install: func(c *ShellCommand) bool { return c.Is("pipenv", "install") || c.Is("pipenv", "sync") },
		build:   none,
		frozen: func(c *ShellCommand) []string {
			if c.Is("pipenv", "sync") || c.Is("pipenv", "install") && c.Has("--deploy") {
				return []string{"Pipfile.lock"}
			}
			return nil
		}},
	{name: "go", manifests: []string{"go.mod", "go.sum", "go.work", "go.work.sum"},
		install: func(c *ShellCommand) bool { return c.Is("go", "mod", "download") },
		build: func(c *ShellCommand) bool {
			return c.Is("go", "build") || c.Is("go", "install") && !strings.Contains(strings.Join(c.Args, " "), "@") || c.Is("go", "test")
		},
		frozen: func(*ShellCommand) []string { return nil }},
	{name: "cargo", manifests: []string{"Cargo.toml", "Cargo.lock", "rust-toolchain", "rust-toolchain.toml", "recipe.json"}, dirs: []string{".cargo"},
		install: func(c *ShellCommand) bool { return c.Is("cargo", "fetch") || c.Is("cargo", "chef", "cook") },
		build: func(c *ShellCommand) bool {
			return c.Is("cargo", "build") || c.Is("cargo", "install") && c.Has("--path", ".")
		},
		frozen: func(c *ShellCommand) []string {
			if c.Name() == "cargo" && c.Sub() != "chef" && c.Sub() != "install" && c.Has("--locked", "--frozen") {
				return []string{"Cargo.lock"}
			}
			return nil
		}},
	{name: "bundler", manifests: []string{"Gemfile", "Gemfile.lock", "*.gemspec", ".ruby-version"}, dirs: []string{".bundle"},
		install: func(c *ShellCommand) bool { return c.Is("bundle", "install") || c.Name() == "bundle" && c.Sub() == "" },
		build:   none,
		frozen: func(c *ShellCommand) []string {
			if c.Name() == "bundle" && c.Has("--frozen", "--deployment") {
				return []string{"Gemfile.lock"}
			}
			return nil
		}},
	{name: "composer", manifests: []string{"composer.json", "composer.lock", "auth.json"},
		install: func(c *ShellCommand) bool { return c.Is("composer", "install") },
		build:   none, frozen: func(*ShellCommand) []string { return nil }},
	{name: "mix", manifests: []string{"mix.exs", "mix.lock"}, dirs: []string{"config"},
		install: func(c *ShellCommand) bool { return c.Is("mix", "deps.get") },
		build:   func(c *ShellCommand) bool { return c.Is("mix", "compile") || c.Is("mix", "release") },
		frozen: func(c *ShellCommand) []string {
			if c.Is("mix", "deps.get") && c.Has("--check-locked") {
				return []string{"mix.lock"}
			}
			return nil
		}},
	{name: "dotnet", manifests: []string{"*.csproj", "*.fsproj", "*.vbproj", "*.sln", "*.slnx", "NuGet.config", "nuget.config", "Directory.Build.props", "Directory.Packages.props", "global.json", "packages.lock.json"},
		install: func(c *ShellCommand) bool { return c.Is("dotnet", "restore") },
		build: func(c *ShellCommand) bool {
			return (c.Is("dotnet", "publish") || c.Is("dotnet", "build")) && !c.Has("--no-restore")
		},
		frozen: func(c *ShellCommand) []string {
			if c.Is("dotnet", "restore") && c.Has("--locked-mode") {
				return []string{"packages.lock.json"}
			}
			return nil
		}},
	{name: "maven", manifests: []string{"pom.xml", "mvnw", "mvnw.cmd"}, dirs: []string{".mvn"},
		install: func(c *ShellCommand) bool {
			return (c.Name() == "mvn" || c.Name() == "mvnw") && c.Has("dependency:go-offline", "dependency:resolve", "de.qaware.maven:go-offline-maven-plugin:resolve-dependencies")
		},
		build: func(c *ShellCommand) bool {
			return (c.Name() == "mvn" || c.Name() == "mvnw") && c.Has("package", "install", "verify", "compile")
		},
		frozen: func(*ShellCommand) []string { return nil }},
	{name: "make", manifests: []string{"Makefile", "GNUmakefile", "makefile", "*.mk"},
		install: func(c *ShellCommand) bool {
			if c.tool() != "make" {
				return false
			}
			for _, t := range c.Positional() {
				if makeDepTargets[strings.ToLower(t)] {
					return true
				}
			}
			return false
		}, build: none, frozen: func(*ShellCommand) []string { return nil }},
	{name: "gradle", manifests: []string{"build.gradle", "build.gradle.kts", "settings.gradle", "settings.gradle.kts", "gradle.properties", "gradlew", "libs.versions.toml", "gradle-wrapper.properties", "gradle-wrapper.jar"}, dirs: []string{"gradle"},
		install: func(c *ShellCommand) bool {
			return (c.Name() == "gradle" || c.Name() == "gradlew") && c.Has("dependencies", "downloadDependencies", "resolveDependencies")
		},
		build: func(c *ShellCommand) bool {
			if c.tool() != "gradle" {
				return false
			}
			// A task may be named with its project path, :app:bootJar.
			for _, a := range c.Positional() {
				switch a[strings.LastIndex(a, ":")+1:] {
				case "build", "assemble", "bootJar", "shadowJar", "installDist", "jar":
					return true
				}
			}
			return false
		},
		frozen: func(*ShellCommand) []string { return nil }},
}

// depInputs are files and folders that an install reads besides the
// manifests: patches applied on install (yarn patch, patch-package) and
// pinned tool versions.
var depInputs = []string{"*_VERSION", ".nvmrc", ".node-version", ".tool-versions"}

// isDepInput reports a dependency input of any ecosystem.
func isDepInput(rel, base string) bool {
	for _, m := range depInputs {
		if ok, _ := path.Match(m, base); ok {
			return true
		}
	}
	return rel == "patches" || strings.HasPrefix(rel, "patches/") || strings.Contains(rel, "/patches/") || strings.HasSuffix(rel, "/patches")
}

// makeDepTargets are make targets that by convention fetch dependencies.
var makeDepTargets = map[string]bool{"deps": true, "dependencies": true, "install-deps": true, "install-dependencies": true,
	"deps-install": true, "vendor": true, "download": true, "mod-download": true, "go-mod-download": true, "setup-deps": true, "get-deps": true}

// isManifest reports whether a context path is a manifest, lockfile,
// package-manager setting or other dependency input of any ecosystem.
func isManifest(rel string) bool {
	base := path.Base(rel)
	if isDepInput(rel, base) {
		return true
	}
	for _, e := range ecosystems {
		if e.owns(rel, base) {
			return true
		}
	}
	return false
}

func (e *ecosystem) owns(rel, base string) bool {
	for _, m := range e.manifests {
		if ok, _ := path.Match(m, base); ok {
			return true
		}
	}
	for _, d := range e.dirs {
		if rel == d || strings.HasPrefix(rel, d+"/") || strings.Contains(rel, "/"+d+"/") {
			return true
		}
	}
	return false
}
