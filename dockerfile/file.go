package dockerfile

import (
	"bytes"
	"os"
	"strconv"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"

	"github.com/strata-build/strata/errs"
)

// File is a Dockerfile parsed by BuildKit's parser and instructions.
type File struct {
	Name   string         // where it was read from, for errors
	Source []byte         // its content
	AST    *parser.Result // BuildKit's parse, shared with the linter
	Stages []*Stage
	// metaArgs are the ARGs before the first FROM.
	metaArgs []instructions.ArgCommand
}

// Stage is one FROM and its instructions, as BuildKit's instructions
// package reads them (Name is lower-cased, "" when unnamed; BaseName is
// the FROM image as written).
type Stage struct {
	instructions.Stage
	Index int
	// Steps are the instructions that make a layer: RUN, COPY and ADD.
	Steps []*Step
	// Start and End are the lines of the FROM and of the stage's last
	// instruction.
	Start, End int
	// deps are the stages its COPY --from and RUN --mount from= read.
	deps []*Stage
}

// Step is a RUN, COPY or ADD of a stage.
type Step struct {
	Command instructions.Command
	Node    *parser.Node // the instruction as parsed, flags and arguments as written
	// Start and End are its first and last line (a heredoc's end included).
	Start, End int
}

// ReadFile reads and parses the Dockerfile at path.
func ReadFile(path string) (*File, error) {
	dt, err := os.ReadFile(path)
	if err != nil {
		return nil, errs.WithHint(errs.Inputf("read Dockerfile: %v", err), "pass its path with -f")
	}
	return Parse(path, dt)
}

// Parse parses dt, named name in errors. Errors wrap errs.ErrInput.
func Parse(name string, dt []byte) (f *File, err error) {
	defer func() {
		if p := recover(); p != nil { // BuildKit's parser is not ours to trust with odd input
			f, err = nil, errs.Inputf("parse %s: %v", name, p)
		}
	}()
	res, err := parser.Parse(bytes.NewReader(dt))
	if err != nil {
		return nil, errs.Inputf("parse %s: %v", name, err)
	}
	stages, metaArgs, err := instructions.Parse(res.AST, nil)
	if err != nil {
		return nil, errs.Inputf("parse %s: %v", name, err)
	}
	if len(stages) == 0 {
		return nil, errs.Inputf("%s has no FROM", name)
	}
	f = &File{Name: name, Source: dt, AST: res, metaArgs: metaArgs}
	f.addStages(res.AST.Children, stages)
	return f, nil
}

// addStages pairs each instruction with its node: instructions.Parse
// makes one stage or command of each node, in order, the ARGs before the
// first FROM aside.
func (f *File) addStages(nodes []*parser.Node, stages []instructions.Stage) {
	var cur *Stage
	next := 0
	type ref struct {
		from  string
		mount bool
	}
	refs := map[*Stage][]ref{}
	for _, n := range nodes {
		if strings.EqualFold(n.Value, "from") && len(f.Stages) < len(stages) {
			cur = &Stage{Stage: stages[len(f.Stages)], Index: len(f.Stages), Start: n.StartLine, End: n.EndLine}
			f.Stages = append(f.Stages, cur)
			next = 0
			continue
		}
		if cur == nil || next >= len(cur.Commands) {
			continue // an ARG before the first FROM
		}
		c := cur.Commands[next]
		next++
		cur.End = n.EndLine
		switch c := c.(type) {
		case *instructions.CopyCommand:
			if c.From != "" {
				refs[cur] = append(refs[cur], ref{from: c.From})
			}
		case *instructions.RunCommand:
			for _, from := range mountFroms(c) {
				refs[cur] = append(refs[cur], ref{from: from, mount: true})
			}
		case *instructions.AddCommand: // a layer step that reads no stage
		default:
			continue // not RUN, COPY or ADD
		}
		cur.Steps = append(cur.Steps, &Step{Command: c, Node: n, Start: n.StartLine, End: n.EndLine})
	}
	for _, st := range f.Stages {
		for _, r := range refs[st] {
			d := f.stageNamed(r.from, len(f.Stages))
			if !r.mount {
				d = f.copySource(r.from)
			}
			if d != nil {
				st.deps = append(st.deps, d)
			}
		}
	}
}

// mountFroms are the stages or images a RUN mounts. It reads the --mount
// flags as written, as BuildKit does before it expands the command, so
// that instructions.GetMounts gives their type too; flags that do not
// read that way keep BuildKit's first reading (type bind).
func mountFroms(run *instructions.RunCommand) []string {
	_ = run.Expand(func(w string) (string, error) { return w, nil })
	var froms []string
	for _, m := range instructions.GetMounts(run) {
		if m.From != "" {
			froms = append(froms, m.From)
		}
	}
	return froms
}

// target is the stage a build of target produces: the last stage when
// target is empty, else the stage of that name.
func (f *File) target(target string) (*Stage, error) {
	if target == "" {
		return f.Stages[len(f.Stages)-1], nil
	}
	if st := f.stageNamed(target, len(f.Stages)); st != nil {
		return st, nil
	}
	var names []string
	for _, st := range f.Stages {
		if st.Name != "" {
			names = append(names, st.Name)
		}
	}
	hint := "pass a stage name from the Dockerfile to --target"
	if len(names) > 0 {
		hint += ": " + strings.Join(names, ", ")
	}
	return nil, errs.WithHint(errs.Usagef("target stage %q not found in %s", target, f.Name), hint)
}

// CheckTarget reports a usage error when target names no stage of f ("":
// the last stage).
func (f *File) CheckTarget(target string) error {
	_, err := f.target(target)
	return err
}

// stageNamed is the stage called name among the first n stages, by
// BuildKit's rule: stage names are lower-case, name is lower-cased to
// match, and of two stages with one name the later wins.
func (f *File) stageNamed(name string, n int) *Stage {
	name = strings.ToLower(name)
	for i := min(n, len(f.Stages)) - 1; i >= 0; i-- {
		if st := f.Stages[i]; st.Name != "" && st.Name == name {
			return st
		}
	}
	return nil
}

// copySource is the stage COPY --from=from reads: a stage index, else a
// stage name; nil for an image. (RUN --mount from= takes a name only.)
func (f *File) copySource(from string) *Stage {
	if i, err := strconv.Atoi(from); err == nil {
		if i >= 0 && i < len(f.Stages) {
			return f.Stages[i]
		}
		return nil
	}
	return f.stageNamed(from, len(f.Stages))
}

func line(r []parser.Range) int {
	if len(r) == 0 {
		return 0
	}
	return r[0].Start.Line
}
