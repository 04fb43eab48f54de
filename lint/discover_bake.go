package lint

import (
	"strings"
)

// bakeHCL reads the target blocks of a bake HCL file: context, dockerfile,
// args and inherits, with the defaults of variable blocks substituted in
// "${NAME}" templates and bare NAME references. It reads HCL's native
// syntax far enough to skip what it does not need (functions, other
// blocks, heredocs, comments); an attribute whose value needs anything
// else is left unset. A full HCL implementation would double the size of
// a lint-only binary for these few attributes.
func bakeHCL(dt []byte) map[string]*bakeTarget {
	p := &hclReader{src: string(dt)}
	body, _ := p.body(0)
	vars := map[string]string{}
	for _, b := range body {
		if b.typ == "variable" && len(b.labels) == 1 {
			if v, ok := b.attrs["default"]; ok {
				if s, ok := v.str(nil); ok {
					vars[b.labels[0]] = s
				}
			}
		}
	}
	targets := map[string]*bakeTarget{}
	for _, b := range body {
		if b.typ != "target" || len(b.labels) != 1 {
			continue
		}
		t := &bakeTarget{}
		if v, ok := b.attrs["context"]; ok {
			if s, ok := v.str(vars); ok {
				t.Context = &s
			}
		}
		if v, ok := b.attrs["dockerfile"]; ok {
			if s, ok := v.str(vars); ok {
				t.Dockerfile = &s
			}
		}
		if v, ok := b.attrs["inherits"]; ok {
			for _, e := range v.list {
				if s, ok := e.str(vars); ok {
					t.Inherits = append(t.Inherits, s)
				}
			}
		}
		if v, ok := b.attrs["args"]; ok && v.obj != nil {
			t.Args = map[string]string{}
			for k, e := range v.obj {
				if s, ok := e.str(vars); ok {
					t.Args[k] = s
				}
			}
		}
		targets[b.labels[0]] = t
	}
	return targets
}

// hclBlock is a block with its attributes; nested blocks are skipped.
type hclBlock struct {
	typ    string
	labels []string
	attrs  map[string]hclValue
}

// hclValue is what the reader keeps of an expression: a string template
// (literal parts and variable names), a variable reference, a list or an
// object of such values; anything else is unknown.
type hclValue struct {
	parts []string // template: literal text, or "\x00NAME" for ${NAME}
	ref   string   // a bare variable reference
	list  []hclValue
	obj   map[string]hclValue
	known bool // a string template or a reference
}

// str returns the value as a string, variables substituted from vars.
func (v hclValue) str(vars map[string]string) (string, bool) {
	if !v.known {
		return "", false
	}
	if v.ref != "" {
		s, ok := vars[v.ref]
		return s, ok
	}
	var b strings.Builder
	for _, p := range v.parts {
		if name, ok := strings.CutPrefix(p, "\x00"); ok {
			s, ok := vars[name]
			if !ok {
				return "", false
			}
			p = s
		}
		b.WriteString(p)
	}
	return b.String(), true
}

// hclReader reads HCL native syntax from src.
type hclReader struct {
	src string
	i   int
}

// maxHCLDepth bounds nesting, so hostile input cannot exhaust the stack.
const maxHCLDepth = 32

func (p *hclReader) eof() bool { return p.i >= len(p.src) }

func (p *hclReader) peek() byte {
	if p.eof() {
		return 0
	}
	return p.src[p.i]
}

// space skips blanks and comments, and newlines too when nl is set.
func (p *hclReader) space(nl bool) {
	for !p.eof() {
		c := p.src[p.i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || nl && c == '\n':
			p.i++
		case c == '#' || c == '/' && strings.HasPrefix(p.src[p.i:], "//"):
			for !p.eof() && p.src[p.i] != '\n' {
				p.i++
			}
		case c == '/' && strings.HasPrefix(p.src[p.i:], "/*"):
			end := strings.Index(p.src[p.i+2:], "*/")
			if end < 0 {
				p.i = len(p.src)
				return
			}
			p.i += end + 4
		default:
			return
		}
	}
}

