package stream

import (
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/session"
	sessioncontent "github.com/moby/buildkit/session/content"
	"github.com/moby/buildkit/session/filesync"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-build/strata/frontend"
	"github.com/strata-build/strata/push"
)

// Config is what one streamed push needs beside the solve options.
type Config struct {
	// Tags are the references pushed to, in order; their repositories
	// get the image's blobs.
	Tags     []string
	Insecure []string // registries reached over plain HTTP
	// Platform is the one platform built ("" for the builder's): the
	// cache sources' records are read for it.
	Platform string
	// Compression of the layers the build creates: gzip ("" too), zstd
	// or uncompressed.
	Compression string
	// Epoch, when not nil, is SOURCE_DATE_EPOCH: the image's created,
	// history and cache record times.
	Epoch *time.Time
	// ClampFileTimes sets file times later than Epoch in new layers to
	// Epoch.
	ClampFileTimes bool
	// Dockerfile is the Dockerfile's path; a copy of its
	// <Dockerfile>.dockerignore goes beside each prefix.
	Dockerfile string
	// Prefixes are the Dockerfiles cut after each step whose layer goes
	// up before the build ends, in order.
	Prefixes []Prefix
	// Base is the target stage's base image: layers are mounted from its
	// repository when it is on the same registry.
	Base string
	// Edits change the image once its layers are converted and its cache
	// records restored, before it is pushed (the COPY sources recorded in
	// its history).
	Edits []ImageEdit
	// MemoPath is the file remembering conversions across builds; ""
	// for none.
	MemoPath string
	// Lazy: the builder pulls eStargz layers lazily (see builder.PullsLazily).
	Lazy bool
	// RewriteAll rewrites every gzip layer taken from the base image or a
	// cache source as eStargz on a builder that pulls lazily; otherwise
	// only up to rewriteLimit bytes of them (see converter.recompresses).
	RewriteAll bool
	// Untagged pushes the image's manifest by digest only: it is one
	// platform's image of an index that PushIndex then tags.
	Untagged bool
	// Late, when set, waits for the cache choice still being made when
	// the push starts. The solves start with the solve options' cache
	// imports only; the main solve's frontend takes the chosen ones when
	// it sends the build (see frontend.InProcess's Late), the prefix
	// chain before its first solve. On a builder that pulls lazily the
	// push waits for it first: where the cache sources are decides how
	// the image is exported (see oneRegistry).
	Late func(context.Context) (Chosen, error)
	// Target, when set, is shared with the other pushes of the build
	// (see NewTarget); else the push makes its own.
	Target *Target
	// Resolves, when set, shares the solves' resolves of base images with
	// the cache choice and the build's other solves (frontend.Resolves).
	Resolves *frontend.Resolves
}

// An ImageEdit changes the image before it is pushed. Edits are best
// effort: one not ready within editWait of the build's end is skipped.
type ImageEdit interface {
	// Ready is closed once the edit can be applied.
	Ready() <-chan struct{}
	// Apply rewrites the image manifest desc in store and returns the
	// new manifest's descriptor (desc when nothing changed).
	Apply(ctx context.Context, store content.Store, desc ocispecs.Descriptor) (ocispecs.Descriptor, error)
}

// editWait bounds how long the push waits, once the build is done, for
// what is still being worked out beside it (an edit, the cache sources'
// records).
const editWait = 10 * time.Second

