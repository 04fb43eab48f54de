package lint

import (
	"runtime"
	"strings"

	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// expose is BuildKit's EXPOSE validation: ExposeProtoCasing and
// ExposeInvalidFormat (dockerfile2llb/convert_expose.go).
func (b *buildKitChecks) expose(df *Dockerfile, s *Step, c *instructions.ExposeCommand) {
	loc := c.Location()
	for _, raw := range c.Ports {
		words, err := df.lex.ProcessWords(strings.ToValidUTF8(raw, "\uFFFD"), s.Scope)
		if err != nil {
			continue
		}
		for _, p := range words {
			parts := strings.Split(p, ":")
			container := parts[len(parts)-1]
			_, proto, _ := strings.Cut(container, "/")
			if proto != strings.ToLower(proto) {
				b.linter.Run(&linter.RuleExposeProtoCasing, loc, linter.RuleExposeProtoCasing.Format(p))
			}
			if len(parts) > 1 {
				b.linter.Run(&linter.RuleExposeInvalidFormat, loc, linter.RuleExposeInvalidFormat.Format(p))
			}
		}
	}
}

// platformConst is FromPlatformFlagConstDisallowed: a constant --platform
// on FROM, unless the stage name mentions its OS or architecture.
func (b *buildKitChecks) platformConst(df *Dockerfile, st *Stage, global *Scope, loc []parser.Range) {
	if st.raw.Platform == "" {
		return
	}
	res, err := expandMatches(df.lex, st.raw.Platform, global)
	if err != nil || len(res.Matched) > 0 || len(res.Unmatched) > 0 {
		return
	}
	p, err := platforms.Parse(res.Result)
	if err != nil || strings.Contains(st.Name, p.OS) || strings.Contains(st.Name, p.Architecture) {
		return
	}
	b.linter.Run(&linter.RuleFromPlatformFlagConstDisallowed, loc, linter.RuleFromPlatformFlagConstDisallowed.Format(res.Result))
}

// defaultArgInFrom is InvalidDefaultArgInFrom: with only the ARG defaults,
// the FROM must still name a valid image.
func (b *buildKitChecks) defaultArgInFrom(df *Dockerfile, st *Stage, global *Scope, loc []parser.Range) {
	if !strings.Contains(st.raw.BaseName, "$") {
		return
	}
	res, err := expandMatches(df.lex, st.raw.BaseName, withPlatformArgs{global})
	if err != nil {
		return
	}
	if _, err := reference.ParseNormalizedNamed(res.Result); err != nil {
		b.linter.Run(&linter.RuleInvalidDefaultArgInFrom, loc, linter.RuleInvalidDefaultArgInFrom.Format(st.raw.BaseName))
	}
}

// withPlatformArgs is a global scope read with the ARG defaults (no build
// argument) and with the platform arguments BuildKit defines by itself
// (TARGETARCH, BUILDOS, ...), for a build on and for a Linux builder of
// this machine's architecture, unless the Dockerfile gives them a value:
// FROM build_${TARGETARCH} names the stage build_amd64.
type withPlatformArgs struct{ *Scope }

func (w withPlatformArgs) Get(key string) (string, bool) {
	if v := w.Var(key); v != nil && (v.HasV || !platformArgs[key]) {
		return v.Default, true
	}
	return platformValue(key)
}

// platformValue is the value BuildKit gives a platform argument
// (TARGETARCH, BUILDOS, ...) for a build on and for a Linux builder of
// this machine's architecture; false for any other name.
func platformValue(key string) (string, bool) {
	if !platformArgs[key] {
		return "", false
	}
	p := platforms.Normalize(ocispecs.Platform{OS: "linux", Architecture: runtime.GOARCH})
	switch strings.TrimPrefix(strings.TrimPrefix(key, "TARGET"), "BUILD") {
	case "PLATFORM":
		return platforms.Format(p), true
	case "OS":
		return p.OS, true
	case "ARCH":
		return p.Architecture, true
	default: // VARIANT
		return p.Variant, true
	}
}

func (w withPlatformArgs) Keys() []string {
	keys := w.Scope.Keys()
	for k := range platformArgs {
		if w.Var(k) == nil {
			keys = append(keys, k)
		}
	}
	return keys
}
