package build

import (
	"path"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"

	"github.com/strata-build/strata/buildcontext"
	"github.com/strata-build/strata/cache/plan"
	"github.com/strata-build/strata/dockerfile"
	"github.com/strata-build/strata/stream"
)

// prefixDockerfiles returns the prefixes of the target stage (see
// dockerfile.Build.Prefixes): for each layer step but the last, the
// Dockerfile cut right after it. A step gets no prefix when skip says so
// (see prefixSkipper); none does when target is nil (the Dockerfile does
// not parse, or names no such target: the main solve reports it).
func prefixDockerfiles(target *dockerfile.Build, skip func(*dockerfile.Step) bool) []stream.Prefix {
	if target == nil {
		return nil
	}
	var out []stream.Prefix
	for _, p := range target.Prefixes(skip) {
		out = append(out, stream.Prefix{Dockerfile: p.Dockerfile, Line: p.Step.Start})
	}
	return out
}

// smallCopy is the most a COPY's sources may hold for its prefix to be
// skipped: a layer that small goes up with the image in no time.
const smallCopy = 1 << 20

// prefixSkipper says which steps need no prefix solve: those that start
// at or before line cachedThrough, which the cache plan expects to hit (their
// layers are in the registry already), and COPY steps of small context
// files (their layers go up with the image at once). A prefix of such a
// step would only cost a solve beside the build's own. bc may be nil.
func prefixSkipper(cachedThrough int, bc *buildcontext.Context) func(*dockerfile.Step) bool {
	return func(s *dockerfile.Step) bool {
		if s.Start <= cachedThrough {
			return true
		}
		_, isCopy := s.Command.(*instructions.CopyCommand)
		return bc != nil && isCopy && copySize(s.Node, bc) <= smallCopy
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

// targetBase returns the image the target stage is built on, following
// FROM <stage> to the stage's own base; "" when it is scratch or target
// is nil.
func targetBase(target *dockerfile.Build) string {
	if target == nil {
		return ""
	}
	return target.TargetBase()
}
