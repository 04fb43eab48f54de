package lint

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEcosystems checks, for every package manager, that an install after
// COPY . . is reported, that a manifest COPY first is not, and that the fix
// (with a context holding the manifests) converges.
func TestEcosystems(t *testing.T) {
	cases := []struct {
		name      string
		manifests []string
		install   string
	}{
		{"npm", []string{"package.json", "package-lock.json"}, "npm ci"},
		{"yarn", []string{"package.json", "yarn.lock"}, "yarn install --frozen-lockfile"},
		{"pnpm", []string{"package.json", "pnpm-lock.yaml"}, "pnpm install --frozen-lockfile"},
		{"bun", []string{"package.json", "bun.lock"}, "bun install --frozen-lockfile"},
		{"pip", []string{"requirements.txt"}, "pip install -r requirements.txt"},
		{"python -m pip", []string{"requirements.txt"}, "python -m pip install -r requirements.txt"},
		{"poetry", []string{"pyproject.toml", "poetry.lock"}, "poetry install --no-root"},
		{"uv", []string{"pyproject.toml", "uv.lock"}, "uv sync --frozen --no-install-project"},
		{"pipenv", []string{"Pipfile", "Pipfile.lock"}, "pipenv install --deploy"},
		{"go", []string{"go.mod", "go.sum"}, "go mod download"},
		{"cargo", []string{"Cargo.toml", "Cargo.lock"}, "cargo fetch"},
		{"bundler", []string{"Gemfile", "Gemfile.lock"}, "bundle install"},
		{"composer", []string{"composer.json", "composer.lock"}, "composer install --no-dev"},
		{"mix", []string{"mix.exs", "mix.lock"}, "mix deps.get"},
		{"dotnet", []string{"app.csproj"}, "dotnet restore"},
		{"maven", []string{"pom.xml"}, "mvn -B dependency:go-offline"},
		{"gradle", []string{"build.gradle", "settings.gradle"}, "gradle dependencies --no-daemon"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bad := "FROM base\nWORKDIR /app\nCOPY . .\nRUN " + tc.install + "\n"
			good := "FROM base\nWORKDIR /app\nCOPY " + strings.Join(tc.manifests, " ") + " ./\nRUN " + tc.install + "\nCOPY . .\n"
			if got := fired(t, bad, nil)["SourceCopiedBeforeDependencyInstall"]; len(got) != 1 {
				t.Errorf("install after COPY . . not reported:\n%s", bad)
			}
			if got := fired(t, good, nil)["SourceCopiedBeforeDependencyInstall"]; len(got) != 0 {
				t.Errorf("manifest COPY first still reported:\n%s", good)
			}
			dir := t.TempDir()
			for _, f := range append(tc.manifests, "src/main.txt", "README.md") {
				p := filepath.Join(dir, f)
				os.MkdirAll(filepath.Dir(p), 0o755)
				if err := os.WriteFile(p, []byte("x\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			os.WriteFile(filepath.Join(dir, ".dockerignore"), []byte("Dockerfile\n"), 0o644)
			res, err := Lint("Dockerfile", []byte(bad), Options{ContextDir: dir})
			if err != nil {
				t.Fatal(err)
			}
			fx := res.Fix()
			if len(fx.Applied) == 0 {
				t.Fatalf("no fix applied: %+v", res.Findings)
			}
			again, err := Lint("Dockerfile", fx.Dockerfile, Options{ContextDir: dir})
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range again.Findings {
				if f.Rule == "SourceCopiedBeforeDependencyInstall" || f.Rule == "LockfileNotCopied" {
					t.Errorf("after the fix: %s %s\n%s", f.Rule, f.Message, fx.Dockerfile)
				}
			}
		})
	}
}
