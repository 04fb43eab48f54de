package plan

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/containerd/platforms"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerui"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-build/strata/buildcontext"
	"github.com/strata-build/strata/cache"
	"github.com/strata-build/strata/dockerfile"
	"github.com/strata-build/strata/errs"
)

// Stage is one stage of a Dockerfile as step tokens, for one platform.
type Stage struct {
	Index    int    // position in the Dockerfile
	Name     string // the stage name, or its index when it has none
	Platform string // os/arch[/variant]
	// Base is the FROM image after expansion: an image ref (resolved to
	// BaseDigest), "scratch", or the name of another stage (BaseStage >= 0).
	Base       string
	BaseDigest string
	BaseStage  int
	// BaseDiffIDs are the base image's layers (for a stage base, that
	// stage's base image's); candidates must start with the same layers.
	BaseDiffIDs []string
	// Steps are the layer steps of the stage's image: the base's first
	// (BaseSteps of them), then the stage's own.
	Steps     []cache.Step
	BaseSteps int
	// Lines are the Dockerfile lines of the stage's own steps.
	Lines []int
	// Skipped says why a stage could not be turned into steps (an unnamed
	// intermediate stage, a base image that could not be resolved).
	Skipped string
}

// ownSteps returns the steps the stage's instructions add to its base.
func (s *Stage) ownSteps() []cache.Step { return s.Steps[s.BaseSteps:] }

// StagesOptions select what DockerfileStages reads.
type StagesOptions struct {
	ContextDir string // the build context; COPY sources are read from it ("": COPY steps match by text)
	Dockerfile string // default <ContextDir>/Dockerfile
	// DockerfileData is the Dockerfile's content, when it is not read from
	// Dockerfile (a frontend has it from the gateway); Dockerfile names it.
	DockerfileData []byte
	BuildArgs      map[string]string // --build-arg
	Target         string            // default: the last stage
	Platform       string            // default: the host's linux platform
	Resolver       BaseResolver      // resolves FROM images; required unless every base is scratch
	// Context is the build context already opened (its walk is shared);
	// nil opens ContextDir when a COPY first needs it.
	Context *buildcontext.Context
	// Parsed is the Dockerfile already parsed (a build parses it once);
	// nil reads DockerfileData, else Dockerfile.
	Parsed *dockerfile.File
}

// DockerfileStages turns the stages the target needs into step tokens,
// exactly as BuildKit v0.33's Dockerfile frontend would write them into the
// image history: it runs the frontend's own conversion (dockerfile2llb) for
// each named stage, with base images resolved by opt.Resolver. Stages come
// in Dockerfile order, the target last.
func DockerfileStages(ctx context.Context, opt StagesOptions) ([]Stage, error) {
	return dockerfileStages(ctx, &opt)
}

// dockerfileStages is DockerfileStages; the context it opens and the
// Dockerfile it parses are left in opt for the caller's next call.
func dockerfileStages(ctx context.Context, opt *StagesOptions) ([]Stage, error) {
	df, err := parseDockerfile(opt)
	if err != nil {
		return nil, err
	}
	rec := &recordingResolver{r: opt.Resolver, seen: map[string]resolved{}, config: map[string]cachedConfig{}}
	var out []Stage
	byIndex := map[int]int{}
	for _, st := range df.build.Stages() {
		s, err := df.readStage(ctx, opt, rec, st, func(j int) (Stage, bool) {
			k, ok := byIndex[j]
			if !ok {
				return Stage{}, false
			}
			return out[k], true
		})
		if err != nil {
			return nil, err
		}
		byIndex[st.Index] = len(out)
		out = append(out, s)
	}
	return out, nil
}

// parsedDockerfile is a Dockerfile read for one build on one platform.
type parsedDockerfile struct {
	plat  ocispecs.Platform
	build *dockerfile.Build
}

