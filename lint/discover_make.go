package lint

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
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
	vars := makeVars(string(dt))
	var out []namedBuild
	for _, line := range recipeLines(string(dt)) {
		line = expandMake(line, vars)
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

// makeVar is a variable assignment of a Makefile: NAME := value (=, ?=,
// ::=, and += to append), optionally exported.
var makeVar = regexp.MustCompile(`^(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*(\+=|\?=|::?=|=)\s*(.*)$`)

// makeVars reads a Makefile's variable assignments outside recipes (a
// conditional's may be indented with a tab). Where a conditional assigns
// one twice, the first assignment stands (both branches usually name the
// same command).
func makeVars(src string) map[string]string {
	vars := map[string]string{}
	for _, l := range makeLines(src) {
		if l.recipe {
			continue
		}
		m := makeVar.FindStringSubmatch(l.text)
		if m == nil {
			continue
		}
		name, op, val := m[1], m[2], strings.TrimSpace(m[3])
		switch prev, ok := vars[name]; {
		case op == "+=" && ok:
			vars[name] = prev + " " + val
		case !ok:
			vars[name] = val
		}
	}
	return vars
}

// expandMake replaces the variables of vars in a recipe line ($(NAME) and
// ${NAME}, a few levels deep) and make's $$ with the shell's $; others
// stay as they are.
func expandMake(line string, vars map[string]string) string {
	for range 4 {
		next := makeRef.ReplaceAllStringFunc(line, func(ref string) string {
			if v, ok := vars[ref[2:len(ref)-1]]; ok {
				return v
			}
			return ref
		})
		if next == line {
			break
		}
		line = next
	}
	return strings.ReplaceAll(line, "$$", "$")
}

var makeRef = regexp.MustCompile(`\$\([A-Za-z_][A-Za-z0-9_.-]*\)|\$\{[A-Za-z_][A-Za-z0-9_.-]*\}`)

// recipeLines returns the recipe lines of a Makefile, continuation lines
// joined, without the @, - and + prefixes.
func recipeLines(src string) []string {
	var out []string
	for _, l := range makeLines(src) {
		if l.recipe {
			out = append(out, strings.TrimLeft(l.text, "@-+"))
		}
	}
	return out
}

// makeLine is one logical line of a Makefile, trimmed, continuation lines
// joined; recipe says it is a line of a rule's recipe.
type makeLine struct {
	text   string
	recipe bool
}

// makeLines splits a Makefile into its logical lines. As make reads it, a
// line that begins with a tab is a recipe line only after a rule's target
// line; a variable assignment ends the rule, conditionals, comments and
// blank lines do not.
func makeLines(src string) []makeLine {
	var out []makeLine
	var cur strings.Builder
	inRule, recipe, inDefine := false, false, false
	for _, l := range strings.Split(strings.ReplaceAll(src, "\r\n", "\n"), "\n") {
		// The body of define ... endef is a variable's value, not rules.
		if first, _, _ := strings.Cut(strings.TrimSpace(l), " "); cur.Len() == 0 && (inDefine || first == "define") {
			inDefine = first != "endef"
			inRule = false
			continue
		}
		if cur.Len() == 0 {
			recipe = inRule && strings.HasPrefix(l, "\t")
		}
		l = strings.TrimSpace(l)
		if strings.HasSuffix(l, "\\") {
			cur.WriteString(strings.TrimSpace(strings.TrimSuffix(l, "\\")) + " ")
			continue
		}
		cur.WriteString(l)
		text := cur.String()
		cur.Reset()
		if !recipe {
			switch first, _, _ := strings.Cut(text, " "); {
			case text == "" || strings.HasPrefix(text, "#"):
			case makeConditional[first]:
			case makeVar.MatchString(text), first == "include", first == "-include":
				inRule = false
			case strings.Contains(text, ":"):
				inRule = true
			}
		}
		out = append(out, makeLine{text, recipe})
	}
	if cur.Len() > 0 {
		out = append(out, makeLine{cur.String(), recipe})
	}
	return out
}

// makeConditional holds the words that open, turn and close a Makefile's
// conditional.
var makeConditional = map[string]bool{"ifeq": true, "ifneq": true, "ifdef": true, "ifndef": true, "else": true, "endif": true}

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
			// The command's first words, up to one with an expansion, a
			// quote or a workflow expression (--build-arg="BASE=${{ matrix.base }}").
			n := min(len(c.Args), 3)
			if i := slices.IndexFunc(c.Args[:n], func(a string) bool { return strings.ContainsAny(a, "$\"'{}") || strings.Contains(a, exprVar) }); i >= 2 {
				n = i
			}
			b.why = strings.Join(c.Args[:n], " ")
			out = append(out, b)
		}
	}
	return out
}
