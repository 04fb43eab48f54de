package lint

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/strata-build/strata/errs"
)

// Stdin names standard input among the Dockerfiles to lint.
const Stdin = "-"

// maxStdin bounds a Dockerfile read from standard input.
const maxStdin = 64 << 20

// FindDockerfiles expands paths into the Dockerfiles to lint: a file is
// itself, Stdin stays as it is, and a directory gives every Dockerfile
// below it (Dockerfile, Dockerfile.*, Dockerfile-*, *.Dockerfile and
// Containerfile, in any case; templates such as Dockerfile.j2 left out),
// outside node_modules, vendor, testdata and the hidden folders of tools
// (.git, caches, virtual environments: toolDirs). No paths means the
// working directory. A path that does not exist, or a directory with no
// Dockerfile, is an input error.
func FindDockerfiles(paths ...string) ([]string, error) {
	if len(paths) == 0 {
		paths = []string{"."}
	}
	var files []string
	for _, p := range paths {
		if p == Stdin {
			files = append(files, p)
			continue
		}
		fi, err := os.Stat(p)
		if err != nil {
			return nil, errs.Inputf("%s: %v", p, errors.Unwrap(err))
		}
		if !fi.IsDir() {
			files = append(files, p)
			continue
		}
		found, err := dockerfilesIn(p)
		if err != nil {
			return nil, errs.Inputf("%s: %v", p, err)
		}
		if len(found) == 0 {
			return nil, errs.Inputf("no Dockerfile in %s (none named Dockerfile, Dockerfile.*, *.Dockerfile or Containerfile outside node_modules, vendor and testdata); name the file to lint: strata lint PATH/TO/FILE", p)
		}
		files = append(files, found...)
	}
	return files, nil
}

// dockerfilesIn walks dir for Dockerfiles, in lexical order; a symlink to
// a Dockerfile found already is the same Dockerfile.
func dockerfilesIn(dir string) ([]string, error) {
	var files []string
	seen := map[string]bool{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != dir && (toolDirs[d.Name()] || d.Name() == "node_modules" || d.Name() == "vendor" || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !isDockerfileName(d.Name()) {
			return nil
		}
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			real = p // a dangling link: reported when it is read
		}
		if real, err = filepath.Abs(real); err == nil && !seen[real] {
			seen[real] = true
			files = append(files, p)
		}
		return nil
	})
	return files, err
}

// notDockerfile are the suffixes of files named like Dockerfiles that are
// something else: templates rendered into one (Dockerfile.j2), backups,
// documents and scripts about one.
var notDockerfile = []string{".dockerignore", ".j2", ".jinja", ".jinja2", ".tmpl", ".tpl", ".template", ".in", ".erb", ".mustache",
	".hbs", ".ejs", ".m4", ".orig", ".bak", ".rej", ".swp", ".md", ".txt", ".sh", ".yml", ".yaml", ".json",
	".go", ".js", ".ts", ".py", ".rs", ".java", ".rb", ".php", ".c", ".h", ".cc", ".cpp", ".cs", ".kt", ".html", ".css", ".xml", ".toml"}

// isDockerfileName reports the names under which Dockerfiles are kept, in
// any case: Dockerfile, Dockerfile.NAME, Dockerfile-NAME, NAME.Dockerfile,
// Containerfile (not their ignore files, nor templates of them).
func isDockerfileName(n string) bool {
	n = strings.ToLower(n)
	for _, suf := range notDockerfile {
		if strings.HasSuffix(n, suf) {
			return false
		}
	}
	switch {
	case n == "dockerfile", n == "containerfile":
		return true
	case strings.HasPrefix(n, "dockerfile.") || strings.HasPrefix(n, "dockerfile-") || strings.HasPrefix(n, "dockerfile_"):
		return true
	case strings.HasPrefix(n, "containerfile."):
		return true
	}
	return strings.HasSuffix(n, ".dockerfile") || strings.HasSuffix(n, ".containerfile")
}

// ReadDockerfile reads the Dockerfile at file, or from stdin when file is
// Stdin. A file that cannot be read is a *ParseError, as one that does not
// parse.
func ReadDockerfile(file string, stdin io.Reader) ([]byte, error) {
	var dt []byte
	var err error
	if file == Stdin {
		dt, err = io.ReadAll(io.LimitReader(stdin, maxStdin))
	} else {
		dt, err = os.ReadFile(file)
	}
	if err != nil {
		return nil, &ParseError{File: file, Err: err}
	}
	return dt, nil
}