// parseDockerfile parses opt's Dockerfile unless opt.Parsed has it, and
// reads it for opt's target and platform; it sets TARGETSTAGE in
// opt.BuildArgs, as BuildKit gives it to every stage.
func parseDockerfile(opt *StagesOptions) (*parsedDockerfile, error) {
	if opt.Dockerfile == "" {
		opt.Dockerfile = filepath.Join(opt.ContextDir, "Dockerfile")
	}
	var err error
	if opt.Parsed == nil {
		if opt.DockerfileData != nil {
			opt.Parsed, err = dockerfile.Parse(opt.Dockerfile, opt.DockerfileData)
		} else {
			opt.Parsed, err = dockerfile.ReadFile(opt.Dockerfile)
		}
		if err != nil {
			return nil, err
		}
	}
	df := &parsedDockerfile{}
	if df.plat, err = parsePlatform(opt.Platform); err != nil {
		return nil, err
	}
	if df.build, err = opt.Parsed.Resolve(opt.Target, dockerfile.Args{BuildArgs: opt.BuildArgs, Platform: df.plat}); err != nil {
		return nil, err
	}
	// Each stage is converted as a target of its own; TARGETSTAGE must still
	// name the build's real target, as BuildKit gives it to every stage.
	if _, set := opt.BuildArgs["TARGETSTAGE"]; !set {
		args := make(map[string]string, len(opt.BuildArgs)+1)
		maps.Copy(args, opt.BuildArgs)
		args["TARGETSTAGE"] = df.build.TargetStageArg()
		opt.BuildArgs = args
	}
	return df, nil
}

// readStage converts stage in and reads its steps, base and sources; read
// returns a stage read before it (for FROM <stage>).
func (df *parsedDockerfile) readStage(ctx context.Context, opt *StagesOptions, rec *recordingResolver, in *dockerfile.Stage, read func(int) (Stage, bool)) (Stage, error) {
	b, plat := df.build, df.plat
	st := Stage{Index: in.Index, Name: in.Name, Platform: cache.Platform(plat.OS, plat.Architecture, plat.Variant), Base: b.Base(in), BaseStage: -1}
	if st.Name == "" {
		st.Name = strconv.Itoa(in.Index)
	}
	if base := b.BaseStage(in); base != nil {
		st.BaseStage = base.Index
	}
	src, name := b.File.Source, in.Name
	if name == "" && in.Index != len(b.File.Stages)-1 {
		// BuildKit targets stages by name only: name this one in a copy
		// of the Dockerfile. Names do not show in the history.
		var ok bool
		name = fmt.Sprintf("strata-stage-%d", in.Index)
		if src, ok = nameStage(src, in.Stage, name); !ok {
			st.Skipped = "unnamed stage: name it (FROM ... AS NAME) to plan it"
			return st, nil
		}
	}
	if err := convertStage(ctx, src, name, *opt, plat, rec, &st); err != nil {
		var ue *unresolvedError
		if !errors.As(err, &ue) {
			return st, errs.Inputf("%s: stage %s: %v", opt.Dockerfile, st.Name, err)
		}
		st.Skipped = ue.Error()
	}
	switch {
	case st.BaseStage >= 0:
		if base, ok := read(st.BaseStage); ok {
			st.BaseDigest, st.BaseDiffIDs, st.BaseSteps = base.BaseDigest, base.BaseDiffIDs, len(base.Steps)
			if base.Skipped != "" && st.Skipped == "" {
				st.BaseSteps = min(len(st.Steps), countBaseSteps(rec, base.Base, base.Steps))
			}
		}
	case st.Base != "scratch":
		if r, ok := rec.lookup(st.Base); ok {
			st.BaseDigest, st.BaseDiffIDs = r.digest, r.diffIDs
			st.BaseSteps = r.steps
		}
	}
	if st.BaseSteps > len(st.Steps) {
		st.BaseSteps = len(st.Steps)
	}
	st.Lines = ownLines(in.Stage, st.ownSteps())
	markTextOnly(in.Stage, st.ownSteps())
	if opt.ContextDir != "" && st.Skipped == "" {
		if err := addSources(opt, in.Stage, st.ownSteps()); err != nil {
			return st, err
		}
	}
	return st, nil
}

func countBaseSteps(rec *recordingResolver, base string, steps []cache.Step) int {
	if r, ok := rec.lookup(base); ok {
		return r.steps
	}
	return len(steps)
}

