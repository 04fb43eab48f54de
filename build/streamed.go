package build

import (
	"context"

	"github.com/moby/buildkit/client"

	"github.com/strata-build/strata/buildcontext"
	"github.com/strata-build/strata/stream"
)

// runStreamed builds opt and pushes its image with layers uploaded while the
// build still runs (see package stream): the prefixes of the target stage
// worth a solve of their own, and the COPY sources recorded in the image's
// history, are worked out here.
func runStreamed(ctx context.Context, c *client.Client, opt Options, so client.SolveOpt, bc *buildcontext.Context, contextDir, dockerfile string, lazy bool, p *progress) (*Result, error) {
	target := opt.streamTarget()
	cachedThrough := opt.CachedThrough
	if opt.NoCache {
		cachedThrough = 0 // every step runs
	}
	sourcesCtx, stopSources := context.WithCancel(ctx)
	defer stopSources()
	cfg := stream.Config{
		Tags:           opt.Tags,
		Insecure:       opt.InsecureRegistries,
		Compression:    opt.Compression,
		Epoch:          opt.epoch(),
		ClampFileTimes: opt.Reproducible,
		Dockerfile:     dockerfile,
		Prefixes:       prefixDockerfiles(target, prefixSkipper(cachedThrough, bc)),
		Base:           targetBase(target),
		Edits:          []stream.ImageEdit{recordSources(sourcesCtx, opt, bc, contextDir, dockerfile)},
		MemoPath:       stream.DefaultMemoPath(),
		Platform:       opt.platform(),
		Lazy:           lazy,
		RewriteAll:     opt.ForceCompression,
	}
	if opt.Pending != nil {
		cfg.Late = streamLate(opt.Pending, opt.NoCache)
	}
	res, err := stream.Push(ctx, c, so, cfg, p)
	if err != nil {
		return p.result(nil, 0, err)
	}
	r, err := p.result(res.ExporterResponse, res.SolveTime, nil)
	if err != nil {
		return nil, err
	}
	r.Push = &PushStats{BytesPushed: res.BytesSent, Layers: res.Layers, Streamed: true}
	return r, nil
}

// PushStats describe what strata uploaded.
type PushStats struct {
	Streamed    bool           `json:"streamed"`
	BytesPushed int64          `json:"bytesPushed"`
	Layers      []stream.Layer `json:"layers"`
}
