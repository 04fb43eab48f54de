package build

import (
	"context"
	"encoding/base64"
	"encoding/json"
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
	"github.com/strata-build/strata/regnet"
)

// Layer is one pushed layer as the metadata file reports it. Times are
// seconds since the build started.
type Layer struct {
	Digest digest.Digest `json:"digest"`
	Size   int64         `json:"compressedSize"`
	// Bytes is the uncompressed size of a layer strata compressed; 0 for
	// one BuildKit took from the base image or a cache source as it was.
	Bytes     int64   `json:"size,omitempty"`
	Built     float64 `json:"built"`               // when BuildKit exported it to strata
	Converted float64 `json:"converted,omitempty"` // when strata had compressed it
	Pushed    float64 `json:"pushed"`              // when the registry had it
	Uploaded  int64   `json:"uploadedBytes"`
	// Early says the layer was uploaded while it was compressed, before
	// its digest was known (into a repository with no tags yet).
	Early bool `json:"early,omitempty"`
	// MountedFrom is the repository of the same registry the layer was
	// mounted from, with nothing uploaded (a cache source's, for a layer
	// the build reused).
	MountedFrom string `json:"mountedFrom,omitempty"`
}

// runStreamed builds opt and pushes its image with layers uploaded while the
// build still runs.
//
// Beside the main solve, strata solves each prefix of the target stage (the
// Dockerfile cut after each RUN, COPY or ADD), one after another, every one
// exported to a client-side OCI store. All solves share one session, so
// BuildKit runs each step once for all of them; each prefix export offers
// only the layers the store lacks, uncompressed, and strata reads each from
// buildkitd's content store (see builderBlobs), compresses it and uploads it
// as it reads (see converter). When the main
// solve ends, strata uploads what is left, then the manifest and its tags,
// only after every blob is confirmed present.
func runStreamed(ctx context.Context, c *client.Client, opt Options, so client.SolveOpt, bc *buildcontext.Context, contextDir, dockerfile string, p *progress) (*Result, error) {
	start := time.Now()
	sourcesCtx, stopSources := context.WithCancel(ctx)
	defer stopSources()
	sources := recordSources(sourcesCtx, opt, bc, contextDir, dockerfile)
	platform := ""
	if len(opt.Platforms) == 1 {
		platform = opt.Platforms[0]
	}
	imported := readImportedRecords(sourcesCtx, so.CacheImports, platform, opt.InsecureRegistries)
	dt, err := os.ReadFile(dockerfile)
	if err != nil {
		return nil, errs.Inputf("%s: %v", dockerfile, err)
	}
	prefixes, err := prefixDockerfiles(dt, opt.Target, opt.CachedThrough)
	if err != nil {
		// The main solve reports the parse error with its location.
		prefixes = nil
	}
	tmp, err := os.MkdirTemp("", "strata-push-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	store, err := contentlocal.NewStore(filepath.Join(tmp, "store"))
	if err != nil {
		return nil, err
	}

	dirs := filesync.StaticDirSource{}
	for k, v := range so.LocalMounts {
		dirs[k] = v
	}
	// BuildKit reads <Dockerfile>.dockerignore from beside the Dockerfile
	// before the context's .dockerignore: each prefix needs it too, or its
	// COPY layers would differ from the final image's.
	ignore, err := os.ReadFile(dockerfile + ".dockerignore")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, errs.Inputf("%s.dockerignore: %v", dockerfile, err)
	}
	for i, dt := range prefixes {
		dir := filepath.Join(tmp, fmt.Sprintf("prefix-%d", i+1))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(dockerfile)), dt, 0o600); err != nil {
			return nil, err
		}
		if ignore != nil {
			if err := os.WriteFile(filepath.Join(dir, filepath.Base(dockerfile)+".dockerignore"), ignore, 0o600); err != nil {
				return nil, err
			}
		}
		if dirs[filepath.Base(dir)], err = fsutil.NewFS(dir); err != nil {
			return nil, err
		}
	}

	layers := newLayerLog(start, p)
	pushers, tags, err := newPushers(store, opt.Tags, layers.pushed, targetBase(dt, opt.Target), imported.source, opt.InsecureRegistries)
	if err != nil {
		return nil, err
	}
	// BuildKit exports the layers it makes uncompressed; strata rewrites
	// their timestamps and compresses them while the build goes on.
	var epoch *time.Time
	if opt.Reproducible {
		epoch = opt.epoch()
	}
	memo := openLayerMemo(defaultMemoPath())
	defer func() { _ = memo.save() }()
	conv := newConverter(store, opt.Compression, epoch, memo)

	// Uploads end with this build: a failed build leaves none running.
	pushCtx, cancelPush := context.WithCancel(ctx)
	defer cancelPush()

	// pushConverted uploads what a layer BuildKit exported at t became;
	// convertAndPush converts the layer first. An error is reported by the
	// image's conversion.
	pushConverted := func(l ocispecs.Descriptor, t time.Time, cv *conversion) {
		layers.converted(l, t, cv, conv.compression)
		if cv.err == nil {
			for _, ps := range pushers {
				ps.PushBlob(pushCtx, cv.desc)
			}
		}
		// The uncompressed layer is not needed once converted: the store
		// answers later exports that it has it (see knownStore). So the
		// store holds little more than the compressed layers, and
		// removing it at the end is quick.
		if cv.err == nil && cv.desc.Digest != l.Digest {
			_ = store.Delete(context.WithoutCancel(pushCtx), l.Digest)
		}
	}
	convertAndPush := func(l ocispecs.Descriptor, t time.Time) *conversion {
		return conv.start(pushCtx, l, func(cv *conversion) { pushConverted(l, t, cv) })
	}

	sessCtx, stopSession := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSession()
	s, err := session.NewSession(sessCtx, "")
	if err != nil {
		return nil, err
	}
	s.Allow(filesync.NewFSSyncProvider(dirs))
	for _, a := range so.Session {
		s.Allow(a)
	}
	// BuildKit sends only the layers the registry lacks, and each layer is
	// converted and uploaded as soon as it has arrived, before BuildKit
	// has finished the export that sent it.
	committed := func(d digest.Digest) {
		if isTar(pushCtx, store, d) {
			if info, err := store.Info(pushCtx, d); err == nil {
				convertAndPush(ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageLayer, Digest: d, Size: info.Size}, time.Now())
			}
		}
	}
	// A layer is converted while it arrives: by the time BuildKit has sent
	// it, it is compressed too. Into repositories that hold nothing yet, it
	// is uploaded while it is converted as well (see earlyGate).
	gate := newEarlyGate(pushCtx, pushers)
	early := func() *earlyUpload { return gate.start(pushCtx, tmp, pushers) }
	stream := func(l ocispecs.Descriptor, ls *layerStream) bool {
		return conv.startStream(pushCtx, l, ls, early, func(cv *conversion, at time.Time) { pushConverted(l, at, cv) })
	}
	// Faster still, a layer is read from buildkitd's content store rather
	// than sent through the session (see builderBlobs).
	conv.builder = newBuilderBlobs(c.ContentClient())
	fromBuilder := func(l ocispecs.Descriptor) bool {
		return conv.startFromBuilder(pushCtx, l, early, func(cv *conversion, at time.Time) { pushConverted(l, at, cv) })
	}
	s.Allow(sessioncontent.NewAttachable(map[string]content.Store{"export": &knownStore{Store: store, pushers: pushers, conv: conv, committed: committed, stream: stream, fromBuilder: fromBuilder}}))
	sessDone := make(chan error, 1)
	go func() { sessDone <- s.Run(sessCtx, c.Dialer()) }()
	defer func() {
		stopSession()
		<-sessDone
	}()

	exportAttrs := map[string]string{"compression": "uncompressed", "oci-mediatypes": "true", "tar": "false"}
	withSession := func(so client.SolveOpt, attrs map[string]string) client.SolveOpt {
		so.SharedSession, so.SessionPreInitialized = s, true
		so.Exports = []client.ExportEntry{{Type: client.ExporterOCI, Attrs: attrs, OutputStore: store}}
		return so
	}
	mainAttrs := clone(exportAttrs)
	mainAttrs["name"] = strings.Join(opt.Tags, ",")
	// The image's created and history times are set by the exporter; the
	// layers' file times by strata's converter.
	if opt.SourceDateEpoch != "" {
		mainAttrs[exporterEpoch] = opt.SourceDateEpoch
	}
	mainOpt := withSession(so, mainAttrs)
	mainOpt.CacheExports = []client.CacheOptionsEntry{{Type: "inline"}}

	// The prefix chain: each prefix starts when the one before it has been
	// exported, and none starts once the main solve has ended.
	stopChain := make(chan struct{})
	chainDone := make(chan struct{})
	chainCtx, cancelChain := context.WithCancel(ctx)
	defer cancelChain()
	go func() {
		defer close(chainDone)
		for i := range prefixes {
			select {
			case <-stopChain:
				return
			default:
			}
			attrs := clone(so.FrontendAttrs)
			attrs["dockerfilekey"] = fmt.Sprintf("prefix-%d", i+1)
			popt := withSession(so, clone(exportAttrs))
			popt.FrontendAttrs = attrs
			popt.CacheImports = so.CacheImports
			resp, err := c.Build(chainCtx, popt, frontend.Name, frontend.Build, p.quietChannel())
			if err != nil {
				return // the main solve reports build errors; its export covers the rest
			}
			desc, err := exportedDescriptor(resp.ExporterResponse)
			if err != nil {
				return
			}
			ls, err := push.Layers(chainCtx, store, desc)
			if err != nil {
				return
			}
			at := time.Now()
			for _, l := range ls {
				if conv.converts(l) {
					convertAndPush(l, at)
					continue
				}
				layers.builtAt(l, at)
				for _, ps := range pushers {
					ps.PushBlob(pushCtx, l)
				}
			}
		}
	}()

	solveStart := time.Now()
	resp, err := c.Build(ctx, mainOpt, frontend.Name, frontend.Build, p.channel())
	close(stopChain)
	solveTime := time.Since(solveStart)
	// The main export has offered every layer of the image, and each one
	// it did not take is read, converted or in the registry: a prefix
	// still solving can only offer the same layers again.
	cancelChain()
	<-chainDone
	if err != nil {
		_, _, _ = p.wait()
		return nil, err
	}

	exported, err := exportedDescriptor(resp.ExporterResponse)
	desc := exported
	if err == nil {
		at := time.Now()
		desc, err = conv.convertImage(pushCtx, desc, func(l ocispecs.Descriptor) *conversion { return convertAndPush(l, at) })
	}
	if err == nil {
		desc, err = imported.apply(ctx, store, desc)
	}
	if err == nil {
		desc, err = sources.apply(ctx, store, desc)
	}
	if stamp := opt.epoch(); stamp != nil && err == nil {
		desc, err = normalizeCacheTimes(ctx, store, desc, *stamp)
	}
	if err == nil && desc.Digest != exported.Digest {
		setExportedDescriptor(ctx, store, resp.ExporterResponse, desc)
	}
	if err == nil {
		var ls []ocispecs.Descriptor
		if ls, err = push.Layers(ctx, store, desc); err == nil {
			layers.image(ls)
			for _, l := range ls {
				if n := conv.sizeOf(l.Digest); n > 0 {
					layers.sized(l.Digest, n)
				}
			}
		}
	}
	// Every repository holds all of the image, manifest included, before
	// any tag moves.
	vs := make([]*vertex, 0, len(pushers))
	for _, ps := range pushers {
		if err != nil {
			break
		}
		vs = append(vs, p.vertex(fmt.Sprintf("[strata] pushing %s", strings.Join(tagNames(tags[ps.repo]), ", "))))
		err = ps.PushContent(pushCtx, desc)
	}
	for i, v := range vs {
		if err == nil {
			err = pushers[i].Tag(pushCtx, desc, tags[pushers[i].repo])
		}
		v.done(err)
	}
	warnings, steps, perr := p.wait()
	if err != nil {
		return nil, err
	}
	if perr != nil {
		return nil, perr
	}
	var sent int64
	for _, ps := range pushers {
		sent += ps.BytesSent()
	}
	return &Result{
		ExporterResponse: resp.ExporterResponse,
		Warnings:         warnings,
		Steps:            steps,
		Pulled:           p.pulls.total(),
		Timings:          Timings{Solve: solveTime.Seconds()},
		Push:             &PushStats{BytesPushed: sent, Layers: layers.list(), Streamed: true},
	}, nil
}

