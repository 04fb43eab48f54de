package lint

import (
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// imageModel is the owner of each path an image gets from WORKDIR, USER
// and COPY steps, as BuildKit makes them: WORKDIR creates missing
// directories as the current USER; COPY creates a missing destination and
// its parents with its --chown owner (root without it) but leaves an
// existing destination directory as it is; the files and directories it
// copies take its owner. A COPY with one directory source copies the
// directory's contents into the destination, and so does one with several
// sources for each directory among them.
type imageModel struct {
	owner   map[string]string // path -> owner; directories end in "/"
	workdir string
	user    string
	// installs records, for each RUN, the files present in its working
	// directory, relative to it.
	installs map[string][]string
}

func modelImage(t *testing.T, dockerfile string, context []string) *imageModel {
	t.Helper()
	m := &imageModel{owner: map[string]string{"/": "root"}, workdir: "/", user: "root", installs: map[string][]string{}}
	for _, l := range strings.Split(dockerfile, "\n") {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "WORKDIR":
			m.workdir = m.abs(f[1])
			m.mkdirAll(m.workdir, m.user)
		case "USER":
			m.user = f[1]
		case "COPY":
			owner, args := "root", f[1:]
			for len(args) > 0 && strings.HasPrefix(args[0], "--") {
				if v, ok := strings.CutPrefix(args[0], "--chown="); ok {
					owner = v
				}
				args = args[1:]
			}
			m.copy(t, args[:len(args)-1], args[len(args)-1], owner, context)
		case "RUN":
			var have []string
			for p := range m.owner {
				if rel, ok := strings.CutPrefix(p, strings.TrimSuffix(m.workdir, "/")+"/"); ok && rel != "" && !strings.HasSuffix(p, "/") {
					have = append(have, rel)
				}
			}
			slices.Sort(have)
			m.installs[strings.Join(f[1:], " ")] = have
		}
	}
	return m
}

func (m *imageModel) abs(p string) string {
	if !strings.HasPrefix(p, "/") {
		p = m.workdir + "/" + p
	}
	return path.Clean(p)
}

func (m *imageModel) mkdirAll(dir, owner string) {
	if dir == "/" {
		return
	}
	m.mkdirAll(path.Dir(dir), owner)
	if _, ok := m.owner[dir+"/"]; !ok {
		m.owner[dir+"/"] = owner
	}
}

func (m *imageModel) copy(t *testing.T, srcs []string, dest, owner string, context []string) {
	t.Helper()
	root := m.abs(dest)
	if len(srcs) > 1 || strings.HasSuffix(dest, "/") {
		m.mkdirAll(root, owner)
	}
	for _, src := range srcs {
		src = path.Clean(src)
		var under []string
		for _, c := range context {
			if src == "." {
				under = append(under, c)
			} else if rel, ok := strings.CutPrefix(c, src+"/"); ok {
				under = append(under, rel)
			}
		}
		if len(under) == 0 { // a file
			if !slices.Contains(context, src) {
				t.Fatalf("COPY %s: not in the context", src)
			}
			target := root
			if _, isDir := m.owner[root+"/"]; isDir {
				target = root + "/" + path.Base(src)
			} else {
				m.mkdirAll(path.Dir(root), owner)
			}
			m.owner[target] = owner
			continue
		}
		// A directory: its contents go into the destination, created if
		// missing; an existing destination keeps its owner.
		m.mkdirAll(root, owner)
		for _, rel := range under {
			for d := path.Dir(rel); d != "."; d = path.Dir(d) {
				m.owner[root+"/"+d+"/"] = owner
			}
			m.owner[root+"/"+rel] = owner
		}
	}
}