// waitBounded waits for done, at most editWait. It reports whether done
// was closed in time, and the context's error if it ended first.
func waitBounded(ctx context.Context, done <-chan struct{}) (bool, error) {
	wait := time.NewTimer(editWait)
	defer wait.Stop()
	select {
	case <-done:
		return true, nil
	case <-wait.C:
		return false, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// Progress is where a push reports.
type Progress interface {
	// Main is the main solve's status channel, shown to the user.
	Main() chan *client.SolveStatus
	// Quiet is a prefix solve's status channel: counted, not shown.
	Quiet() chan *client.SolveStatus
	// Span reports something strata did, from start to end.
	Span(name string, start, end time.Time, err error)
	// Begin reports something strata starts now; the returned func ends it.
	Begin(name string) func(error)
	// Show reports steps of the main solve strata did in the builder's
	// stead, and warnings about them (frontend.LocalReads).
	Show(st *client.SolveStatus)
}

// Result is what a streamed push did.
type Result struct {
	// ExporterResponse is the main export's response, describing the
	// image pushed.
	ExporterResponse map[string]string
	SolveTime        time.Duration // the main solve's
	BytesSent        int64         // uploaded to every repository (through the target, shared or not)
	Layers           []Layer       // the image's layers
	// Image is the manifest pushed.
	Image ocispecs.Descriptor
	// Blobs are the manifest and config pushed, by digest, for recording
	// the image without reading it back; nil when they could not be read.
	Blobs map[string][]byte
}

// Push builds so on c and pushes its image with layers uploaded while the
// build still runs.
//
// Beside the main solve, strata solves each prefix of the target stage (the
// Dockerfile cut after each RUN, COPY or ADD), one after another, every one
// exported to a client-side OCI store. All solves share one session, so
// BuildKit runs each step once for all of them; each prefix export offers
// only the layers the store lacks, uncompressed, and strata reads each from
// buildkitd's content store (see builderBlobs), compresses it and uploads it
// as it reads (see converter). Once the main export has written the image,
// strata finishes it and uploads what is left while BuildKit still records
// the build (see finisher); the manifest goes under its tags only after
// every blob is confirmed present, and once the solve has succeeded.
//
// The phases, in order: prepare (prefixes, store, pushers, converter), open
// the session, solve (the main solve and the prefix chain beside it),
// finish the image (convert what is left, restore cache records, apply the
// edits, set times) and push its content, tag.
func Push(ctx context.Context, c *client.Client, so client.SolveOpt, cfg Config, p Progress) (*Result, error) {
	if cfg.Lazy {
		var err error
		if so, cfg, err = settle(ctx, so, cfg); err != nil {
			return nil, err
		}
	}
	sp, err := prepare(ctx, c, cfg, so, p)
	if err != nil {
		return nil, err
	}
	defer sp.close()
	if err := sp.openSession(c, so); err != nil {
		return nil, err
	}
	resp, solveTime, fin, err := sp.solve(ctx, c, so)
	if err != nil {
		fin.abandon()
		return nil, err
	}
	desc, early, err := fin.result(resp.ExporterResponse)
	if err != nil {
		return nil, err
	}
	if !early {
		if resp.ExporterResponse, err = sp.collect(ctx, c, so, resp.ExporterResponse); err != nil {
			return nil, err
		}
		if desc, err = sp.finishImage(ctx, resp.ExporterResponse); err != nil {
			return nil, err
		}
		if err := sp.pushContent(sp.pushCtx, desc); err != nil {
			return nil, err
		}
	}
	if err := sp.tag(desc); err != nil {
		return nil, err
	}
	if cfg.Target == nil {
		sp.noteKept(p)
	}
	return &Result{ExporterResponse: resp.ExporterResponse, SolveTime: solveTime, BytesSent: sp.bytesSent(), Layers: sp.layers.list(sp.final), Image: desc, Blobs: sp.manifestAndConfig(ctx, desc)}, nil
}

// manifestAndConfig are the image manifest desc and its config, by digest,
// as the store holds them; nil when either cannot be read.
func (sp *streamedPush) manifestAndConfig(ctx context.Context, desc ocispecs.Descriptor) map[string][]byte {
	mf, mdt, cdt, err := readImageBlobs(ctx, sp.store, desc)
	if err != nil {
		return nil
	}
	return map[string][]byte{desc.Digest.String(): mdt, mf.Config.Digest.String(): cdt}
}

// streamedPush is the state of one streamed push, shared by its phases.
type streamedPush struct {
	*target // where it writes and uploads; the push's own, or shared
	cfg     Config
	p       Progress
	tmp     string                   // the push's temporary directory: the prefixes
	dirs    filesync.StaticDirSource // the session's local mounts, prefixes included
	// imported are the cache sources' records and layers.
	imported *importedRecords
	pushEnds []func(error)   // end each repository's push in the progress
	final    []digest.Digest // the layers of the image pushed, in order
	session  *session.Session
	// imageExport: the solves export with BuildKit's image exporter, and
	// strata reads the image from buildkitd's content store (see
	// imageexport.go); else with the OCI exporter, into the store.
	imageExport bool
	mainAttrs   map[string]string // the main solve's export attributes
	cleanup     []func()
}

// prepare is the first phase: the prefixes' Dockerfiles, and the target
// (the client-side store, the pushers and the converter) unless cfg names
// a shared one.
func prepare(ctx context.Context, c *client.Client, cfg Config, so client.SolveOpt, p Progress) (_ *streamedPush, err error) {
	sp := &streamedPush{cfg: cfg, p: p}
	defer func() {
		if err != nil {
			sp.close()
		}
	}()
	importsCtx, stopImports := context.WithCancel(ctx)
	sp.cleanup = append(sp.cleanup, stopImports)
	sp.imported = readImportedRecords(importsCtx, so.CacheImports, cfg.Late, cfg.Platform, cfg.Insecure)
	if cfg.Target != nil {
		sp.target = cfg.Target.t
	} else {
		if sp.target, err = newTarget(ctx, c, cfg, p); err != nil {
			return nil, err
		}
		sp.cleanup = append(sp.cleanup, sp.target.close)
	}
	sp.addSources(sp.imported)
	if sp.tmp, err = os.MkdirTemp("", "strata-push-"); err != nil {
		return nil, err
	}
	sp.cleanup = append(sp.cleanup, func() { os.RemoveAll(sp.tmp) })
	if err := sp.writePrefixes(so); err != nil {
		return nil, err
	}
	return sp, nil
}

// close ends what the phases started, last first.
func (sp *streamedPush) close() {
	for i := len(sp.cleanup) - 1; i >= 0; i-- {
		sp.cleanup[i]()
	}
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
	sp.imageExport = sp.conv.lazy && oneRegistry(sp.cfg, so.CacheImports) && sp.conv.builder.served(sp.pushCtx)
	s.Allow(sessioncontent.NewAttachable(map[string]content.Store{"export": sp.known}))
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
	so.Exports = []client.ExportEntry{sp.exporter(attrs)}
	return so
}

// solve is the third phase: the main solve, with the prefix chain beside it
// and the image finished as soon as the main export has written it (see
// finisher).
func (sp *streamedPush) solve(ctx context.Context, c *client.Client, so client.SolveOpt) (*client.SolveResponse, time.Duration, *finisher, error) {
	mainAttrs := clone(exportAttrs)
	mainAttrs["name"] = strings.Join(sp.cfg.Tags, ",")
	// The image's created and history times are set by the exporter; the
	// layers' file times by strata's converter.
	if sp.cfg.Epoch != nil {
		mainAttrs["source-date-epoch"] = strconv.FormatInt(sp.cfg.Epoch.Unix(), 10)
	}
	sp.mainAttrs = mainAttrs
	mainOpt := sp.withSession(so, mainAttrs)
	mainOpt.CacheExports = withInline(CompressedCacheExports(so.CacheExports)) // and the user's --cache-to

	stopChain := make(chan struct{})
	chainDone := make(chan struct{})
	chainCtx, cancelChain := context.WithCancel(ctx)
	defer cancelChain()
	go func() {
		defer close(chainDone)
		sp.prefixChain(chainCtx, c, so, stopChain)
	}()
	// The main export has offered every layer of the image, and each one
	// it did not take is read, converted or in the registry: a prefix
	// still solving can only offer the same layers again.
	var stopOnce sync.Once
	endChain := func() {
		stopOnce.Do(func() {
			close(stopChain)
			cancelChain()
		})
	}
	fin := newFinisher(sp.pushCtx, sp, endChain)

	solveStart := time.Now()
	var names stepNames
	resp, err := c.Build(ctx, mainOpt, frontend.Name, names.frontend(sp.frontend(sp.p.Show)), names.watch(fin.watch(sp.p.Main())))
	solveTime := time.Since(solveStart)
	fin.solveEnded()
	endChain()
	<-chainDone
	return resp, solveTime, fin, err
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
	desc, err := sp.conv.convertImage(ctx, exported, func(l ocispecs.Descriptor) *conversion { return sp.convertAndPush(l, at) })
	if err == nil {
		desc, err = sp.imported.apply(ctx, sp.store, desc)
	}
	for _, edit := range sp.cfg.Edits {
		var ready bool
		if err == nil {
			ready, err = waitBounded(ctx, edit.Ready())
		}
		if ready {
			desc, err = edit.Apply(ctx, sp.store, desc)
		}
	}
	if sp.cfg.Epoch != nil && err == nil {
		desc, err = normalizeCacheTimes(ctx, sp.store, desc, *sp.cfg.Epoch)
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
	sp.final = sp.layers.image(ls)
	for _, l := range ls {
		if n := sp.conv.sizeOf(l.Digest); n > 0 {
			sp.layers.sized(l.Digest, n)
		}
	}
	return desc, nil
}

// CompressedCacheExports are the cache exports of a solve whose image
// export writes the layers uncompressed (strata compresses them): BuildKit's
// cache exports take a layer's existing blob unless told to force their
// compression; one that names no compression gets gzip, forced, as a cache
// export of a build that did not stream would have.
func CompressedCacheExports(exports []client.CacheOptionsEntry) []client.CacheOptionsEntry {
	out := make([]client.CacheOptionsEntry, 0, len(exports))
	for _, e := range exports {
		if e.Type != "inline" && e.Attrs["compression"] == "" {
			e.Attrs = clone(e.Attrs)
			e.Attrs["compression"], e.Attrs["force-compression"] = "gzip", "true"
		}
		out = append(out, e)
	}
	return out
}

// withInline is exports with the inline cache export every image strata
// writes carries, once.
func withInline(exports []client.CacheOptionsEntry) []client.CacheOptionsEntry {
	if slices.ContainsFunc(exports, func(e client.CacheOptionsEntry) bool { return e.Type == "inline" }) {
		return exports
	}
	return append(slices.Clip(exports), client.CacheOptionsEntry{Type: "inline"})
}
