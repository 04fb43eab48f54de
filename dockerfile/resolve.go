package dockerfile

import (
	"cmp"
	"strings"

	"github.com/containerd/platforms"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-build/strata/errs"
)

// Args are what a build gives the ARGs FROM lines may use.
type Args struct {
	BuildArgs map[string]string // --build-arg
	// Platform is the target platform; the zero value is BuildPlatform().
	Platform ocispecs.Platform
}

// Build is a File as one build of a target reads it.
type Build struct {
	File   *File
	Target *Stage
	// targetArg is what BuildKit gives TARGETSTAGE.
	targetArg string
	bases     []string // each stage's FROM, variables expanded
	from      []*Stage // the stage each stage is built FROM, if any
	needs     []bool
}

// BuildPlatform is the platform BuildKit runs a build on here: the
// host's, as a linux platform.
func BuildPlatform() ocispecs.Platform {
	p := platforms.DefaultSpec()
	p.OS = "linux"
	return platforms.Normalize(p)
}

// Resolve reads f for a build of target (the last stage when empty): each
// FROM expanded with the ARGs before the first FROM, the build args and
// the platform args BuildKit defines, and the stages the target needs.
func (f *File) Resolve(target string, args Args) (*Build, error) {
	t, err := f.target(target)
	if err != nil {
		return nil, err
	}
	b := &Build{
		File: f, Target: t, targetArg: cmp.Or(target, t.Name, "default"),
		bases: make([]string, len(f.Stages)), from: make([]*Stage, len(f.Stages)), needs: make([]bool, len(f.Stages)),
	}
	if args.Platform.OS == "" {
		args.Platform = BuildPlatform()
	}
	lex := shell.NewLex(f.AST.EscapeToken)
	env, err := f.globalArgs(lex, args, b.targetArg)
	if err != nil {
		return nil, err
	}
	for i, st := range f.Stages {
		res, err := lex.ProcessWordWithMatches(st.BaseName, env)
		if err != nil {
			return nil, errs.Inputf("%s:%d: FROM %s: %v", f.Name, st.Start, st.BaseName, err)
		}
		b.bases[i] = res.Result
		// BuildKit looks the base up as written: FROM Build is an image.
		if res.Result == strings.ToLower(res.Result) {
			b.from[i] = f.stageNamed(res.Result, i)
		}
	}
	b.reach()
	return b, nil
}

// globalArgs are the args FROM lines may use, as BuildKit defines them:
// the platform args and TARGETSTAGE (build args override them), then the
// ARGs before the first FROM, a build arg before the default.
func (f *File) globalArgs(lex *shell.Lex, args Args, target string) (shell.EnvGetter, error) {
	bp, tp := BuildPlatform(), args.Platform
	defaults := [...][2]string{
		{"BUILDPLATFORM", platforms.Format(bp)}, {"BUILDOS", bp.OS}, {"BUILDOSVERSION", bp.OSVersion},
		{"BUILDARCH", bp.Architecture}, {"BUILDVARIANT", bp.Variant},
		{"TARGETPLATFORM", platforms.FormatAll(tp)}, {"TARGETOS", tp.OS}, {"TARGETOSVERSION", tp.OSVersion},
		{"TARGETARCH", tp.Architecture}, {"TARGETVARIANT", tp.Variant},
		{"TARGETSTAGE", target},
	}
	var env []string
	for _, kv := range defaults {
		v, ok := args.BuildArgs[kv[0]]
		if !ok {
			v = kv[1]
		}
		env = append(env, kv[0]+"="+v)
	}
	for _, cmd := range f.metaArgs {
		for _, kv := range cmd.Args {
			if v, ok := args.BuildArgs[kv.Key]; ok {
				env = append(env, kv.Key+"="+v)
				continue
			}
			if kv.Value == nil {
				continue
			}
			res, err := lex.ProcessWordWithMatches(*kv.Value, shell.EnvsFromSlice(env))
			if err != nil {
				return nil, errs.Inputf("%s:%d: ARG %s: %v", f.Name, line(cmd.Location()), kv.Key, err)
			}
			env = append(env, kv.Key+"="+res.Result)
		}
	}
	return shell.EnvsFromSlice(env), nil
}

// reach marks the stages the target needs: those it is built FROM, and
// those it copies or mounts from, and theirs in turn.
func (b *Build) reach() {
	todo := []*Stage{b.Target}
	for len(todo) > 0 {
		st := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if b.needs[st.Index] {
			continue
		}
		b.needs[st.Index] = true
		if from := b.from[st.Index]; from != nil {
			todo = append(todo, from)
		}
		todo = append(todo, st.deps...)
	}
}

// Stages are the stages the build needs in Dockerfile order, the target
// last (COPY --from may read a later stage).
func (b *Build) Stages() []*Stage {
	var out []*Stage
	for _, st := range b.File.Stages {
		if b.needs[st.Index] && st != b.Target {
			out = append(out, st)
		}
	}
	return append(out, b.Target)
}

// CopiesFromStages reports whether the target needs a stage that is not in
// its FROM chain (COPY --from=stage, RUN --mount=from=stage): that stage's
// steps make no layer of the target's image, so no image's inline cache
// records them.
func (b *Build) CopiesFromStages() bool {
	chain := map[*Stage]bool{}
	for st := b.Target; st != nil && !chain[st]; st = b.from[st.Index] {
		chain[st] = true
	}
	for _, st := range b.File.Stages {
		if b.needs[st.Index] && !chain[st] {
			return true
		}
	}
	return false
}

// Base is st's FROM with its variables expanded: an image, "scratch" or
// the name of an earlier stage (BaseStage).
func (b *Build) Base(st *Stage) string { return b.bases[st.Index] }

// BaseStage is the stage st is built FROM; nil when it is built on an
// image or scratch.
func (b *Build) BaseStage(st *Stage) *Stage { return b.from[st.Index] }

// TargetStageArg is the value BuildKit gives the TARGETSTAGE arg: the
// target as given, else the last stage's name, else "default".
func (b *Build) TargetStageArg() string { return b.targetArg }

// TargetBase is the image the target stage is built on, following FROM
// <stage> to the first stage built on an image; "" when that is scratch.
func (b *Build) TargetBase() string {
	st := b.Target
	for b.from[st.Index] != nil { // always an earlier stage
		st = b.from[st.Index]
	}
	if base := b.bases[st.Index]; !strings.EqualFold(base, "scratch") {
		return base
	}
	return ""
}
