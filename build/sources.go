package build

import (
	"context"
	"encoding/json"

	"github.com/containerd/containerd/v2/core/content"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-build/strata/buildcontext"
	"github.com/strata-build/strata/cache/crawl"
	"github.com/strata-build/strata/cache/plan"
	"github.com/strata-build/strata/stream"
)

// sourcesRecorder works out, beside the build, the content digest of the
// sources of each COPY and ADD step of the target stage, so the image
// strata pushes records them in its history and later plans match those
// steps by content, not only by text. It is best effort: a Dockerfile it
// cannot convert, or a base it cannot resolve, leaves the history as
// BuildKit wrote it.
type sourcesRecorder struct {
	done  chan struct{}
	stage *plan.Stage
}

func recordSources(ctx context.Context, opt Options, bc *buildcontext.Context, contextDir, dockerfile string) *sourcesRecorder {
	r := &sourcesRecorder{done: make(chan struct{})}
	if st := opt.PlannedStage; st != nil && st.Skipped == "" {
		r.stage = st
		close(r.done)
		return r
	}
	platform := opt.platform()
	go func() {
		defer close(r.done)
		if opt.Pending != nil {
			// The plan of a choice made beside the build read the stage.
			if c, err := opt.Pending.wait(ctx); err == nil && c.Stage != nil && c.Stage.Skipped == "" {
				r.stage = c.Stage
				return
			}
		}
		stages, err := plan.DockerfileStages(ctx, plan.StagesOptions{
			ContextDir: contextDir, Context: bc, Dockerfile: dockerfile, Parsed: opt.parsed, BuildArgs: opt.BuildArgs, Target: opt.Target, Platform: platform,
			Resolver: plan.NewRegistryResolver(crawl.WithInsecureRegistries(opt.InsecureRegistries...)),
		})
		if err != nil || len(stages) == 0 || stages[len(stages)-1].Skipped != "" {
			return
		}
		r.stage = &stages[len(stages)-1]
	}()
	return r
}

// Ready is closed once the sources are worked out. Recording is worth a
// short wait, not a slow push: a context too large to hash by the time the
// build is done, or a base image that cannot be resolved from here, leaves
// the history as BuildKit wrote it.
func (r *sourcesRecorder) Ready() <-chan struct{} { return r.done }

// Apply writes the recorded sources into the history of the image desc,
// and returns the new manifest's descriptor (desc when nothing changed).
func (r *sourcesRecorder) Apply(ctx context.Context, store content.Store, desc ocispecs.Descriptor) (ocispecs.Descriptor, error) {
	if r.stage == nil {
		return desc, nil
	}
	return stream.RewriteConfig(ctx, store, desc, func(cfg map[string]json.RawMessage) (bool, error) {
		var hist []ocispecs.History
		if err := json.Unmarshal(cfg["history"], &hist); err != nil {
			return false, nil // not an image config strata understands: leave it
		}
		if plan.RecordSources(hist, r.stage) == 0 {
			return false, nil
		}
		dt, err := json.Marshal(hist)
		cfg["history"] = dt
		return err == nil, err
	})
}
