package integration

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/strata-build/strata/integration/testenv"
	"github.com/strata-build/strata/lint"
)

// The base image of the lint --fix tests is busybox with stand-ins for
// npm, pip, go and apt-get in /usr/local/bin. Like the real tools, each
// install reads its manifest or lockfile from the working directory, fails
// without it, and writes a dependency tree that depends only on it; each
// build reads the sources and the installed dependencies. So a fixed
// Dockerfile builds only if it really copies the manifests before the
// install, and the same files come out only if it installs the same
// dependencies.
var lintfixTools = map[string]string{
	"npm": `#!/bin/sh
# npm ci / npm install: package.json and package-lock.json -> node_modules.
# npm run build: src/*.js and node_modules -> dist/app.js.
set -e
die() { echo "npm ERR! $*" >&2; exit 1; }
case "$1" in
ci|install|i)
	[ -f package.json ] || die "enoent Could not read package.json: no such file or directory, open '$PWD/package.json'"
	[ -f package-lock.json ] || die "The npm ci command can only install with an existing package-lock.json"
	rm -rf node_modules
	mkdir node_modules
	sed -n 's|.*"node_modules/\([^"]*\)": *{ *"version": *"\([^"]*\)".*|\1 \2|p' package-lock.json |
	while read -r pkg version; do
		mkdir -p "node_modules/$pkg"
		printf '{"name":"%s","version":"%s"}\n' "$pkg" "$version" > "node_modules/$pkg/package.json"
		printf 'module.exports = "%s@%s";\n' "$pkg" "$version" > "node_modules/$pkg/index.js"
	done
	cp package-lock.json node_modules/.package-lock.json
	echo "added $(ls node_modules | wc -l) packages"
	;;
run)
	[ "$2" = build ] || die "Missing script: \"$2\""
	[ -f package.json ] || die "enoent Could not read package.json"
	[ -d node_modules ] || die "node_modules is missing: run npm ci first"
	mkdir -p dist
	cat src/*.js node_modules/*/index.js > dist/app.js
	;;
*)
	die "unknown command: $1"
	;;
esac
`,
	"pip": `#!/bin/sh
# pip install -r FILE: FILE (name==version lines, nested -r FILE relative to
# it) -> site-packages.
set -e
site=/usr/lib/python3/site-packages
requirements() {
	[ -f "$1" ] || { echo "ERROR: Could not open requirements file: [Errno 2] No such file or directory: '$1'" >&2; exit 1; }
	while read -r line; do
		case "$line" in
		"-r "*|"--requirement "*)
			requirements "$(dirname "$1")/${line#* }"
			;;
		[A-Za-z]*==*)
			pkg=${line%%==*}
			version=${line#*==}
			version=${version%% *}
			mkdir -p "$site/$pkg" "$site/$pkg-$version.dist-info"
			printf '__version__ = "%s"\n' "$version" > "$site/$pkg/__init__.py"
			printf 'Metadata-Version: 2.1\nName: %s\nVersion: %s\n' "$pkg" "$version" > "$site/$pkg-$version.dist-info/METADATA"
			echo "Successfully installed $pkg-$version"
			;;
		esac
	done < "$1"
}
[ "$1" = install ] || { echo "ERROR: unknown command \"$1\"" >&2; exit 1; }
shift
req=
while [ $# -gt 0 ]; do
	case "$1" in
	-r|--requirement) req="$2"; shift 2 ;;
	--requirement=*) req="${1#*=}"; shift ;;
	--no-cache-dir|-q|--quiet) shift ;;
	*) echo "ERROR: unsupported argument $1" >&2; exit 1 ;;
	esac
done
[ -n "$req" ] || { echo "ERROR: You must give at least one requirement to install" >&2; exit 1; }
mkdir -p "$site"
requirements "$req"
`,
	"go": `#!/bin/sh
# go mod download: go.mod and go.sum -> the module cache.
# go build -o OUT: *.go and the modules (downloaded if missing) -> OUT.
set -e
cache=/root/go/pkg/mod
modules() { sed -n 's|^\([^ ]*\) \(v[^ /]*\) h1:.*|\1 \2|p' go.sum; }
download() {
	[ -f go.mod ] || { echo "go: go.mod file not found in current directory or any parent directory; see 'go help modules'" >&2; exit 1; }
	[ -f go.sum ] || { echo "go: missing go.sum entries; to add them: go mod download" >&2; exit 1; }
	modules | while read -r mod version; do
		[ -d "$cache/$mod@$version" ] && continue
		mkdir -p "$cache/$mod@$version" "$cache/cache/download/$mod/@v"
		printf 'package %s // %s %s\n' "${mod##*/}" "$mod" "$version" > "$cache/$mod@$version/lib.go"
		printf '{"Version":"%s"}\n' "$version" > "$cache/cache/download/$mod/@v/$version.info"
	done
}
case "$1" in
mod)
	[ "$2" = download ] || { echo "go mod $2: unknown command" >&2; exit 2; }
	download
	;;
build)
	shift
	out=app
	while [ $# -gt 0 ]; do
		case "$1" in
		-o) out="$2"; shift 2 ;;
		*) shift ;;
		esac
	done
	download
	ls ./*.go > /dev/null 2>&1 || { echo "no Go files in $PWD" >&2; exit 1; }
	mkdir -p "$(dirname "$out")"
	{
		echo '#!/bin/sh'
		sed -n 's/^module /# module /p' go.mod
		cat ./*.go
		modules | while read -r mod version; do
			[ -f "$cache/$mod@$version/lib.go" ] || { echo "missing module $mod@$version" >&2; exit 1; }
			cat "$cache/$mod@$version/lib.go"
		done
	} > "$out"
	chmod 755 "$out"
	;;
*)
	echo "go $1: unknown command" >&2; exit 2
	;;
esac
`,
	"apt-get": `#!/bin/sh
# apt-get update: writes the package lists. apt-get install: needs them.
set -e
case "$1" in
update)
	mkdir -p /var/lib/apt/lists
	echo "Package: libpq5" > /var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_Packages
	;;
install)
	shift
	[ -s /var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_Packages ] || { echo "E: Unable to locate package $*" >&2; exit 100; }
	mkdir -p /var/lib/dpkg /usr/lib
	for p in "$@"; do
		case "$p" in -*) continue ;; esac
		grep -q "^Package: $p\$" /var/lib/apt/lists/*_Packages || { echo "E: Unable to locate package $p" >&2; exit 100; }
		echo "$p" > "/usr/lib/$p.so"
		printf 'Package: %s\nStatus: install ok installed\n\n' "$p" >> /var/lib/dpkg/status
	done
	;;
*)
	echo "E: Invalid operation $1" >&2; exit 100
	;;
esac
`,
}