// exportedDescriptor is the descriptor of the image an export produced.
func exportedDescriptor(resp map[string]string) (ocispecs.Descriptor, error) {
	var desc ocispecs.Descriptor
	if v := resp["containerimage.descriptor"]; v != "" {
		dt, err := base64.StdEncoding.DecodeString(v)
		if err == nil && json.Unmarshal(dt, &desc) == nil && desc.Digest != "" {
			return desc, nil
		}
	}
	return desc, fmt.Errorf("the export returned no image descriptor")
}

// setExportedDescriptor records the image strata pushes in the response:
// its manifest descriptor and digest, and its config's digest.
func setExportedDescriptor(ctx context.Context, store content.Provider, resp map[string]string, desc ocispecs.Descriptor) {
	if dt, err := json.Marshal(desc); err == nil {
		resp["containerimage.descriptor"] = base64.StdEncoding.EncodeToString(dt)
	}
	resp["containerimage.digest"] = desc.Digest.String()
	delete(resp, "containerimage.config.digest")
	var mf ocispecs.Manifest
	if dt, err := content.ReadBlob(ctx, store, desc); err == nil && json.Unmarshal(dt, &mf) == nil && mf.Config.Digest != "" {
		resp["containerimage.config.digest"] = mf.Config.Digest.String()
	}
}

