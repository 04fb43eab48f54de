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
// below it (Dockerfile, Dockerfile.*, *.Dockerfile, *.dockerfile and
// Containerfile), outside hidden, node_modules, vendor and testdata
// folders. No paths means the working directory. A path that does not
// exist, or a directory with no Dockerfile, is an input error.
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
			return nil, errs.Inputf("no Dockerfile in %s", p)
		}
		files = append(files, found...)
	}
	return files, nil
}

// dockerfilesIn walks dir for Dockerfiles, in lexical order.
func dockerfilesIn(dir string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != dir && (strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules" || d.Name() == "vendor" || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if isDockerfileName(d.Name()) {
			files = append(files, p)
		}
		return nil
	})
	return files, err
}

// isDockerfileName reports the names under which Dockerfiles are kept
// (not their ignore files, Dockerfile.dockerignore).
func isDockerfileName(n string) bool {
	if strings.HasSuffix(n, ".dockerignore") {
		return false
	}
	return n == "Dockerfile" || n == "Containerfile" || strings.HasPrefix(n, "Dockerfile.") || strings.HasSuffix(n, ".Dockerfile") || strings.HasSuffix(n, ".dockerfile")
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