func isIdentByte(c byte) bool {
	return c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func (p *hclReader) ident() string {
	start := p.i
	for !p.eof() && isIdentByte(p.src[p.i]) {
		p.i++
	}
	return p.src[start:p.i]
}

// body reads attributes and blocks up to a closing brace or the end;
// blocks nested below the top level are read past, not kept.
func (p *hclReader) body(depth int) (blocks []hclBlock, attrs map[string]hclValue) {
	attrs = map[string]hclValue{}
	for {
		p.space(true)
		if p.eof() || p.peek() == '}' {
			return blocks, attrs
		}
		name := p.ident()
		if name == "" {
			p.i++ // not an item: skip the byte and go on
			continue
		}
		p.space(false)
		if p.peek() == '=' && !strings.HasPrefix(p.src[p.i:], "==") {
			p.i++
			attrs[name] = p.expr(depth)
			continue
		}
		var labels []string
		for !p.eof() && p.peek() != '{' && p.peek() != '\n' {
			if p.peek() == '"' {
				s, _ := p.template().str(nil)
				labels = append(labels, s)
			} else if l := p.ident(); l != "" {
				labels = append(labels, l)
			} else {
				p.i++
			}
			p.space(false)
		}
		if p.peek() != '{' || depth >= maxHCLDepth {
			continue
		}
		p.i++
		_, inner := p.body(depth + 1)
		if p.peek() == '}' {
			p.i++
		}
		if depth == 0 {
			blocks = append(blocks, hclBlock{typ: name, labels: labels, attrs: inner})
		}
	}
}

// expr reads one expression and keeps what hclValue can hold of it.
func (p *hclReader) expr(depth int) hclValue {
	p.space(false)
	var v hclValue
	switch c := p.peek(); {
	case depth >= maxHCLDepth:
	case c == '"':
		v = p.template()
	case c == '[':
		p.i++
		v.list = []hclValue{}
		for {
			p.space(true)
			if p.eof() || p.peek() == ']' {
				break
			}
			at := p.i
			v.list = append(v.list, p.expr(depth+1))
			p.space(true)
			if p.peek() == ',' || p.i == at {
				p.i++ // a separator, or a byte no expression starts with
			}
		}
		p.i++
	case c == '{':
		p.i++
		v.obj = map[string]hclValue{}
		for {
			p.space(true)
			if p.eof() || p.peek() == '}' {
				break
			}
			at := p.i
			var key string
			if p.peek() == '"' {
				key, _ = p.template().str(nil)
			} else {
				key = p.ident()
			}
			p.space(false)
			if key != "" && (p.peek() == '=' || p.peek() == ':') {
				p.i++
				v.obj[key] = p.expr(depth + 1)
			} else {
				p.skip()
			}
			p.space(false)
			if p.peek() == ',' || p.i == at {
				p.i++
			}
		}
		p.i++
	case isIdentByte(c) && !(c >= '0' && c <= '9') && c != '-':
		name := p.ident()
		v = hclValue{ref: name, known: true}
		if name == "true" || name == "false" || name == "null" {
			v = hclValue{}
		}
	}
	// Anything more (an operator, a call, an index) makes the value unknown.
	p.space(false)
	if !p.eof() && !strings.ContainsRune(",\n]})", rune(p.peek())) {
		p.skip()
		return hclValue{}
	}
	return v
}

// template reads a quoted string; ${NAME} parts are kept as variable
// names, any other interpolation or directive makes it unknown.
func (p *hclReader) template() hclValue {
	p.i++ // the opening quote
	v := hclValue{known: true}
	var lit strings.Builder
	for !p.eof() {
		rest := p.src[p.i:]
		switch c := rest[0]; {
		case c == '"':
			p.i++
			v.parts = append(v.parts, lit.String())
			return v
		case c == '\n':
			return hclValue{}
		case c == '\\' && len(rest) > 1:
			switch e := rest[1]; e {
			case 'n':
				lit.WriteByte('\n')
			case 't':
				lit.WriteByte('\t')
			default:
				lit.WriteByte(e)
			}
			p.i += 2
		case strings.HasPrefix(rest, "$${") || strings.HasPrefix(rest, "%%{"):
			lit.WriteString(rest[1:3])
			p.i += 3
		case strings.HasPrefix(rest, "${") || strings.HasPrefix(rest, "%{"):
			end := strings.IndexByte(rest, '}')
			if end < 0 {
				p.i = len(p.src)
				return hclValue{}
			}
			name := strings.TrimSpace(rest[2:end])
			if c == '%' || name == "" || strings.IndexFunc(name, func(r rune) bool { return r > 127 || !isIdentByte(byte(r)) }) >= 0 {
				v.known = false
			}
			v.parts = append(v.parts, lit.String(), "\x00"+name)
			lit.Reset()
			p.i += end + 1
		default:
			lit.WriteByte(c)
			p.i++
		}
	}
	return hclValue{}
}

// skip passes over the rest of an expression: up to a comma, a newline or
// a closing bracket at its own level, across strings, brackets and
// heredocs.
func (p *hclReader) skip() {
	level := 0
	for !p.eof() {
		c := p.src[p.i]
		switch {
		case c == '"':
			p.template()
			continue
		case c == '<' && strings.HasPrefix(p.src[p.i:], "<<"):
			p.heredoc()
			continue
		case c == '#' || c == '/' && (strings.HasPrefix(p.src[p.i:], "//") || strings.HasPrefix(p.src[p.i:], "/*")):
			p.space(false)
			continue
		case c == '(' || c == '[' || c == '{':
			level++
		case c == ')' || c == ']' || c == '}':
			if level == 0 {
				return
			}
			level--
		case (c == ',' || c == '\n') && level == 0:
			return
		}
		p.i++
	}
}

// heredoc passes over <<ID or <<-ID ... ID.
func (p *hclReader) heredoc() {
	p.i += 2
	if p.peek() == '-' {
		p.i++
	}
	id := p.ident()
	nl := strings.IndexByte(p.src[p.i:], '\n')
	if id == "" || nl < 0 {
		p.i = len(p.src)
		return
	}
	p.i += nl + 1
	for !p.eof() {
		end := strings.IndexByte(p.src[p.i:], '\n')
		line := p.src[p.i:]
		if end >= 0 {
			line = p.src[p.i : p.i+end]
		}
		if strings.TrimSpace(line) == id {
			p.i += len(line)
			return
		}
		if end < 0 {
			p.i = len(p.src)
			return
		}
		p.i += end + 1
	}
}
