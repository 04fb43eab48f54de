package build

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	contentlocal "github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/session"
	sessioncontent "github.com/moby/buildkit/session/content"
	"github.com/moby/buildkit/session/filesync"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/tonistiigi/fsutil"

	"github.com/strata-build/strata/buildcontext"
	"github.com/strata-build/strata/errs"
	"github.com/strata-build/strata/frontend"
	"github.com/strata-build/strata/push"
)

// runStreamed builds opt and pushes its image with layers uploaded while the
// build still runs.
//
// Beside the main solve, strata solves each prefix of the target stage (the
// Dockerfile cut after each RUN, COPY or ADD), one after another, every one
// exported to a client-side OCI store. All solves share one session, so
// BuildKit runs each step once for all of them; each prefix export offers
// only the layers the store lacks, uncompressed, and strata reads each from
// buildkitd's content store (see builderBlobs), compresses it and uploads it
// as it reads (see converter). When the main solve ends, strata uploads
// what is left, then the manifest and its tags, only after every blob is
// confirmed present.
//
// The phases, in order: prepare (prefixes, store, pushers, converter), open
// the session, solve (the main solve and the prefix chain beside it),
// finish the image (convert what is left, restore cache records, record
// COPY sources, set times), push and tag.
func runStreamed(ctx context.Context, c *client.Client, opt Options, so client.SolveOpt, bc *buildcontext.Context, contextDir, dockerfile string, p *progress) (*Result, error) {
	sp, err := prepareStream(ctx, opt, so, bc, contextDir, dockerfile, p)
	if err != nil {
		return nil, err
	}
	defer sp.close()
	if err := sp.openSession(c, so); err != nil {
		return nil, err
	}
	resp, solveTime, err := sp.solve(ctx, c, so)
	if err != nil {
		_, _, _ = p.wait()
		return nil, err
	}
	desc, err := sp.finishImage(ctx, resp.ExporterResponse)
	if err == nil {
		err = sp.pushAndTag(desc)
	}
	warnings, steps, perr := p.wait()
	if err != nil {
		return nil, err
	}
	if perr != nil {
		return nil, perr
	}
	var sent int64
	for _, ps := range sp.pushers {
		sent += ps.BytesSent()
	}
	return &Result{
		ExporterResponse: resp.ExporterResponse,
		Warnings:         warnings,
		Steps:            steps,
		Pulled:           p.pulls.total(),
		Timings:          Timings{Solve: solveTime.Seconds()},
		Push:             &PushStats{BytesPushed: sent, Layers: sp.layers.list(), Streamed: true},
	}, nil
}

// streamedPush is the state of one streamed push, shared by its phases.
type streamedPush struct {
	opt      Options
	p        *progress
	tmp      string // the push's temporary directory
	store    content.Store
	prefixes [][]byte                 // the prefix Dockerfiles, solved in order
	dirs     filesync.StaticDirSource // the session's local mounts, prefixes included
	sources  *sourcesRecorder         // the COPY sources recorded in the history
	imported *importedRecords         // the cache sources' records and layers
	layers   *layerLog                // what happened to each layer, for progress and metadata
	pushers  []*pusher                // one per target repository
	tags     map[string][]name.Tag    // by repository
	conv     *converter               // compresses the layers BuildKit exports
	memo     *layerMemo               // what each layer became in earlier builds
	gate     *earlyGate               // whether layers may go up before their digest is known
	session  *session.Session
	// pushCtx bounds every upload: a failed build leaves none running.
	pushCtx context.Context
	cleanup []func()
}

