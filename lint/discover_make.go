package lint

import (
	"fmt"
	"path/filepath"
	"strings"
)

// isMakefileName reports whether a file is a Makefile make reads itself or
// one it includes by convention (*.mk).
func isMakefileName(n string) bool {
	return n == "Makefile" || n == "makefile" || n == "GNUmakefile" || strings.HasSuffix(n, ".mk")
}

// makefileBuilds reads the docker build commands of a Makefile's recipes.
// make runs a recipe in the Makefile's folder; a cd earlier in the same
// recipe line moves it. Paths that hold make or shell variables are left
// out, as resolve does.
func makefileBuilds(root, file string, dt []byte) []namedBuild {
	name := relTo(root, file)
	var out []namedBuild
	for _, line := range recipeLines(string(dt)) {
		if !strings.Contains(line, "build") {
			continue
		}
		for _, b := range scriptBuilds(line, filepath.Dir(file)) {
			b.why = fmt.Sprintf("named by %s, %s", name, b.why)
			out = append(out, b)
		}
	}
	return out
}

// recipeLines returns the recipe lines of a Makefile (those that begin
// with a tab), continuation lines joined, without the @, - and + prefixes.
func recipeLines(src string) []string {
	var out []string
	var cur strings.Builder
	inRecipe := false
	for _, l := range strings.Split(strings.ReplaceAll(src, "\r\n", "\n"), "\n") {
		if cur.Len() == 0 {
			inRecipe = strings.HasPrefix(l, "\t")
			if !inRecipe {
				continue
			}
			l = strings.TrimLeft(strings.TrimSpace(l), "@-+")
		} else {
			l = strings.TrimSpace(l)
		}
		if strings.HasSuffix(l, "\\") {
			cur.WriteString(strings.TrimSuffix(l, "\\") + " ")
			continue
		}
		cur.WriteString(l)
		out = append(out, cur.String())
		cur.Reset()
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

// scriptBuilds reads the docker build commands of a shell script run in
// base: a cd before one moves it (cd DIR && docker build .), as far as the
// cd names a folder without variables. why is the command's first words.
func scriptBuilds(src, base string) []namedBuild {
	var out []namedBuild
	for _, c := range ParseScript(src, 1).Commands {
		if c.Name() == "cd" && !c.InSubst {
			// A cd that cannot be followed leaves the folder unknown.
			next := ""
			if len(c.Args) == 2 && base != "" {
				if dir, ok := resolve(base, c.Args[1]); ok {
					next = dir
				}
			}
			base = next
			continue
		}
		if base == "" {
			continue
		}
		if b, ok := dockerBuild(c, base); ok {
			b.why = strings.Join(c.Args[:min(len(c.Args), 3)], " ")
			out = append(out, b)
		}
	}
	return out
}
