package lint

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/strata-build/strata/errs"
)

func TestFindDockerfiles(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"Dockerfile":                      "FROM a\n",
		"Dockerfile.dockerignore":         "x\n",
		"Dockerfile.dev":                  "FROM a\n",
		"Containerfile":                   "FROM a\n",
		"api/api.Dockerfile":              "FROM a\n",
		"api/tool.dockerfile":             "FROM a\n",
		"api/app.Dockerfile.dockerignore": "x\n",
		"api/notes.txt":                   "",
		".github/Dockerfile":              "FROM a\n",
		".devcontainer/Dockerfile":        "FROM a\n",
		".venv/lib/Dockerfile":            "FROM a\n",
		".git/Dockerfile":                 "FROM a\n",
		"node_modules/x/Dockerfile":       "FROM a\n",
		"vendor/y/Dockerfile":             "FROM a\n",
		"testdata/case/Dockerfile":        "FROM a\n",
		"empty/README":                    "",
		"docker/dockerfile":               "FROM a\n",
		"docker/Dockerfile-tilt":          "FROM a\n",
		"docker/Dockerfile.j2":            "{% if x %}\nFROM a\n{% endif %}\n",
		"docker/Dockerfile.debian":        "FROM a\n",
	})
	// A symlink to a Dockerfile found already is that Dockerfile (found
	// once, under the name met first in lexical order).
	if err := os.Symlink("Dockerfile.debian", filepath.Join(dir, "docker", "Dockerfile.link")); err != nil {
		t.Fatal(err)
	}
	in := func(names ...string) []string {
		var out []string
		for _, n := range names {
			out = append(out, filepath.Join(dir, filepath.FromSlash(n)))
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		paths []string
		want  []string
		err   string
	}{
		{"a folder, walked in order", in("."), in(".devcontainer/Dockerfile", ".github/Dockerfile", "Containerfile", "Dockerfile", "Dockerfile.dev", "api/api.Dockerfile", "api/tool.dockerfile",
			"docker/Dockerfile-tilt", "docker/Dockerfile.debian", "docker/dockerfile"), ""},
		{"a file is itself, whatever its name", in("api/notes.txt"), in("api/notes.txt"), ""},
		{"standard input", []string{Stdin, dir + "/api"}, append([]string{Stdin}, in("api/api.Dockerfile", "api/tool.dockerfile")...), ""},
		{"a skipped folder named itself", in("testdata"), in("testdata/case/Dockerfile"), ""},
		{"no Dockerfile", in("empty"), nil, "no Dockerfile in " + filepath.Join(dir, "empty") + " (none named Dockerfile, Dockerfile.*, *.Dockerfile or Containerfile outside node_modules, vendor and testdata); name the file to lint: strata lint PATH/TO/FILE"},
		{"missing", in("nope"), nil, filepath.Join(dir, "nope") + ": no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FindDockerfiles(tc.paths...)
			if tc.err != "" {
				if !errors.Is(err, errs.ErrInput) || !strings.HasSuffix(err.Error(), tc.err) {
					t.Errorf("FindDockerfiles = %v, %v; want an input error ending %q", got, err, tc.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("FindDockerfiles = %q, %v\nwant %q", got, err, tc.want)
			}
		})
	}
	t.Chdir(dir)
	if got, err := FindDockerfiles(); err != nil || len(got) != 10 || got[0] != ".devcontainer/Dockerfile" {
		t.Errorf("no paths: %q, %v; want the working directory's ten", got, err)
	}
}

func TestReadDockerfile(t *testing.T) {
	dir := writeTree(t, map[string]string{"Dockerfile": "FROM a\n"})
	if dt, err := ReadDockerfile(filepath.Join(dir, "Dockerfile"), nil); err != nil || string(dt) != "FROM a\n" {
		t.Errorf("file: %q, %v", dt, err)
	}
	if dt, err := ReadDockerfile(Stdin, strings.NewReader("FROM b\n")); err != nil || string(dt) != "FROM b\n" {
		t.Errorf("stdin: %q, %v", dt, err)
	}
	var pe *ParseError
	if _, err := ReadDockerfile(filepath.Join(dir, "nope"), nil); !errors.As(err, &pe) || !errors.Is(err, errs.ErrInput) {
		t.Errorf("missing file: %v, want a *ParseError", err)
	}
}
