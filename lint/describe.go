package lint

import (
	"errors"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

func parseErr(name string, err error) error {
	var le *parser.LocationError
	line := 0
	if errors.As(err, &le) && len(le.Locations) > 0 && len(le.Locations[0]) > 0 {
		line = le.Locations[0][0].Start.Line
	}
	return &ParseError{File: name, Line: line, Err: errors.Unwrap(err)}
}

// A build argument given for the ARG (args) sets its value, as in a
// build; Default keeps what the Dockerfile alone gives.
func argVar(a instructions.KeyValuePairOptional, decl *Step, global *Scope, lex *shell.Lex, args map[string]string) *Variable {
	v := &Variable{Name: a.Key, Decl: decl}
	if a.Value != nil {
		v.HasV = true
		var scope, defs shell.EnvGetter = decl.Scope, defaults{decl.Scope}
		if decl.Scope == global {
			// Before the first FROM the platform arguments are set
			// (ARG FLAVOR=${TARGETARCH}), as BuildKit sets them.
			scope, defs = withPlatform{scope}, withPlatform{defs}
		}
		v.Value, _, _ = expand(lex, *a.Value, scope)
		v.Default, _, _ = expand(lex, *a.Value, defs)
	} else if g := global.Var(a.Key); g != nil && g != v {
		v.Value, v.HasV, v.Default, v.Given = g.Value, g.HasV, g.Default, g.Given
	}
	if val, ok := args[a.Key]; ok {
		v.Value, v.Given = val, true
	}
	return v
}

// withPlatform is a scope in which the platform arguments it does not set
// have the values BuildKit gives them (see platformValue).
type withPlatform struct{ shell.EnvGetter }

func (w withPlatform) Get(key string) (string, bool) {
	if v, ok := w.EnvGetter.Get(key); ok {
		return v, true
	}
	return platformValue(key)
}

func (w withPlatform) Keys() []string { return w.EnvGetter.Keys() }

// defaults is a scope whose ARGs have the values the Dockerfile alone
// gives them, with no build argument.
type defaults struct{ *Scope }

func (d defaults) Get(key string) (string, bool) {
	v := d.Var(key)
	if v == nil {
		return "", false
	}
	if v.Env {
		return v.Value, true
	}
	return v.Default, true
}

// describe fills in what rules need to know about a step: sources and
// destination of COPY/ADD, mounts and shell commands of RUN.
func (df *Dockerfile) describe(s *Step, global *Scope) error {
	switch c := s.Cmd.(type) {
	case *instructions.CopyCommand:
		s.From = c.From
		df.sources(s, c.SourcesAndDest)
	case *instructions.AddCommand:
		df.sources(s, c.SourcesAndDest)
	case *instructions.RunCommand:
		// Mount options are evaluated only once variables can be expanded.
		err := c.Expand(func(w string) (string, error) {
			r, _, err := expand(df.lex, w, s.Scope)
			return r, err
		})
		if err != nil {
			return &ParseError{File: df.Name, Line: s.Start, Err: err}
		}
		s.Mounts = instructions.GetMounts(c)
		if len(c.Files) > 0 {
			var b strings.Builder
			for _, f := range c.Files {
				b.WriteString(f.Data)
				b.WriteByte('\n')
			}
			s.Script = parseScript(df.sh, b.String(), s.Start+1)
		} else {
			s.Script = parseScript(df.sh, strings.Join(c.CmdLine, " "), s.Start)
		}
	}
	return nil
}

func (df *Dockerfile) sources(s *Step, sd instructions.SourcesAndDest) {
	for _, src := range sd.SourcePaths {
		res, err := expandMatches(df.lex, src, s.Scope)
		if err == nil && len(res.Unmatched) == 0 {
			src = res.Result
		}
		s.Sources = append(s.Sources, src)
	}
	s.Dest, _, _ = expand(df.lex, sd.DestPath, s.Scope)
}

// apply returns the scope after step s: ARG and ENV add variables.
func (df *Dockerfile) apply(s *Step, scope, global *Scope) *Scope {
	switch c := s.Cmd.(type) {
	case *instructions.ArgCommand:
		next := newScope(scope)
		for _, a := range c.Args {
			next.set(argVar(a, s, global, df.lex, df.args))
		}
		return next
	case *instructions.EnvCommand:
		next := newScope(scope)
		for _, kv := range c.Env {
			v := &Variable{Name: kv.Key, Value: kv.Value, HasV: true, Env: true, Decl: s}
			if res, err := expandMatches(df.lex, kv.Value, scope); err == nil {
				v.Value = res.Result
				for m := range res.Matched {
					v.Refs = append(v.Refs, m)
				}
			}
			next.set(v)
		}
		return next
	}
	return scope
}

// expand and expandMatches run BuildKit's shell lexer on valid UTF-8 only:
// its scanner prints encoding errors to standard error.
func expand(lex *shell.Lex, word string, env shell.EnvGetter) (string, map[string]struct{}, error) {
	return lex.ProcessWord(strings.ToValidUTF8(word, "\uFFFD"), env)
}

func expandMatches(lex *shell.Lex, word string, env shell.EnvGetter) (shell.ProcessWordResult, error) {
	return lex.ProcessWordWithMatches(strings.ToValidUTF8(word, "\uFFFD"), env)
}
