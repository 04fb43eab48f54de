package lint

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"mvdan.cc/sh/v3/syntax"

	"github.com/strata-build/strata/errs"
)

// Dockerfile is a parsed Dockerfile: its stages, steps and the variables in
// scope at each step.
type Dockerfile struct {
	Name     string
	Source   []byte
	Lines    []string // source lines, without line endings
	AST      *parser.Node
	Warnings []parser.Warning
	MetaArgs []*Step // ARG before the first FROM
	Stages   []*Stage
	lex      *shell.Lex
	sh       *syntax.Parser
	global   *Scope // the ARGs before the first FROM
	args     map[string]string
}

// Stage is one FROM and its steps.
type Stage struct {
	Index  int
	Name   string // "" when unnamed
	Base   string // base image or stage name, variables expanded
	Parent *Stage // the stage it is built FROM, if any
	From   *Step  // the FROM line itself
	Steps  []*Step
	raw    *instructions.Stage
	end    *Scope
}

// endScope is the scope after the stage's last step, which child stages inherit.
func (s *Stage) endScope() *Scope { return s.end }

// Step is one instruction inside a stage.
type Step struct {
	Stage    *Stage
	Index    int
	Cmd      instructions.Command // nil for FROM
	Name     string               // lower-case instruction name
	Node     *parser.Node
	Start    int // first line
	End      int // last line
	Scope    *Scope
	Sources  []string // COPY/ADD sources with variables expanded
	Dest     string
	From     string // COPY --from
	Mounts   []*instructions.Mount
	Script   *Script // RUN
	Comments []string
}

// Line is the step's first line, as Position.
func (s *Step) Pos() Position { return Position{Line: s.Start, Column: 1} }

// Variable is an ARG or ENV in scope.
type Variable struct {
	Name  string
	Value string
	HasV  bool     // declared with a value (or given one by ENV)
	Env   bool     // ENV rather than ARG
	Decl  *Step    // where it was declared
	Refs  []string // variables its value was built from
	// Default is the value the Dockerfile alone gives; Value differs when
	// a build argument is given for an ARG (Given).
	Default string
	Given   bool
}

// Scope is the set of variables visible to a step.
type Scope struct {
	vars map[string]*Variable
	keys []string
}

func newScope(parent *Scope) *Scope {
	s := &Scope{vars: map[string]*Variable{}}
	if parent != nil {
		for _, k := range parent.keys {
			s.set(parent.vars[k])
		}
	}
	return s
}

func (s *Scope) set(v *Variable) {
	if _, ok := s.vars[v.Name]; !ok {
		s.keys = append(s.keys, v.Name)
	}
	s.vars[v.Name] = v
}

// Get implements shell.EnvGetter. An ARG with no default that no build
// argument sets is declared but not set, as in a build, unless it is a
// platform argument, which BuildKit sets (see platformValue).
func (s *Scope) Get(key string) (string, bool) {
	v, ok := s.vars[key]
	switch {
	case !ok:
		return "", false
	case !v.HasV && !v.Given:
		return platformValue(key)
	}
	return v.Value, true
}

// Keys implements shell.EnvGetter.
func (s *Scope) Keys() []string { return s.keys }

// Var returns the variable name, or nil.
func (s *Scope) Var(name string) *Variable { return s.vars[name] }

// Vars returns the variables in declaration order.
func (s *Scope) Vars() []*Variable {
	out := make([]*Variable, len(s.keys))
	for i, k := range s.keys {
		out[i] = s.vars[k]
	}
	return out
}

// ParseError is a Dockerfile that BuildKit would refuse.
type ParseError struct {
	File string
	Line int
	Err  error
}

func (e *ParseError) Error() string {
	msg := printable(e.Err.Error())
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, msg)
	}
	return fmt.Sprintf("%s: %s", e.File, msg)
}

