package build

import (
	"bytes"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// prefixDockerfiles returns, for each layer-producing step (RUN, COPY, ADD)
// of the target stage but the last, the Dockerfile cut right after that
// step. Building such a prefix gives BuildKit the same steps as the full
// build, so its layers are the full image's leading layers. Steps that
// start at or before line cachedThrough get no prefix: the plan expects
// them from the cache, so their layers are in the registry already and a
// prefix would only cost a solve.
func prefixDockerfiles(dt []byte, target string, cachedThrough int) ([][]byte, error) {
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
				return cut(lines, steps, cachedThrough), nil
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
	return cut(lines, steps, cachedThrough), nil
}

func cut(lines [][]byte, steps []*parser.Node, cachedThrough int) [][]byte {
	if len(steps) < 2 {
		return nil
	}
	out := make([][]byte, 0, len(steps)-1)
	for _, n := range steps[:len(steps)-1] {
		if n.EndLine > len(lines) {
			break
		}
		if n.StartLine <= cachedThrough {
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
