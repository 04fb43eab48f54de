package lint

import (
	"path"
	"strings"

	"mvdan.cc/sh/v3/syntax"
)

// Script is a RUN body parsed as shell.
type Script struct {
	Commands []*ShellCommand
	Vars     map[string]bool // variables the body expands
	// RandomAssigned reports a bare assignment of $RANDOM to a variable.
	RandomAssigned bool
	Err            error // the body did not parse as shell; Commands is a rough split
	parser         *syntax.Parser
}

// ShellCommand is one simple command of a RUN body.
type ShellCommand struct {
	Args    []string // words with quotes removed; expansions kept as $NAME or $(...)
	Line    int      // line in the Dockerfile
	PipedTo string   // name of the command this one's output is piped into
	InSubst bool     // inside $(...) or backquotes
	Writes  bool     // stdout is redirected to a file
	// Outer is, for a command inside $(...), the command whose words hold
	// the substitution; nil when an assignment or a compound command does.
	Outer *ShellCommand
}

// Name is the command's base name ("apt-get" for /usr/bin/apt-get).
func (c *ShellCommand) Name() string {
	if len(c.Args) == 0 {
		return ""
	}
	return path.Base(c.Args[0])
}

// Ran is the file the command runs: its first word, or the script sh or
// bash is given (sh ./build.sh); "" for no words.
func (c *ShellCommand) Ran() string {
	switch {
	case len(c.Args) == 0:
		return ""
	case (c.Name() == "sh" || c.Name() == "bash") && len(c.Args) > 1:
		return c.Args[1]
	}
	return c.Args[0]
}

// valueFlags are, per tool, the flags that take the next word as their
// value, so that value is not read as a subcommand or a name.
var valueFlags = map[string][]string{
	"npm":      {"--prefix", "-C", "--registry", "--cache", "--loglevel", "-w", "--workspace", "--omit", "--include", "--userconfig"},
	"yarn":     {"--network-timeout", "--cwd", "--modules-folder", "--cache-folder", "--mutex", "--registry", "--network-concurrency", "--global-folder", "--link-folder", "--mode"},
	"pnpm":     {"--filter", "-F", "--dir", "-C", "--store-dir", "--registry", "--reporter", "--loglevel", "--config.dedupe-peer-dependents"},
	"bun":      {"--cwd", "--registry", "--backend", "--cache-dir"},
	"go":       {"-C", "-o", "-tags", "-ldflags", "-gcflags", "-p", "-mod", "-modfile", "-pkgdir", "-toolexec", "-overlay", "-asmflags", "-exec"},
	"cargo":    {"-p", "--package", "--target", "--bin", "--features", "-F", "-j", "--jobs", "--manifest-path", "--profile", "--target-dir", "-Z", "--config", "--color", "--root"},
	"mvn":      {"-pl", "--projects", "-f", "--file", "-s", "--settings", "-gs", "--global-settings", "-P", "--activate-profiles", "-T", "--threads", "-rf", "--resume-from", "-l", "--log-file", "-t", "--toolchains", "-b", "--builder"},
	"gradle":   {"-p", "--project-dir", "-x", "--exclude-task", "-b", "--build-file", "-c", "--settings-file", "-g", "--gradle-user-home", "-I", "--init-script", "--max-workers", "--console", "--warning-mode"},
	"dotnet":   {"-c", "--configuration", "-o", "--output", "-r", "--runtime", "-f", "--framework", "-s", "--source", "-a", "--arch", "--os", "-v", "--verbosity", "--packages"},
	"pip":      {"-i", "--index-url", "--extra-index-url", "-c", "--constraint", "-t", "--target", "--prefix", "--root", "-f", "--find-links", "--trusted-host", "--cache-dir", "--python", "-C", "--config-settings", "--platform", "--python-version", "--only-binary", "--no-binary", "--progress-bar", "--timeout", "--retries"},
	"bundle":   {"--jobs", "-j", "--path", "--without", "--with", "--gemfile", "--retry", "--binstubs"},
	"composer": {"-d", "--working-dir", "--prefer-install"},
	"uv":       {"--python", "-p", "--index-url", "--extra-index-url", "--directory", "--project", "--group", "--extra", "--package", "--cache-dir", "--only-group", "--no-group"},
	"poetry":   {"--with", "--without", "--only", "-E", "--extras", "-C", "--directory", "-P", "--project"},
	"make":     {"-C", "--directory", "-f", "--file", "--makefile", "-j", "--jobs", "-l", "--load-average", "-I", "--include-dir", "-o", "--old-file", "-W", "--what-if"},
}

// tool is the name under which valueFlags knows a command (mvnw is mvn).
func (c *ShellCommand) tool() string {
	n := c.Name()
	switch {
	case n == "mvnw" || n == "mvnw.cmd":
		return "mvn"
	case n == "gradlew" || n == "gradlew.bat":
		return "gradle"
	case strings.HasPrefix(n, "pip"):
		return "pip"
	case n == "gmake":
		return "make"
	}
	return n
}