// prepareStream is the first phase: the prefixes and their Dockerfiles, the
// client-side store, the pushers and the converter.
func prepareStream(ctx context.Context, opt Options, so client.SolveOpt, bc *buildcontext.Context, contextDir, dockerfile string, p *progress) (_ *streamedPush, err error) {
	sp := &streamedPush{opt: opt, p: p, layers: newLayerLog(time.Now(), p)}
	defer func() {
		if err != nil {
			sp.close()
		}
	}()
	sourcesCtx, stopSources := context.WithCancel(ctx)
	sp.cleanup = append(sp.cleanup, stopSources)
	sp.sources = recordSources(sourcesCtx, opt, bc, contextDir, dockerfile)
	platform := ""
	if len(opt.Platforms) == 1 {
		platform = opt.Platforms[0]
	}
	sp.imported = readImportedRecords(sourcesCtx, so.CacheImports, platform, opt.InsecureRegistries)
	target := opt.streamTarget()
	cachedThrough := opt.CachedThrough
	if opt.NoCache {
		cachedThrough = 0 // every step runs
	}
	sp.prefixes = prefixDockerfiles(target, prefixSkipper(cachedThrough, bc))
	if sp.tmp, err = os.MkdirTemp("", "strata-push-"); err != nil {
		return nil, err
	}
	sp.cleanup = append(sp.cleanup, func() { os.RemoveAll(sp.tmp) })
	if sp.store, err = contentlocal.NewStore(filepath.Join(sp.tmp, "store")); err != nil {
		return nil, err
	}
	if err := sp.writePrefixes(so, dockerfile); err != nil {
		return nil, err
	}
	if sp.pushers, sp.tags, err = newPushers(sp.store, opt.Tags, sp.layers.pushed, targetBase(target), sp.imported.source, opt.InsecureRegistries); err != nil {
		return nil, err
	}
	// BuildKit exports the layers it makes uncompressed; strata rewrites
	// their timestamps and compresses them while the build goes on.
	var epoch *time.Time
	if opt.Reproducible {
		epoch = opt.epoch()
	}
	sp.memo = openLayerMemo(defaultMemoPath())
	sp.cleanup = append(sp.cleanup, func() { _ = sp.memo.save() })
	sp.conv = newConverter(sp.store, opt.Compression, epoch, sp.memo)
	var cancelPush context.CancelFunc
	sp.pushCtx, cancelPush = context.WithCancel(ctx)
	sp.cleanup = append(sp.cleanup, cancelPush)
	// Into repositories that hold nothing yet, a layer is uploaded while
	// it is converted as well (see earlyGate).
	sp.gate = newEarlyGate(sp.pushCtx, sp.pushers)
	return sp, nil
}

// writePrefixes writes each prefix Dockerfile into a directory of its own,
// a local mount of the session beside the build's own.
func (sp *streamedPush) writePrefixes(so client.SolveOpt, dockerfile string) error {
	sp.dirs = filesync.StaticDirSource{}
	for k, v := range so.LocalMounts {
		sp.dirs[k] = v
	}
	// BuildKit reads <Dockerfile>.dockerignore from beside the Dockerfile
	// before the context's .dockerignore: each prefix needs it too, or its
	// COPY layers would differ from the final image's.
	ignore, err := os.ReadFile(dockerfile + ".dockerignore")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return errs.Inputf("%s.dockerignore: %v", dockerfile, err)
	}
	for i, dt := range sp.prefixes {
		dir := filepath.Join(sp.tmp, fmt.Sprintf("prefix-%d", i+1))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(dockerfile)), dt, 0o600); err != nil {
			return err
		}
		if ignore != nil {
			if err := os.WriteFile(filepath.Join(dir, filepath.Base(dockerfile)+".dockerignore"), ignore, 0o600); err != nil {
				return err
			}
		}
		if sp.dirs[filepath.Base(dir)], err = fsutil.NewFS(dir); err != nil {
			return err
		}
	}
	return nil
}

// close ends what the phases started, last first.
func (sp *streamedPush) close() {
	for i := len(sp.cleanup) - 1; i >= 0; i-- {
		sp.cleanup[i]()
	}
}

// pushConverted uploads what a layer BuildKit exported at t became. An
// error is reported by the image's conversion.
func (sp *streamedPush) pushConverted(l ocispecs.Descriptor, t time.Time, cv *conversion) {
	sp.layers.converted(l, t, cv, sp.conv.compression)
	if cv.err == nil {
		for _, ps := range sp.pushers {
			ps.PushBlob(sp.pushCtx, cv.desc)
		}
	}
	// The uncompressed layer is not needed once converted: the store
	// answers later exports that it has it (see knownStore). So the store
	// holds little more than the compressed layers, and removing it at the
	// end is quick.
	if cv.err == nil && cv.desc.Digest != l.Digest {
		_ = sp.store.Delete(context.WithoutCancel(sp.pushCtx), l.Digest)
	}
}