// pusher is a push.Pusher for one repository.
type pusher struct {
	*push.Pusher
	repo string
}

// newPushers makes one pusher per repository named by tags.
// A blob is mounted from the repository sources names for it, else from
// the base image's, when that is on the same registry.
func newPushers(store content.Provider, refs []string, events func(push.Event), base string,
	sources func(context.Context, name.Repository, digest.Digest) (name.Repository, bool), insecure []string) ([]*pusher, map[string][]name.Tag, error) {
	popts := []push.Option{push.WithEvents(events), push.WithInsecureRegistries(insecure...), push.WithBlobSources(sources)}
	if base != "" {
		if b, err := name.ParseReference(base, nameOptions(base, insecure)...); err == nil {
			popts = append(popts, push.WithMountFrom(b))
		}
	}
	byRepo := map[string][]name.Tag{}
	var pushers []*pusher
	for _, r := range refs {
		t, err := name.NewTag(r, nameOptions(r, insecure)...)
		if err != nil {
			return nil, nil, errs.WithHint(errs.Usagef("--tag %s: %v", r, err), "use REGISTRY/REPOSITORY[:TAG]")
		}
		repo := t.Context().String()
		if _, ok := byRepo[repo]; !ok {
			pp, err := push.New(t.Context(), store, popts...)
			if err != nil {
				return nil, nil, err
			}
			pushers = append(pushers, &pusher{Pusher: pp, repo: repo})
		}
		byRepo[repo] = append(byRepo[repo], t)
	}
	return pushers, byRepo, nil
}

// nameOptions allows plain HTTP where regnet does: registries on the
// loopback interface, as BuildKit and docker do, and those named insecure.
func nameOptions(ref string, insecure []string) []name.Option {
	host, _, _ := strings.Cut(ref, "/")
	if regnet.PlainHTTP(host, insecure) {
		return []name.Option{name.Insecure}
	}
	return nil
}

func tagNames(ts []name.Tag) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.String()
	}
	return out
}

func clone(m map[string]string) map[string]string {
	c := make(map[string]string, len(m)+2)
	for k, v := range m {
		c[k] = v
	}
	return c
}
