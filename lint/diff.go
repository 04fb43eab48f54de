package lint

import (
	"fmt"
	"strings"
)

// UnifiedDiff returns a unified diff from a to b, "" when they are equal.
func UnifiedDiff(name string, a, b []byte) string {
	if string(a) == string(b) {
		return ""
	}
	x, y := diffInput(string(a)), diffInput(string(b))
	ops := diffLines(x, y)
	var out strings.Builder
	// An absolute path outside the working directory keeps its place
	// under a/ and b/ (patch -p1 -d / applies it).
	name = strings.TrimPrefix(name, "/")
	fmt.Fprintf(&out, "--- a/%s\n+++ b/%s\n", name, name)
	const ctx = 3
	for i := 0; i < len(ops); {
		if ops[i].kind == ' ' {
			i++
			continue
		}
		start := max(i-ctx, 0)
		end := i
		for end < len(ops) {
			if ops[end].kind != ' ' {
				end++
				continue
			}
			run := end
			for run < len(ops) && ops[run].kind == ' ' {
				run++
			}
			if run-end > 2*ctx || run == len(ops) {
				end = min(end+ctx, len(ops))
				break
			}
			end = run
		}
		ai, bi, an, bn := ops[start].a, ops[start].b, 0, 0
		for _, o := range ops[start:end] {
			if o.kind != '+' {
				an++
			}
			if o.kind != '-' {
				bn++
			}
		}
		// An empty side starts at the line before it (0 in an empty
		// file), as diff -u writes it.
		if an > 0 {
			ai++
		}
		if bn > 0 {
			bi++
		}
		fmt.Fprintf(&out, "@@ -%d,%d +%d,%d @@\n", ai, an, bi, bn)
		for _, o := range ops[start:end] {
			out.WriteByte(o.kind)
			text, noEOL := strings.CutSuffix(o.text, "\n")
			out.WriteString(text)
			out.WriteByte('\n')
			if noEOL {
				out.WriteString("\\ No newline at end of file\n")
			}
		}
		i = end
	}
	return out.String()
}

type diffOp struct {
	kind byte
	text string
	a, b int // line indexes before the op
}

// diffInput splits s into lines for the diff; a last line with no newline
// after it keeps a "\n" of its own, so that it differs from the same line
// with one (and the diff says so, as diff -u does).
func diffInput(s string) []string {
	lines := splitLines(s)
	if len(lines) > 0 && !strings.HasSuffix(s, "\n") {
		lines[len(lines)-1] += "\n"
	}
	return lines
}

func splitLines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// diffLines is a longest-common-subsequence diff; Dockerfiles are small,
// and very long inputs fall back to replacing everything.
func diffLines(x, y []string) []diffOp {
	n, m := len(x), len(y)
	var ops []diffOp
	if n*m > 25_000_000 {
		for i, l := range x {
			ops = append(ops, diffOp{'-', l, i, 0})
		}
		for j, l := range y {
			ops = append(ops, diffOp{'+', l, n, j})
		}
		return ops
	}
	lcs := make([][]int32, n+1)
	for i := range lcs {
		lcs[i] = make([]int32, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && x[i] == y[j]:
			ops = append(ops, diffOp{' ', x[i], i, j})
			i++
			j++
		case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
			ops = append(ops, diffOp{'-', x[i], i, j})
			i++
		default:
			ops = append(ops, diffOp{'+', y[j], i, j})
			j++
		}
	}
	return ops
}