// pushLintfixBase pushes busybox plus the stand-in tools as REGISTRY/lintfix/base:1.
func pushLintfixBase(t *testing.T) string {
	t.Helper()
	ref := env.Registry.Host + "/lintfix/base:1"
	bb, err := name.ParseReference(env.Busybox, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	base, err := remote.Image(bb)
	if err != nil {
		t.Fatalf("read %s: %v", env.Busybox, err)
	}
	epoch := time.Unix(1700000000, 0).UTC()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range []string{"usr/local/", "usr/local/bin/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: epoch}); err != nil {
			t.Fatal(err)
		}
	}
	tools := make([]string, 0, len(lintfixTools))
	for n := range lintfixTools {
		tools = append(tools, n)
	}
	slices.Sort(tools)
	for _, n := range tools {
		script := lintfixTools[n]
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "usr/local/bin/" + n, Mode: 0o755, Size: int64(len(script)), ModTime: epoch}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, script); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(buf.Bytes())), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:   layer,
		History: v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "stand-ins for npm, pip, go and apt-get"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := testenv.PushImage(t.Context(), ref, img); err != nil {
		t.Fatal(err)
	}
	return ref
}

const dockerignoreSelf = "Dockerfile\n.dockerignore\n"

// lintfixCase is a naive Dockerfile of one ecosystem and its context.
type lintfixCase struct {
	name       string
	dockerfile string // %[1]s is the base image
	files      map[string]string
	buildArgs  [2][]string // for the first build, and for the build after the change
	// rules whose fix must be applied (each at least once).
	rules []string
	// ignored: entries the fix must add to .dockerignore.
	ignored []string
	// change is the one-line source edit: file, old line, new line.
	change [3]string
	// out is a file of the image that must hold the new line after the change.
	out string
	// origInstall is the step of the original that installs the
	// dependencies; fixedInstall the one of the fixed Dockerfile.
	origInstall, fixedInstall string
}