// printable keeps binary input from reaching the terminal: invalid UTF-8 and
// control characters are escaped, and the message is cut at 200 bytes.
func printable(s string) string {
	var b strings.Builder
	for i, r := range s {
		if i > 200 {
			b.WriteString("...")
			break
		}
		if r == utf8.RuneError || unicode.IsControl(r) {
			fmt.Fprintf(&b, "\\x%02x", s[i])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Unwrap makes errors.Is(err, errs.ErrInput) hold.
func (e *ParseError) Unwrap() []error { return []error{errs.ErrInput, e.Err} }

// Parse reads a Dockerfile with BuildKit's parser. lint receives BuildKit's
// parse-time checks; it may be nil.
func Parse(name string, dt []byte, lint *linter.Linter) (*Dockerfile, error) {
	return parse(name, dt, nil, lint, nil)
}

// parse is Parse; res is BuildKit's parse of dt when the caller has it;
// args are the build arguments given to the build.
func parse(name string, dt []byte, res *parser.Result, lint *linter.Linter, args map[string]string) (df *Dockerfile, err error) {
	defer func() {
		if r := recover(); r != nil {
			df, err = nil, &ParseError{File: name, Err: fmt.Errorf("%w while parsing: %v", errInternal, r)}
		}
	}()
	if res == nil {
		if res, err = parser.Parse(bytes.NewReader(dt)); err != nil {
			return nil, parseErr(name, err)
		}
	}
	df = &Dockerfile{Name: name, Source: dt, AST: res.AST, Warnings: res.Warnings, lex: shell.NewLex(res.EscapeToken), sh: newShellParser()}
	df.Lines = strings.Split(strings.ReplaceAll(string(dt), "\r\n", "\n"), "\n")
	global := newScope(nil)
	df.global, df.args = global, args
	var cur *Stage
	var scope *Scope
	for _, n := range res.AST.Children {
		v, err := instructions.ParseInstructionWithLinter(n, lint)
		if err != nil {
			return nil, parseErr(name, parser.WithLocation(err, n.Location()))
		}
		step := &Step{Node: n, Start: n.StartLine, End: n.EndLine, Comments: n.PrevComment, Name: strings.ToLower(n.Value)}
		switch c := v.(type) {
		case *instructions.Stage:
			if cur != nil {
				cur.end = scope
			}
			cur = &Stage{Index: len(df.Stages), Name: c.Name, raw: c, From: step}
			cur.Base, _, _ = expand(df.lex, c.BaseName, global)
			for _, p := range df.Stages {
				if p.Name != "" && strings.EqualFold(p.Name, cur.Base) {
					cur.Parent = p
				}
			}
			if cur.Parent != nil {
				scope = newScope(cur.Parent.endScope())
			} else {
				scope = newScope(nil)
			}
			step.Stage, step.Scope, step.Index = cur, scope, -1
			df.Stages = append(df.Stages, cur)
		case *instructions.ArgCommand:
			if cur == nil {
				step.Cmd, step.Scope = c, global
				for _, a := range c.Args {
					global.set(argVar(a, step, global, df.lex, df.args))
				}
				df.MetaArgs = append(df.MetaArgs, step)
				continue
			}
			if err := df.addStep(cur, step, c, &scope, global); err != nil {
				return nil, err
			}
		case instructions.Command:
			if cur == nil {
				return nil, &ParseError{File: name, Line: n.StartLine, Err: errors.New("no build stage in current context: the first instruction must be FROM")}
			}
			if err := df.addStep(cur, step, c, &scope, global); err != nil {
				return nil, err
			}
		default:
			return nil, &ParseError{File: name, Line: n.StartLine, Err: fmt.Errorf("unexpected %T", v)}
		}
	}
	if len(df.Stages) == 0 {
		return nil, &ParseError{File: name, Line: 1, Err: errors.New("no FROM instruction")}
	}
	cur.end = scope
	return df, nil
}

func (df *Dockerfile) addStep(cur *Stage, step *Step, c instructions.Command, scope **Scope, global *Scope) error {
	step.Cmd, step.Stage, step.Index, step.Scope = c, cur, len(cur.Steps), *scope
	if err := df.describe(step, global); err != nil {
		return err
	}
	*scope = df.apply(step, *scope, global)
	cur.Steps = append(cur.Steps, step)
	return nil
}
