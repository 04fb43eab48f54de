package dockerfile

import "bytes"

// Prefixes are, for each layer step (RUN, COPY, ADD) of the target stage
// but the last, the Dockerfile cut right after that step. Building a
// prefix gives BuildKit the same steps as the full build, so its layers
// are the full image's leading layers. A step gets no prefix when skip
// (if set) says so.
func (b *Build) Prefixes(skip func(*Step) bool) []Prefix {
	steps := b.Target.Steps
	if len(steps) < 2 {
		return nil
	}
	lines := bytes.SplitAfter(b.File.Source, []byte("\n"))
	out := make([]Prefix, 0, len(steps)-1)
	for _, st := range steps[:len(steps)-1] {
		if st.End > len(lines) || st.End < 1 {
			break
		}
		if skip != nil && skip(st) {
			continue
		}
		out = append(out, Prefix{Step: st, Dockerfile: bytes.Join(lines[:st.End], nil)})
	}
	return out
}

// Prefix is the Dockerfile cut right after Step.
type Prefix struct {
	Step       *Step
	Dockerfile []byte
}