func lintfixCases() []lintfixCase {
	npmLock := `{
  "name": "web",
  "version": "1.0.0",
  "lockfileVersion": 3,
  "requires": true,
  "packages": {
    "": {"name": "web", "version": "1.0.0", "dependencies": {"is-odd": "^3.0.1", "left-pad": "^1.3.0"}},
    "node_modules/is-number": {"version": "6.0.0"},
    "node_modules/is-odd": {"version": "3.0.1"},
    "node_modules/left-pad": {"version": "1.3.0"}
  }
}
`
	goSum := "github.com/google/uuid v1.6.0 h1:NIvaJDMOsjHA8n1jAhLSgzrAzy1Hgr+hNrb57e+94F0=\n" +
		"github.com/google/uuid v1.6.0/go.mod h1:TIyPZe4MgqvfeYDBFedMoGGpEw/LqOeaOT+nhxU+yHo=\n" +
		"golang.org/x/text v0.21.0 h1:zyQAAkrwaneQ066sspRyJaG9VNi/YJ1NfzcGB3hZ/qo=\n" +
		"golang.org/x/text v0.21.0/go.mod h1:4IBbMaMmOPCJ8SecivzSH54+73PCFmPWxNTLm+vZkEQ=\n"
	goMod := "module example.com/svc\n\ngo 1.26\n\nrequire (\n\tgithub.com/google/uuid v1.6.0\n\tgolang.org/x/text v0.21.0\n)\n"
	mainGo := "package main\n\nimport \"fmt\"\n\nfunc main() {\n\tfmt.Println(\"hello v1\")\n}\n"
	return []lintfixCase{{
		// npm ci and a stale local node_modules: the reorder alone would let
		// COPY . . overwrite the installed tree, so the ignore entry must come
		// with it. A volatile ARG above the install is moved down as well.
		name: "npm",
		dockerfile: `FROM %[1]s
WORKDIR /app
ARG GIT_SHA
COPY . .
RUN npm ci
RUN npm run build && echo "$GIT_SHA" > dist/REVISION
CMD ["node", "dist/app.js"]
`,
		files: map[string]string{
			".dockerignore":                  dockerignoreSelf,
			"package.json":                   `{"name": "web", "version": "1.0.0", "scripts": {"build": "cat src/*.js"}, "dependencies": {"is-odd": "^3.0.1", "left-pad": "^1.3.0"}}` + "\n",
			"package-lock.json":              npmLock,
			"src/index.js":                   "const pad = require('left-pad');\nconsole.log(pad('v1', 8));\n",
			"src/util.js":                    "module.exports = (x) => x * 2;\n",
			"node_modules/left-pad/index.js": "// a stale local copy, not what the lockfile says\n",
		},
		buildArgs:    [2][]string{{"GIT_SHA=1111111"}, {"GIT_SHA=2222222"}},
		rules:        []string{"SourceCopiedBeforeDependencyInstall", "ContextLeaksIntoCopy", "VolatileArgBeforeRun"},
		ignored:      []string{"node_modules"},
		change:       [3]string{"src/index.js", "console.log(pad('v1', 8));", "console.log(pad('v2', 8));"},
		out:          "app/dist/app.js",
		origInstall:  "RUN npm ci",
		fixedInstall: "RUN npm ci",
	}, {
		// pip after WORKDIR: the source COPY moves down past WORKDIR. The
		// separated apt-get update is merged into the install.
		name: "pip",
		dockerfile: `FROM %[1]s
RUN apt-get update
RUN apt-get install -y libpq5
COPY . /app
WORKDIR /app
RUN pip install --no-cache-dir -r requirements.txt
CMD ["python", "app.py"]
`,
		files: map[string]string{
			".dockerignore":    dockerignoreSelf,
			"requirements.txt": "# web service\nflask==3.0.3\nrequests==2.32.3\n\npsycopg==3.2.1\n",
			"app.py":           "import flask\n\napp = flask.Flask(__name__)\nGREETING = 'hello v1'\n",
			"lib/db.py":        "import psycopg\n",
		},
		rules:        []string{"SourceCopiedBeforeDependencyInstall", "PackageIndexUpdateSeparated"},
		change:       [3]string{"app.py", "GREETING = 'hello v1'", "GREETING = 'hello v2'"},
		out:          "app/app.py",
		origInstall:  "RUN pip install --no-cache-dir -r requirements.txt",
		fixedInstall: "RUN pip install --no-cache-dir -r requirements.txt",
	}, {
		// The same with COPY --chown, as in the python images that run as
		// a non-root user: the flags are repeated on the manifest COPY.
		name: "pip-chown",
		dockerfile: `FROM %[1]s
COPY --chown=nobody:nogroup . /app
WORKDIR /app
RUN pip install -r requirements.txt
USER nobody
CMD ["python", "app.py"]
`,
		files: map[string]string{
			".dockerignore":    dockerignoreSelf,
			"requirements.txt": "flask==3.0.3\n",
			"app.py":           "import flask\nGREETING = 'hello v1'\n",
		},
		rules:        []string{"SourceCopiedBeforeDependencyInstall"},
		change:       [3]string{"app.py", "GREETING = 'hello v1'", "GREETING = 'hello v2'"},
		out:          "app/app.py",
		origInstall:  "RUN pip install -r requirements.txt",
		fixedInstall: "RUN pip install -r requirements.txt",
	}, {
		// A requirements file that includes others from requirements/: the
		// directory goes with the manifests.
		name: "pip-requirements-dir",
		dockerfile: `FROM %[1]s
WORKDIR /app
COPY . .
RUN pip install -r requirements.txt
CMD ["python", "app.py"]
`,
		files: map[string]string{
			".dockerignore":         dockerignoreSelf,
			"requirements.txt":      "-r requirements/base.txt\ngunicorn==22.0.0\n",
			"requirements/base.txt": "flask==3.0.3\nrequests==2.32.3\n",
			"requirements/dev.txt":  "-r base.txt\npytest==8.3.2\n",
			"app.py":                "import flask\nGREETING = 'hello v1'\n",
		},
		rules:        []string{"SourceCopiedBeforeDependencyInstall"},
		change:       [3]string{"app.py", "GREETING = 'hello v1'", "GREETING = 'hello v2'"},
		out:          "app/app.py",
		origInstall:  "RUN pip install -r requirements.txt",
		fixedInstall: "RUN pip install -r requirements.txt",
	}, {
		// go mod download after COPY . .: the download moves up.
		name: "go-mod-download",
		dockerfile: `FROM %[1]s
WORKDIR /src
COPY . .
RUN go mod download
RUN go build -o /usr/local/bin/svc .
CMD ["svc"]
`,
		files: map[string]string{
			".dockerignore": dockerignoreSelf,
			"go.mod":        goMod,
			"go.sum":        goSum,
			"main.go":       mainGo,
		},
		rules:        []string{"SourceCopiedBeforeDependencyInstall"},
		change:       [3]string{"main.go", "\tfmt.Println(\"hello v1\")", "\tfmt.Println(\"hello v2\")"},
		out:          "usr/local/bin/svc",
		origInstall:  "RUN go mod download",
		fixedInstall: "RUN go mod download",
	}, {
		// go build alone fetches the modules: the fix adds go mod download
		// before the sources. Multi-stage: only the binary is shipped.
		name: "go-build",
		dockerfile: `FROM %[1]s AS build
WORKDIR /src
COPY . .
RUN go build -o /out/svc .

FROM %[1]s
COPY --from=build /out/svc /usr/local/bin/svc
CMD ["svc"]
`,
		files: map[string]string{
			".dockerignore": dockerignoreSelf,
			"go.mod":        goMod,
			"go.sum":        goSum,
			"main.go":       mainGo,
		},
		rules:        []string{"SourceCopiedBeforeDependencyInstall"},
		change:       [3]string{"main.go", "\tfmt.Println(\"hello v1\")", "\tfmt.Println(\"hello v2\")"},
		out:          "usr/local/bin/svc",
		origInstall:  "RUN go build -o /out/svc .",
		fixedInstall: "RUN go mod download",
	}}
}