// words returns the arguments after the name, each marked as a flag (or a
// flag's value) or not.
func (c *ShellCommand) words() (words []string, flag []bool) {
	if len(c.Args) < 2 {
		return nil, nil
	}
	vf := valueFlags[c.tool()]
	words = c.Args[1:]
	flag = make([]bool, len(words))
	for i := 0; i < len(words); i++ {
		a := words[i]
		if !strings.HasPrefix(a, "-") {
			continue
		}
		flag[i] = true
		if strings.Contains(a, "=") || i+1 >= len(words) || strings.HasPrefix(words[i+1], "-") {
			continue
		}
		for _, f := range vf {
			if a == f {
				i++
				flag[i] = true
				break
			}
		}
	}
	return words, flag
}

// Sub returns the first argument that is not a flag or a flag's value,
// lower-cased: the subcommand of tools like npm, go or apt-get.
func (c *ShellCommand) Sub() string {
	words, flag := c.words()
	for i, a := range words {
		if !flag[i] {
			return strings.ToLower(a)
		}
	}
	return ""
}

// Positional returns the arguments after the command name that are not
// flags or their values.
func (c *ShellCommand) Positional() []string {
	words, flag := c.words()
	var out []string
	for i, a := range words {
		if !flag[i] {
			out = append(out, a)
		}
	}
	return out
}

// Has reports whether any argument equals one of the given words, or, for
// words ending in "=", starts with it.
func (c *ShellCommand) Has(words ...string) bool {
	for _, a := range c.Args[1:] {
		for _, w := range words {
			if a == w || strings.HasSuffix(w, "=") && strings.HasPrefix(a, w) {
				return true
			}
		}
	}
	return false
}

// Is reports whether the command is name followed by the given leading
// non-flag words, e.g. Is("go", "mod", "download").
func (c *ShellCommand) Is(name string, words ...string) bool {
	if c.Name() != name {
		return false
	}
	pos := c.Positional()
	if len(pos) < len(words) {
		return false
	}
	for i, w := range words {
		if !strings.EqualFold(pos[i], w) {
			return false
		}
	}
	return true
}

// wrappers run the command that follows them.
var wrappers = map[string]bool{"sudo": true, "env": true, "time": true, "nohup": true, "nice": true, "exec": true, "command": true, "xargs": true,
	"mold": true, "stdbuf": true, "ionice": true, "unbuffer": true}

// maxScript bounds the shell text parsed per RUN, so a huge body stays cheap.
const maxScript = 1 << 20

// ParseScript parses a RUN body; line is the Dockerfile line of its first line.
func ParseScript(src string, line int) *Script {
	return parseScript(newShellParser(), src, line)
}

func newShellParser() *syntax.Parser { return syntax.NewParser(syntax.Variant(syntax.LangBash)) }

func parseScript(p *syntax.Parser, src string, line int) *Script {
	s := &Script{Vars: map[string]bool{}, parser: p}
	if len(src) > maxScript {
		src = src[:maxScript]
	}
	f, err := p.Parse(strings.NewReader(src), "")
	if err != nil {
		s.Err = err
		s.rough(src, line)
		return s
	}
	s.walk(f, line, nil, 0)
	return s
}

type pipeLink struct {
	call *syntax.CallExpr
	to   string
}

// subst describes the $(...) a walk is inside of; nil at the top level.
type subst struct {
	outer *ShellCommand // the command whose words hold it; nil for an assignment or a compound command
}

func (s *Script) walk(root syntax.Node, line int, in *subst, depth int) {
	byCall := map[*syntax.CallExpr]*ShellCommand{}
	var links []pipeLink
	var current *ShellCommand // the simple command whose words are being walked
	syntax.Walk(root, func(n syntax.Node) bool {
		switch n := n.(type) {
		case *syntax.CmdSubst:
			for _, st := range n.Stmts {
				s.walk(st, line, &subst{outer: current}, depth)
			}
			return false
		case *syntax.ParamExp:
			if n.Param != nil {
				s.Vars[n.Param.Value] = true
			}
		case *syntax.Stmt:
			current = nil
			call, ok := n.Cmd.(*syntax.CallExpr)
			if !ok {
				break
			}
			c := s.call(call, line, in, depth)
			current = c
			if c == nil {
				break
			}
			byCall[call] = c
			for _, r := range n.Redirs {
				out := r.Op == syntax.RdrOut || r.Op == syntax.AppOut || r.Op == syntax.RdrAll || r.Op == syntax.AppAll
				if out && (r.N == nil || r.N.Value == "1") && r.Word != nil && word(r.Word, nil) != "/dev/null" {
					c.Writes = true
				}
			}
		case *syntax.BinaryCmd:
			if n.Op != syntax.Pipe && n.Op != syntax.PipeAll {
				break
			}
			right := firstCall(n.Y)
			if right == nil || len(right.Args) == 0 {
				break
			}
			to := path.Base(word(right.Args[0], nil))
			// The command after a wrapper, past its flags and, for
			// env, its assignments (| env UV_INSTALL_DIR=/bin sh).
			for i := 1; wrappers[to] && i < len(right.Args); i++ {
				if w := word(right.Args[i], nil); !strings.HasPrefix(w, "-") && !strings.Contains(w, "=") {
					to = path.Base(w)
				}
			}
			if left := lastCall(n.X); left != nil {
				links = append(links, pipeLink{left, to})
			}
		}
		return true
	})
	for _, l := range links {
		if c := byCall[l.call]; c != nil {
			c.PipedTo = l.to
		}
	}
}