// convertAndPush converts a layer exported at t, then uploads it.
func (sp *streamedPush) convertAndPush(l ocispecs.Descriptor, t time.Time) *conversion {
	return sp.conv.start(sp.pushCtx, l, func(cv *conversion) { sp.pushConverted(l, t, cv) })
}

// committed converts a layer an export has written whole into the store.
func (sp *streamedPush) committed(d digest.Digest) {
	if isTar(sp.pushCtx, sp.store, d) {
		if info, err := sp.store.Info(sp.pushCtx, d); err == nil {
			sp.convertAndPush(ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageLayer, Digest: d, Size: info.Size}, time.Now())
		}
	}
}

// early starts the early upload of a layer being converted, when the gate
// allows it.
func (sp *streamedPush) early() *earlyUpload { return sp.gate.start(sp.pushCtx, sp.tmp, sp.pushers) }

// streamLayer converts a layer while the export sends it through the
// session: by the time BuildKit has sent it, it is compressed too.
func (sp *streamedPush) streamLayer(l ocispecs.Descriptor, ls *layerStream) bool {
	return sp.conv.startStream(sp.pushCtx, l, ls, sp.early, func(cv *conversion, at time.Time) { sp.pushConverted(l, at, cv) })
}

// fromBuilder converts a layer reading it from buildkitd's content store,
// faster than through the session (see builderBlobs).
func (sp *streamedPush) fromBuilder(l ocispecs.Descriptor) bool {
	return sp.conv.startFromBuilder(sp.pushCtx, l, sp.early, func(cv *conversion, at time.Time) { sp.pushConverted(l, at, cv) })
}

// openSession is the second phase: one session for every solve, serving
// the local mounts, the build's attachables and the export store.
func (sp *streamedPush) openSession(c *client.Client, so client.SolveOpt) error {
	sessCtx, stopSession := context.WithCancel(context.WithoutCancel(sp.pushCtx))
	s, err := session.NewSession(sessCtx, "")
	if err != nil {
		stopSession()
		return err
	}
	s.Allow(filesync.NewFSSyncProvider(sp.dirs))
	for _, a := range so.Session {
		s.Allow(a)
	}
	sp.conv.builder = newBuilderBlobs(c.ContentClient())
	// BuildKit sends only the layers the registry lacks, and each layer is
	// converted and uploaded as soon as it has arrived, before BuildKit has
	// finished the export that sent it.
	s.Allow(sessioncontent.NewAttachable(map[string]content.Store{"export": &knownStore{
		Store: sp.store, pushers: sp.pushers, conv: sp.conv,
		committed: sp.committed, stream: sp.streamLayer, fromBuilder: sp.fromBuilder,
	}}))
	sessDone := make(chan error, 1)
	go func() { sessDone <- s.Run(sessCtx, c.Dialer()) }()
	sp.session = s
	sp.cleanup = append(sp.cleanup, func() {
		stopSession()
		<-sessDone
	})
	return nil
}

// exportAttrs are the OCI exporter's attributes for every solve: layers
// uncompressed (strata compresses them), into the client-side store.
var exportAttrs = map[string]string{"compression": "uncompressed", "oci-mediatypes": "true", "tar": "false"}

// withSession is so for one solve of the push: the shared session and an
// export into the client-side store.
func (sp *streamedPush) withSession(so client.SolveOpt, attrs map[string]string) client.SolveOpt {
	so.SharedSession, so.SessionPreInitialized = sp.session, true
	so.Exports = []client.ExportEntry{{Type: client.ExporterOCI, Attrs: attrs, OutputStore: sp.store}}
	return so
}

// solve is the third phase: the main solve, with the prefix chain beside it.
func (sp *streamedPush) solve(ctx context.Context, c *client.Client, so client.SolveOpt) (*client.SolveResponse, time.Duration, error) {
	mainAttrs := clone(exportAttrs)
	mainAttrs["name"] = strings.Join(sp.opt.Tags, ",")
	// The image's created and history times are set by the exporter; the
	// layers' file times by strata's converter.
	if sp.opt.SourceDateEpoch != "" {
		mainAttrs[exporterEpoch] = sp.opt.SourceDateEpoch
	}
	mainOpt := sp.withSession(so, mainAttrs)
	mainOpt.CacheExports = []client.CacheOptionsEntry{{Type: "inline"}}

	stopChain := make(chan struct{})
	chainDone := make(chan struct{})
	chainCtx, cancelChain := context.WithCancel(ctx)
	defer cancelChain()
	go func() {
		defer close(chainDone)
		sp.prefixChain(chainCtx, c, so, stopChain)
	}()

	solveStart := time.Now()
	resp, err := c.Build(ctx, mainOpt, frontend.Name, frontend.Build, sp.p.channel())
	close(stopChain)
	solveTime := time.Since(solveStart)
	// The main export has offered every layer of the image, and each one
	// it did not take is read, converted or in the registry: a prefix
	// still solving can only offer the same layers again.
	cancelChain()
	<-chainDone
	return resp, solveTime, err
}

