package build

import (
	"bytes"
	"path"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/parser"

	"github.com/strata-build/strata/buildcontext"
	"github.com/strata-build/strata/cache/plan"
)

// prefixDockerfiles returns, for each layer-producing step (RUN, COPY, ADD)
// of the target stage but the last, the Dockerfile cut right after that
// step. Building such a prefix gives BuildKit the same steps as the full
// build, so its layers are the full image's leading layers. A step gets no
// prefix when skip says so (see prefixSkipper).
func prefixDockerfiles(dt []byte, target string, skip func(*parser.Node) bool) ([][]byte, error) {
	res, err := parser.Parse(bytes.NewReader(dt))
	if err != nil {
		return nil, err
	}
	lines := bytes.SplitAfter(dt, []byte("\n"))
	var (
		inTarget bool
		steps    []*parser.Node // the layer steps of the target stage
	)
	for _, n := range res.AST.Children {
		switch strings.ToLower(n.Value) {
		case "from":
			if inTarget && target != "" {
				// The target stage ended; later stages are not built.
				return cut(lines, steps, skip), nil
			}
			inTarget = target == "" || strings.EqualFold(stageName(n), target)
			if target == "" {
				steps = steps[:0] // only the last stage counts
			}
		case "run", "copy", "add":
			if inTarget {
				steps = append(steps, n)
			}
		}
	}
	return cut(lines, steps, skip), nil
}

// smallCopy is the most a COPY's sources may hold for its prefix to be
// skipped: a layer that small goes up with the image in no time.
const smallCopy = 1 << 20

// prefixSkipper says which steps need no prefix solve: those that start
// at or before line cachedThrough, which the cache plan expects to hit (their
// layers are in the registry already), and COPY steps of small context
// files (their layers go up with the image at once). A prefix of such a
// step would only cost a solve beside the build's own. bc may be nil.
func prefixSkipper(cachedThrough int, bc *buildcontext.Context) func(*parser.Node) bool {
	return func(n *parser.Node) bool {
		if n.StartLine <= cachedThrough {
			return true
		}
		return bc != nil && strings.EqualFold(n.Value, "copy") && copySize(n, bc) <= smallCopy
	}
}

// copySize is what a COPY from the context takes, in bytes; more than
// smallCopy when that cannot be told (another stage, a variable).
func copySize(n *parser.Node, bc *buildcontext.Context) int64 {
	for _, f := range n.Flags {
		if strings.HasPrefix(f, "--from") {
			return smallCopy + 1
		}
	}
	var args []string
	for c := n.Next; c != nil; c = c.Next {
		args = append(args, c.Value)
	}
	if len(n.Heredocs) > 0 || len(args) < 2 {
		return 0 // inline content, or nothing BuildKit would copy
	}
	entries, err := bc.Entries()
	if err != nil {
		return smallCopy + 1
	}
	var total int64
	for _, src := range args[:len(args)-1] {
		if strings.ContainsAny(src, "$") || strings.Contains(src, "://") {
			return smallCopy + 1
		}
		pattern := strings.Trim(path.Clean("/"+src), "/")
		for _, e := range entries {
			if plan.SourceMatch(pattern, e.Path) {
				total += e.Size
			}
		}
	}
	return total
}

func cut(lines [][]byte, steps []*parser.Node, skip func(*parser.Node) bool) [][]byte {
	if len(steps) < 2 {
		return nil
	}
	out := make([][]byte, 0, len(steps)-1)
	for _, n := range steps[:len(steps)-1] {
		if n.EndLine > len(lines) {
			break
		}
		if skip != nil && skip(n) {
			continue
		}
		out = append(out, bytes.Join(lines[:n.EndLine], nil))
	}
	return out
}

// stageName returns the name after AS in a FROM instruction.
func stageName(n *parser.Node) string {
	var words []string
	for c := n.Next; c != nil; c = c.Next {
		words = append(words, c.Value)
	}
	if len(words) == 3 && strings.EqualFold(words[1], "as") {
		return words[2]
	}
	return ""
}

// targetBase returns the image the target stage is built on, following
// FROM <stage> to the stage's own base; "" when it is scratch, unknown or
// uses a variable.
func targetBase(dt []byte, target string) string {
	res, err := parser.Parse(bytes.NewReader(dt))
	if err != nil {
		return ""
	}
	bases := map[string]string{} // stage name -> its FROM
	last := ""
	for _, n := range res.AST.Children {
		if !strings.EqualFold(n.Value, "from") || n.Next == nil {
			continue
		}
		from := n.Next.Value
		if b, ok := bases[strings.ToLower(from)]; ok {
			from = b
		}
		last = from
		if name := stageName(n); name != "" {
			bases[strings.ToLower(name)] = from
			if strings.EqualFold(name, target) {
				break
			}
		}
	}
	if target != "" {
		last = bases[strings.ToLower(target)]
	}
	if last == "" || strings.EqualFold(last, "scratch") || strings.Contains(last, "$") {
		return ""
	}
	return last
}