// call records a simple command, looking through wrappers like sudo and env
// and into sh -c scripts.
func (s *Script) call(call *syntax.CallExpr, line int, in *subst, depth int) *ShellCommand {
	for _, a := range call.Assigns {
		if a.Name != nil {
			s.Vars["="+a.Name.Value] = true
		}
		if len(call.Args) == 0 && a.Value != nil && mentions(word(a.Value, nil), "RANDOM") {
			s.RandomAssigned = true
		}
	}
	if len(call.Args) == 0 {
		return nil
	}
	args := make([]string, 0, len(call.Args))
	for _, w := range call.Args {
		args = append(args, word(w, s.Vars))
	}
	for len(args) > 1 && wrappers[path.Base(args[0])] {
		args = args[1:]
		for len(args) > 1 && (strings.HasPrefix(args[0], "-") || strings.Contains(args[0], "=")) {
			args = args[1:]
		}
	}
	c := &ShellCommand{Args: args, Line: line + int(call.Pos().Line()) - 1}
	if in != nil {
		c.InSubst, c.Outer = true, in.outer
	}
	s.Commands = append(s.Commands, c)
	switch c.Name() {
	case "sh", "bash", "ash", "dash", "zsh":
		for i, a := range args {
			if a == "-c" && i+1 < len(args) && depth < 3 {
				f, err := s.parser.Parse(strings.NewReader(args[i+1]), "")
				if err == nil {
					s.walk(f, c.Line, in, depth+1)
				}
				break
			}
		}
	}
	return c
}

func firstCall(st *syntax.Stmt) *syntax.CallExpr {
	var found *syntax.CallExpr
	syntax.Walk(st, func(n syntax.Node) bool {
		if found != nil {
			return false
		}
		if c, ok := n.(*syntax.CallExpr); ok && len(c.Args) > 0 {
			found = c
			return false
		}
		return true
	})
	return found
}

func lastCall(st *syntax.Stmt) *syntax.CallExpr {
	var found *syntax.CallExpr
	syntax.Walk(st, func(n syntax.Node) bool {
		if _, ok := n.(*syntax.CmdSubst); ok {
			return false
		}
		if c, ok := n.(*syntax.CallExpr); ok && len(c.Args) > 0 {
			found = c
		}
		return true
	})
	return found
}

// word flattens a shell word: quotes removed, parameter expansions kept as
// $NAME (and recorded in vars), command substitutions as $(...).
func word(w *syntax.Word, vars map[string]bool) string {
	var b strings.Builder
	wordParts(&b, w.Parts, vars)
	return b.String()
}

func wordParts(b *strings.Builder, parts []syntax.WordPart, vars map[string]bool) {
	for _, p := range parts {
		switch p := p.(type) {
		case *syntax.Lit:
			b.WriteString(p.Value)
		case *syntax.SglQuoted:
			b.WriteString(p.Value)
		case *syntax.DblQuoted:
			wordParts(b, p.Parts, vars)
		case *syntax.ParamExp:
			if p.Param != nil {
				b.WriteString("$" + p.Param.Value)
				if vars != nil {
					vars[p.Param.Value] = true
				}
			}
		case *syntax.CmdSubst:
			b.WriteString("$(...)")
		default:
			b.WriteString("?")
		}
	}
}

// rough splits a body that is not valid shell on separators, so rules still
// see its commands.
func (s *Script) rough(src string, line int) {
	r := strings.NewReplacer("&&", "\n", "||", "\n", ";", "\n", "|", "\n")
	for _, part := range strings.Split(r.Replace(src), "\n") {
		f := strings.Fields(part)
		if len(f) == 0 {
			continue
		}
		for len(f) > 1 && wrappers[path.Base(f[0])] {
			f = f[1:]
		}
		s.Commands = append(s.Commands, &ShellCommand{Args: f, Line: line})
	}
}