// prefixChain solves the prefixes in order, each when the one before it has
// been exported, none once stop is closed, and converts and uploads each
// prefix's new layers.
func (sp *streamedPush) prefixChain(ctx context.Context, c *client.Client, so client.SolveOpt, stop <-chan struct{}) {
	for i := range sp.prefixes {
		select {
		case <-stop:
			return
		default:
		}
		attrs := clone(so.FrontendAttrs)
		attrs["dockerfilekey"] = fmt.Sprintf("prefix-%d", i+1)
		popt := sp.withSession(so, clone(exportAttrs))
		popt.FrontendAttrs = attrs
		popt.CacheImports = so.CacheImports
		resp, err := c.Build(ctx, popt, frontend.Name, frontend.Build, sp.p.quietChannel())
		if err != nil {
			return // the main solve reports build errors; its export covers the rest
		}
		desc, err := exportedDescriptor(resp.ExporterResponse)
		if err != nil {
			return
		}
		ls, err := push.Layers(ctx, sp.store, desc)
		if err != nil {
			return
		}
		at := time.Now()
		for _, l := range ls {
			if sp.conv.converts(l) {
				sp.convertAndPush(l, at)
				continue
			}
			sp.layers.builtAt(l, at)
			for _, ps := range sp.pushers {
				ps.PushBlob(sp.pushCtx, l)
			}
		}
	}
}

// finishImage is the fourth phase: the image the main solve exported, with
// its layers converted, the cache sources' inline cache records restored,
// the COPY sources recorded and the cache records' times set; resp then
// describes that image.
func (sp *streamedPush) finishImage(ctx context.Context, resp map[string]string) (ocispecs.Descriptor, error) {
	exported, err := exportedDescriptor(resp)
	if err != nil {
		return exported, err
	}
	at := time.Now()
	desc, err := sp.conv.convertImage(sp.pushCtx, exported, func(l ocispecs.Descriptor) *conversion { return sp.convertAndPush(l, at) })
	if err == nil {
		desc, err = sp.imported.apply(ctx, sp.store, desc)
	}
	if err == nil {
		desc, err = sp.sources.apply(ctx, sp.store, desc)
	}
	if stamp := sp.opt.epoch(); stamp != nil && err == nil {
		desc, err = normalizeCacheTimes(ctx, sp.store, desc, *stamp)
	}
	if err != nil {
		return desc, err
	}
	if desc.Digest != exported.Digest {
		setExportedDescriptor(ctx, sp.store, resp, desc)
	}
	ls, err := push.Layers(ctx, sp.store, desc)
	if err != nil {
		return desc, err
	}
	sp.layers.image(ls)
	for _, l := range ls {
		if n := sp.conv.sizeOf(l.Digest); n > 0 {
			sp.layers.sized(l.Digest, n)
		}
	}
	return desc, nil
}

// pushAndTag is the last phase: every repository holds all of the image,
// manifest included, before any tag moves.
func (sp *streamedPush) pushAndTag(desc ocispecs.Descriptor) error {
	var err error
	vs := make([]*vertex, 0, len(sp.pushers))
	for _, ps := range sp.pushers {
		if err != nil {
			break
		}
		vs = append(vs, sp.p.vertex(fmt.Sprintf("[strata] pushing %s", strings.Join(tagNames(sp.tags[ps.repo]), ", "))))
		err = ps.PushContent(sp.pushCtx, desc)
	}
	for i, v := range vs {
		if err == nil {
			err = sp.pushers[i].Tag(sp.pushCtx, desc, sp.tags[sp.pushers[i].repo])
		}
		v.done(err)
	}
	return err
}
