package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/strata-build/strata/buildcontext"
)

// listDockerfile copies the whole context into a scratch stage and lists,
// inside a RUN step, every non-directory that arrived.
const listDockerfile = `FROM %s AS list
COPY . /ctx
RUN cd /ctx && find . ! -type d | sed 's|^\./||' | sort > /files.txt
FROM scratch
COPY --from=list /files.txt /
`

var trickyContext = map[string]string{
	"main.go":                      "package main\n",
	"go.mod":                       "module x\n",
	".git/HEAD":                    "ref: refs/heads/main\n",
	".git/objects/ab/cdef":         "x",
	"node_modules/left-pad/a.js":   "x",
	"node_modules/keep/README.md":  "x",
	"docs/a.md":                    "x",
	"docs/keep.md":                 "x",
	"docs/sub/deep.md":             "x",
	"build/out.o":                  "x",
	"src/build/gen.go":             "x",
	"src/app.log":                  "x",
	"src/nested/x/app.log":         "x",
	"src/important.log":            "x",
	"tmp/cache/x":                  "x",
	"tmp/keep/y":                   "x",
	"secret.env":                   "x",
	"//odd":                        "x",
	"notes.txt":                    "x",
	"Dockerfile.dockerignore.note": "x",
}

const trickyIgnore = `# comment line
.git
node_modules
!node_modules/keep
docs/*
!docs/keep.md
/build
**/*.log
!src/important.log
tmp
!tmp/keep
./secret.env
// a line starting with // is a pattern, not a comment
`

func TestDockerignoreMatchesBuildKit(t *testing.T) {
	cases := []struct {
		name       string
		dockerfile string            // relative to the context
		ignores    map[string]string // ignore files to write
		want       []string          // must arrive
		wantNot    []string          // must not arrive
	}{
		{
			name:       "dockerignore",
			dockerfile: "Dockerfile",
			ignores:    map[string]string{".dockerignore": trickyIgnore},
			want:       []string{"main.go", "node_modules/keep/README.md", "docs/keep.md", "src/build/gen.go", "src/important.log", "tmp/keep/y", "Dockerfile", ".dockerignore"},
			wantNot:    []string{".git/HEAD", "node_modules/left-pad/a.js", "docs/a.md", "docs/sub/deep.md", "build/out.o", "src/app.log", "src/nested/x/app.log", "tmp/cache/x", "secret.env"},
		},
		{
			name:       "dockerfile-specific ignore file wins",
			dockerfile: "app.Dockerfile",
			ignores: map[string]string{
				".dockerignore":               "*\n",
				"app.Dockerfile.dockerignore": "*\n!main.go\n!go.mod\n!docs/\ndocs/sub\n",
			},
			want:    []string{"main.go", "go.mod", "docs/a.md", "docs/keep.md"},
			wantNot: []string{"docs/sub/deep.md", ".git/HEAD", "notes.txt", "app.Dockerfile", ".dockerignore"},
		},
		{
			name:       "allowlist with re-included directory",
			dockerfile: "Dockerfile",
			ignores:    map[string]string{".dockerignore": "*\n!src\nsrc/**/*.log\n!src/important.log\n"},
			want:       []string{"src/build/gen.go", "src/important.log"},
			wantNot:    []string{"src/app.log", "src/nested/x/app.log", "main.go", "Dockerfile"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, trickyContext)
			writeFiles(t, dir, tc.ignores)
			writeFiles(t, dir, map[string]string{tc.dockerfile: fmt.Sprintf(listDockerfile, env.Busybox)})

			out := t.TempDir()
			code, _, stderr := strata(t, "build", "--builder", env.Builder.Addr(), "--progress", "plain",
				"-f", filepath.Join(dir, tc.dockerfile), "--output", "type=local,dest="+out, dir)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, tail(stderr, 20))
			}
			dt, err := os.ReadFile(filepath.Join(out, "files.txt"))
			if err != nil {
				t.Fatal(err)
			}
			arrived := strings.Fields(string(dt))

			c, err := buildcontext.Open(dir, filepath.Join(dir, tc.dockerfile))
			if err != nil {
				t.Fatal(err)
			}
			walked, err := c.Files()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(arrived, walked) {
				t.Errorf("BuildKit received:\n  %s\nstrata's walker says:\n  %s", strings.Join(arrived, "\n  "), strings.Join(walked, "\n  "))
			}
			for _, f := range tc.want {
				if !slices.Contains(arrived, f) {
					t.Errorf("%s did not arrive", f)
				}
			}
			for _, f := range tc.wantNot {
				if slices.Contains(arrived, f) {
					t.Errorf("%s arrived, but is ignored", f)
				}
			}
		})
	}
}