// TestLintFix builds naive Dockerfiles of several ecosystems before and
// after strata lint --fix: both give the same files, and after a one-line
// source change the fixed one reuses its dependency install from the cache
// where the original runs it again.
func TestLintFix(t *testing.T) {
	base := pushLintfixBase(t)
	for _, tc := range lintfixCases() {
		t.Run(tc.name, func(t *testing.T) {
			orig, fixed := t.TempDir(), t.TempDir()
			files := map[string]string{"Dockerfile": fmt.Sprintf(tc.dockerfile, base)}
			for p, c := range tc.files {
				files[p] = c
			}
			writeFiles(t, orig, files)
			writeFiles(t, fixed, files)

			after := lintFix(t, tc, orig, fixed)
			dockerfiles := fmt.Sprintf("original Dockerfile:\n%s\nfixed Dockerfile:\n%s", files["Dockerfile"], after)

			// The same inputs give the same files.
			o1 := buildLintfix(t, "original", orig, tc.buildArgs[0])
			f1 := buildLintfix(t, "fixed", fixed, tc.buildArgs[0])
			compareTars(t, "first build", o1.tar, f1.tar, dockerfiles)

			// One line of source changes.
			for _, dir := range []string{orig, fixed} {
				p := filepath.Join(dir, tc.change[0])
				dt, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(string(dt), tc.change[1]) {
					t.Fatalf("%s does not hold %q", p, tc.change[1])
				}
				if err := os.WriteFile(p, []byte(strings.Replace(string(dt), tc.change[1], tc.change[2], 1)), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			args := tc.buildArgs[1]
			if args == nil {
				args = tc.buildArgs[0]
			}
			o2 := buildLintfix(t, "original", orig, args)
			f2 := buildLintfix(t, "fixed", fixed, args)
			compareTars(t, "after the change", o2.tar, f2.tar, dockerfiles)
			for _, b := range []*lintfixBuild{o2, f2} {
				if got := tarFile(t, b.tar, tc.out); !strings.Contains(got, tc.change[2]) {
					t.Errorf("%s in %s does not hold the changed line %q:\n%s", tc.out, b.tar, tc.change[2], got)
				}
			}

			if ran, cached := stepState(t, o2.progress, tc.origInstall); !ran || cached {
				t.Errorf("original: after the source change %q should run again (ran %v, cached %v)", tc.origInstall, ran, cached)
			}
			if ran, cached := stepState(t, f2.progress, tc.fixedInstall); ran || !cached {
				t.Errorf("fixed: after the source change %q should come from the cache (ran %v, cached %v)", tc.fixedInstall, ran, cached)
			}
			t.Logf("steps after the change: original %+v, fixed %+v", o2.meta.Steps, f2.meta.Steps)
			if f2.meta.Steps.Cached <= o2.meta.Steps.Cached {
				t.Errorf("fixed build reused %d of %d steps, the original %d of %d: want more", f2.meta.Steps.Cached, f2.meta.Steps.Total, o2.meta.Steps.Cached, o2.meta.Steps.Total)
			}
		})
	}
}

// lintFix runs strata lint --fix on the Dockerfile in fixed and checks the
// rewrite: it changed, it is what the library's Fix gives for the original,
// it parses, the wanted fixes were applied, the install now comes before
// the source COPY and no SourceCopiedBeforeDependencyInstall is left.
func lintFix(t *testing.T, tc lintfixCase, orig, fixed string) []byte {
	t.Helper()
	df := filepath.Join(fixed, "Dockerfile")
	before, err := os.ReadFile(df)
	if err != nil {
		t.Fatal(err)
	}
	code, _, stderr := strata(t, "lint", "--fix", df)
	// 1: findings that have no fix (MissingDockerignore and the like) remain.
	if code != 0 && code != 1 {
		t.Fatalf("lint --fix: exit %d\n%s", code, stderr)
	}
	after, err := os.ReadFile(df)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(before, after) {
		t.Fatalf("lint --fix left the Dockerfile unchanged:\n%s\n%s", before, stderr)
	}
	t.Logf("fixed Dockerfile:\n%s", after)

	res, err := lint.LintFile(filepath.Join(orig, "Dockerfile"), lint.Options{ContextDir: orig})
	if err != nil {
		t.Fatal(err)
	}
	fx := res.Fix()
	if !bytes.Equal(fx.Dockerfile, after) {
		t.Errorf("the CLI wrote\n%s\nthe library's Fix gives\n%s", after, fx.Dockerfile)
	}
	applied := map[string]bool{}
	for _, f := range fx.Applied {
		applied[f.Rule] = true
	}
	for _, r := range tc.rules {
		if !applied[r] {
			t.Errorf("no %s fix applied (applied %v, skipped %v)", r, fx.Applied, fx.Skipped)
		}
	}
	if len(fx.Skipped) > 0 {
		t.Errorf("fixes skipped: %v", fx.Skipped)
	}
	ignore, _ := os.ReadFile(filepath.Join(fixed, ".dockerignore"))
	for _, ig := range tc.ignored {
		if !slices.Contains(strings.Split(string(ignore), "\n"), ig) {
			t.Errorf(".dockerignore lacks %q:\n%s", ig, ignore)
		}
	}

	again, err := lint.LintFile(df, lint.Options{ContextDir: fixed})
	if err != nil {
		t.Fatalf("the fixed Dockerfile does not lint: %v", err)
	}
	for _, f := range again.Findings {
		if f.Rule == "SourceCopiedBeforeDependencyInstall" || f.Rule == "ContextLeaksIntoCopy" {
			t.Errorf("still reported after the fix: %d: %s %s", f.Start.Line, f.Rule, f.Message)
		}
	}
	// A fix adds the manifest COPY; no step should come out twice.
	count := func(dt []byte) map[string]int {
		n := map[string]int{}
		for _, l := range strings.Split(string(dt), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				n[l]++
			}
		}
		return n
	}
	was := count(before)
	for l, n := range count(after) {
		if n > max(1, was[l]) {
			t.Errorf("the fixed Dockerfile has %q %d times (the original %d): fixes applied together repeat it", l, n, was[l])
		}
	}
	lines := strings.Split(string(after), "\n")
	install, source := slices.Index(lines, tc.fixedInstall), -1
	for i, l := range lines {
		if strings.HasPrefix(l, "COPY ") && strings.Contains(l, " . ") {
			source = i
		}
	}
	if install < 0 || source < 0 || install > source {
		t.Errorf("fixed Dockerfile: %q (line %d) should come before the source COPY (line %d)", tc.fixedInstall, install+1, source+1)
	}
	return after
}

type lintfixBuild struct {
	tar      string
	progress string
	meta     strataMeta
}

// buildLintfix builds the Dockerfile in dir to a tar export.
func buildLintfix(t *testing.T, which, dir string, buildArgs []string) *lintfixBuild {
	t.Helper()
	tmp := t.TempDir()
	b := &lintfixBuild{tar: filepath.Join(tmp, "image.tar")}
	meta := filepath.Join(tmp, "metadata.json")
	args := []string{"build", "--builder", env.Builder.Addr(), "--progress", "plain", "--metadata-file", meta,
		"--output", "type=tar,dest=" + b.tar}
	for _, a := range buildArgs {
		args = append(args, "--build-arg", a)
	}
	code, _, stderr := strata(t, append(args, dir)...)
	if code != 0 {
		df, _ := os.ReadFile(filepath.Join(dir, "Dockerfile"))
		t.Fatalf("the %s Dockerfile does not build (exit %d):\n%s\n%s", which, code, df, tail(stderr, 25))
	}
	b.progress = stderr
	b.meta = strataMetadata(t, readMetadata(t, meta))
	return b
}

// stepState reports whether the step ran or came from the cache.
func stepState(t *testing.T, progress, step string) (ran, cached bool) {
	t.Helper()
	id := vertexID(progress, step)
	if id == "" {
		t.Fatalf("no step %q in the progress:\n%s", step, progress)
	}
	return strings.Contains(progress, "\n"+id+" DONE"), strings.Contains(progress, "\n"+id+" CACHED")
}

// tarEntries describes each entry of a tar export: type, mode, owner, link
// target and content digest; times are left out.
func tarEntries(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return readTarEntries(t, path, f)
}

// readTarEntries is tarEntries of a tar stream named name.
func readTarEntries(t *testing.T, name string, r io.Reader) map[string]string {
	t.Helper()
	out := map[string]string{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		d := sha256.New()
		if _, err := io.Copy(d, tr); err != nil {
			t.Fatal(err)
		}
		out[strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")] = fmt.Sprintf("type %c mode %o owner %d:%d link %q sha256 %x",
			h.Typeflag, h.Mode, h.Uid, h.Gid, h.Linkname, d.Sum(nil))
	}
}

func tarFile(t *testing.T, path, file string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s: no %s (%v)", path, file, err)
		}
		if strings.TrimPrefix(h.Name, "./") == file {
			dt, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return string(dt)
		}
	}
}

func compareTars(t *testing.T, when, orig, fixed, dockerfiles string) {
	t.Helper()
	o, f := tarEntries(t, orig), tarEntries(t, fixed)
	var diffs []string
	for p, e := range o {
		switch g, ok := f[p]; {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("only in the original: %s (%s)", p, e))
		case g != e:
			diffs = append(diffs, fmt.Sprintf("%s: original %s, fixed %s", p, e, g))
		}
	}
	for p, e := range f {
		if _, ok := o[p]; !ok {
			diffs = append(diffs, fmt.Sprintf("only in the fixed: %s (%s)", p, e))
		}
	}
	slices.Sort(diffs)
	if len(diffs) > 0 {
		t.Errorf("%s: the original and the fixed Dockerfile give different files (%d entries against %d):\n%s\n%s", when, len(o), len(f), strings.Join(diffs, "\n"), dockerfiles)
	} else {
		t.Logf("%s: %d identical entries", when, len(o))
	}
}