// fixOf lints a Dockerfile against a context holding the given files and
// applies the fixes.
func fixOf(t *testing.T, dockerfile string, context []string) (*Fixed, string) {
	t.Helper()
	dir := t.TempDir()
	for _, f := range context {
		p := filepath.Join(dir, filepath.FromSlash(f))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	res, err := Lint("Dockerfile", []byte(dockerfile), Options{ContextDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	fx := res.Fix()
	if len(fx.Skipped) > 0 {
		t.Errorf("fixes skipped: %v", fx.Skipped)
	}
	n := 0
	for _, f := range res.Findings {
		if f.Rule == "SourceCopiedBeforeDependencyInstall" {
			n++
			if !slices.ContainsFunc(fx.Applied, func(a Finding) bool { return a.Rule == f.Rule && a.Start == f.Start }) {
				t.Errorf("finding on line %d not fixed: %s", f.Start.Line, f.Message)
			}
		}
	}
	if n == 0 {
		t.Fatalf("no SourceCopiedBeforeDependencyInstall finding:\n%s", dockerfile)
	}
	again, err := Lint("Dockerfile", fx.Dockerfile, Options{ContextDir: dir})
	if err != nil {
		t.Fatalf("the fixed Dockerfile does not lint: %v\n%s", err, fx.Dockerfile)
	}
	for _, f := range again.Findings {
		if f.Rule == "SourceCopiedBeforeDependencyInstall" {
			t.Errorf("after the fix: %d: %s", f.Start.Line, f.Message)
		}
	}
	return fx, string(fx.Dockerfile)
}

// checkSameImage compares the modelled images of the original and the fixed
// Dockerfile, and checks that the install of the fixed one sees the files
// it needs.
func checkSameImage(t *testing.T, orig, fixed string, context []string, install string, needs []string) {
	t.Helper()
	o, f := modelImage(t, orig, context), modelImage(t, fixed, context)
	for p, own := range o.owner {
		if f.owner[p] != own {
			t.Errorf("%s: owner %q in the original, %q after the fix", p, own, f.owner[p])
		}
	}
	for p := range f.owner {
		if _, ok := o.owner[p]; !ok {
			t.Errorf("%s: only after the fix", p)
		}
	}
	have, ok := f.installs[install]
	if !ok {
		t.Fatalf("no RUN %s after the fix", install)
	}
	for _, n := range needs {
		if !slices.Contains(have, n) {
			t.Errorf("RUN %s: %s is missing from the working directory (it holds %v)", install, n, have)
		}
	}
	if t.Failed() {
		t.Logf("original:\n%s\nfixed:\n%s", orig, fixed)
	}
}

// A source COPY with --chown moved below a WORKDIR: the manifests are
// copied before the WORKDIR, with the same flags, so the destination is
// created with the COPY's owner as in the original.
func TestFixKeepsDestinationOwner(t *testing.T) {
	context := []string{"requirements.txt", "app.py", "lib/db.py"}
	for _, tc := range []struct {
		name, dockerfile, manifests, install string
		needs                                []string
	}{
		{"workdir", "FROM base\nCOPY --chown=nobody:nogroup . /app\nWORKDIR /app\nRUN pip install -r requirements.txt\nUSER nobody\n",
			"COPY --chown=nobody:nogroup requirements.txt /app/", "pip install -r requirements.txt", []string{"requirements.txt"}},
		{"user and workdir", "FROM base\nCOPY --chown=app:app . /srv/app\nUSER app\nWORKDIR /srv/app\nRUN pip install -r requirements.txt\n",
			"COPY --chown=app:app requirements.txt /srv/app/", "pip install -r requirements.txt", []string{"requirements.txt"}},
		{"workdir inside", "FROM base\nCOPY --chown=app:app --chmod=755 . /app\nWORKDIR /app/lib\nRUN pip install -r ../requirements.txt\n",
			"COPY --chown=app:app --chmod=755 requirements.txt /app/", "pip install -r ../requirements.txt", nil},
		{"no chown", "FROM base\nCOPY . /app\nUSER app\nWORKDIR /app\nRUN pip install -r requirements.txt\n",
			"COPY requirements.txt /app/", "pip install -r requirements.txt", []string{"requirements.txt"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, fixed := fixOf(t, tc.dockerfile, context)
			// The manifest COPY takes the place of the source COPY.
			if l := strings.Split(fixed, "\n"); l[1] != tc.manifests {
				t.Errorf("line 2 is %q, want %q:\n%s", l[1], tc.manifests, fixed)
			}
			checkSameImage(t, tc.dockerfile, fixed, context, tc.install, tc.needs)
		})
	}
}

// Manifest directories keep their path: each gets its own COPY, since a
// COPY with several sources copies the contents of the directories.
func TestFixCopiesManifestDirectories(t *testing.T) {
	for _, tc := range []struct {
		name, install string
		context       []string
	}{
		{"pip", "pip install -r requirements.txt", []string{"requirements.txt", "requirements/base.txt", "requirements/dev.txt"}},
		{"pip only a directory", "pip install -r requirements/base.txt", []string{"requirements/base.txt", "requirements/prod.txt"}},
		{"yarn", "yarn install --immutable", []string{"package.json", "yarn.lock", ".yarnrc.yml", ".yarn/releases/yarn-4.5.0.cjs", ".yarn/plugins/plugin.cjs"}},
		{"cargo", "cargo fetch", []string{"Cargo.toml", "Cargo.lock", ".cargo/config.toml"}},
		{"bundler", "bundle install", []string{"Gemfile", "Gemfile.lock", ".bundle/config"}},
		{"mix", "mix deps.get", []string{"mix.exs", "mix.lock", "config/config.exs", "config/prod.exs"}},
		{"maven", "mvn -B dependency:go-offline", []string{"pom.xml", "mvnw", ".mvn/wrapper/maven-wrapper.properties"}},
		{"gradle", "gradle dependencies --no-daemon", []string{"build.gradle", "settings.gradle", "gradle/libs.versions.toml", "gradle/wrapper/gradle-wrapper.properties"}},
	} {
		for _, layout := range []struct{ name, dockerfile string }{
			{"workdir first", "FROM base\nWORKDIR /app\nCOPY . .\nRUN " + tc.install + "\n"},
			{"workdir after", "FROM base\nCOPY --chown=app:app . /app\nWORKDIR /app\nRUN " + tc.install + "\n"},
		} {
			t.Run(tc.name+"/"+layout.name, func(t *testing.T) {
				context := append([]string{"src/main.txt", "README.md"}, tc.context...)
				_, fixed := fixOf(t, layout.dockerfile, context)
				var dirs []string
				for _, c := range tc.context {
					if d, _, ok := strings.Cut(c, "/"); ok && !slices.Contains(dirs, d) {
						dirs = append(dirs, d)
					}
				}
				for _, l := range strings.Split(fixed, "\n") {
					f := strings.Fields(l)
					if len(f) < 3 || f[0] != "COPY" {
						continue
					}
					srcs := slices.DeleteFunc(f[1:len(f)-1], func(s string) bool { return strings.HasPrefix(s, "--") })
					for _, d := range dirs {
						if slices.Contains(srcs, d) && (len(srcs) > 1 || path.Base(path.Clean(f[len(f)-1])) != d) {
							t.Errorf("%q does not keep the directory %s:\n%s", l, d, fixed)
						}
					}
				}
				checkSameImage(t, layout.dockerfile, fixed, context, tc.install, tc.context)
			})
		}
	}
}

// Fixes of several findings on one source COPY are merged: the manifests
// are copied and the dependencies installed once.
func TestFixMergesFindingsOnOneCopy(t *testing.T) {
	goContext := []string{"go.mod", "go.sum", "main.go"}
	for _, tc := range []struct {
		name, dockerfile, want string
		context                []string
		findings               int
	}{{
		// The go build after the download is not reported: moving the
		// download fixes both.
		"go mod download and go build",
		"FROM golang\nWORKDIR /src\nCOPY . .\nRUN go mod download\nRUN go build -o /usr/local/bin/svc .\n",
		"FROM golang\nWORKDIR /src\nCOPY go.mod go.sum ./\nRUN go mod download\nCOPY . .\nRUN go build -o /usr/local/bin/svc .\n",
		goContext, 1,
	}, {
		"go mod download and go build after WORKDIR",
		"FROM golang\nCOPY . /src\nWORKDIR /src\nRUN go mod download\nRUN go build -o /usr/local/bin/svc .\n",
		"FROM golang\nCOPY go.mod go.sum /src/\nWORKDIR /src\nRUN go mod download\nCOPY . /src\nRUN go build -o /usr/local/bin/svc .\n",
		goContext, 1,
	}, {
		// No WORKDIR: the download runs in the destination, as the build does.
		"go build with cd into an absolute destination",
		"FROM golang:1.22\nCOPY . /src/app\nRUN cd /src/app && go build -o /app .\n",
		"FROM golang:1.22\nCOPY go.mod go.sum /src/app/\nRUN cd /src/app && go mod download\nCOPY . /src/app\nRUN cd /src/app && go build -o /app .\n",
		goContext, 1,
	}, {
		"two ecosystems in one RUN",
		"FROM base\nWORKDIR /app\nCOPY . .\nRUN pip install -r requirements.txt && npm ci\nRUN npm run build\n",
		"FROM base\nWORKDIR /app\nCOPY package-lock.json package.json requirements.txt ./\nRUN pip install -r requirements.txt && npm ci\nCOPY . .\nRUN npm run build\n",
		[]string{"requirements.txt", "package.json", "package-lock.json", "src/index.js"}, 2,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			fx, fixed := fixOf(t, tc.dockerfile, tc.context)
			if fixed != tc.want {
				t.Errorf("fixed:\n%s\nwant:\n%s", fixed, tc.want)
			}
			if len(fx.Applied) != tc.findings {
				t.Errorf("applied %v: want %d findings", fx.Applied, tc.findings)
			}
		})
	}
}

// Comments above the source COPY stay with it: the manifests and the
// install go above them, the manifests first, so the install finds them.
func TestFixKeepsCommentsWithTheirSteps(t *testing.T) {
	context := []string{"go.mod", "go.sum", "main.go"}
	for _, tc := range []struct{ name, dockerfile, want string }{
		{"install moved up", "FROM golang:1.26\nWORKDIR /build\n\n# Copy source code\nCOPY . .\n\n# Download dependencies\nRUN go mod download\n\nRUN go build -o /app .\n",
			"FROM golang:1.26\nWORKDIR /build\n\nCOPY go.mod go.sum ./\n# Download dependencies\nRUN go mod download\n# Copy source code\nCOPY . .\n\n\nRUN go build -o /app .\n"},
		{"go mod download added", "FROM golang:1.26\nWORKDIR /build\n# Copy source code\nCOPY . .\nRUN go build -o /app .\n",
			"FROM golang:1.26\nWORKDIR /build\nCOPY go.mod go.sum ./\nRUN go mod download\n# Copy source code\nCOPY . .\nRUN go build -o /app .\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, fixed := fixOf(t, tc.dockerfile, context)
			if fixed != tc.want {
				t.Errorf("fixed:\n%s\nwant:\n%s", fixed, tc.want)
			}
		})
	}
}