// convertStage runs BuildKit's conversion for one stage and reads the
// history of the image it would produce.
func convertStage(ctx context.Context, dt []byte, target string, opt StagesOptions, plat ocispecs.Platform, r *recordingResolver, st *Stage) (err error) {
	defer func() {
		if p := recover(); p != nil { // BuildKit's conversion is not ours to trust with odd input
			err = fmt.Errorf("BuildKit's Dockerfile conversion failed: %v", p)
		}
	}()
	host := dockerfile.BuildPlatform()
	res, err := dockerfile2llb.Dockerfile2LLB(ctx, dt, dockerfile2llb.ConvertOpt{
		Config: dockerui.Config{
			BuildArgs:      opt.BuildArgs,
			Target:         target,
			BuildPlatforms: []ocispecs.Platform{host},
		},
		TargetPlatform: &plat,
		MetaResolver:   r,
	})
	if err != nil {
		if ue := r.failure(); ue != nil {
			return ue
		}
		return err
	}
	// A stage may run on another platform (FROM --platform=$BUILDPLATFORM).
	if img := res.Image; img.OS != "" && img.Architecture != "" {
		st.Platform = cache.Platform(img.OS, img.Architecture, img.Variant)
	}
	history := make([]v1.History, len(res.Image.History))
	for i, h := range res.Image.History {
		history[i] = v1.History{CreatedBy: h.CreatedBy, Comment: h.Comment, EmptyLayer: h.EmptyLayer}
	}
	st.Steps, err = cache.NormalizeHistory(history, -1)
	return err
}

// nameStage returns dt with " AS name" after the FROM line of stage s.
func nameStage(dt []byte, s instructions.Stage, name string) ([]byte, bool) {
	if len(s.Location) == 0 {
		return nil, false
	}
	end := s.Location[len(s.Location)-1].End.Line
	lines := bytes.SplitAfter(dt, []byte("\n"))
	if end < 1 || end > len(lines) {
		return nil, false
	}
	l := bytes.TrimRight(lines[end-1], "\r\n")
	if bytes.HasSuffix(bytes.TrimSpace(l), []byte("\\")) || bytes.HasSuffix(bytes.TrimSpace(l), []byte("`")) {
		return nil, false
	}
	out := make([]byte, 0, len(dt)+len(name)+4)
	for i, line := range lines {
		if i == end-1 {
			out = append(out, l...)
			out = append(out, " AS "+name...)
			out = append(out, line[len(l):]...)
			continue
		}
		out = append(out, line...)
	}
	return out, true
}

func parsePlatform(p string) (ocispecs.Platform, error) {
	if p == "" {
		return dockerfile.BuildPlatform(), nil
	}
	if strings.Contains(p, ",") {
		return ocispecs.Platform{}, errs.WithHint(errs.Usagef("plan one platform at a time, got %q", p), "pass a single --platform")
	}
	v, err := platforms.Parse(p)
	if err != nil {
		return ocispecs.Platform{}, errs.Usagef("--platform %q: %v", p, err)
	}
	return platforms.Normalize(v), nil
}

func line(r []parser.Range) int {
	if len(r) == 0 {
		return 0
	}
	return r[0].Start.Line
}

// layerCommands are the stage's commands that can make a layer, in order.
func layerCommands(s instructions.Stage) []instructions.Command {
	var cmds []instructions.Command
	for _, c := range s.Commands {
		switch c.(type) {
		case *instructions.RunCommand, *instructions.CopyCommand, *instructions.AddCommand, *instructions.WorkdirCommand:
			cmds = append(cmds, c)
		}
	}
	return cmds
}

// matchCommands pairs each own step with the command that made it: a
// WORKDIR of "/" makes no layer, so commands are skipped until the keyword
// matches.
func matchCommands(s instructions.Stage, steps []cache.Step) []instructions.Command {
	cmds := layerCommands(s)
	out := make([]instructions.Command, len(steps))
	j := 0
	for i, st := range steps {
		kw, _, _ := strings.Cut(st.Text, " ")
		for j < len(cmds) && !strings.EqualFold(cmds[j].Name(), kw) {
			j++
		}
		if j < len(cmds) {
			out[i] = cmds[j]
			j++
		}
	}
	return out
}

// markTextOnly flags RUN steps with bind mounts: what they read is not
// in the history text, so matching the text says nothing about the result.
// The mounts are as written: dockerfile.Parse reads them so, and leaves
// those it cannot read as bind mounts, the worst case here.
func markTextOnly(s instructions.Stage, steps []cache.Step) {
	for i, c := range matchCommands(s, steps) {
		run, ok := c.(*instructions.RunCommand)
		if !ok {
			continue
		}
		for _, m := range instructions.GetMounts(run) {
			if m.Type == instructions.MountTypeBind {
				steps[i].TextOnly = true
			}
		}
	}
}

func ownLines(s instructions.Stage, steps []cache.Step) []int {
	lines := make([]int, len(steps))
	for i, c := range matchCommands(s, steps) {
		if c != nil {
			lines[i] = line(c.Location())
		}
	}
	return lines
}
