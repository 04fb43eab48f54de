package stream

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/docker/go-units"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/moby/buildkit/client"
	digest "github.com/opencontainers/go-digest"
)

// target is where streamed pushes put what they build: the client-side
// store the exports write into (through one knownStore), the converter, one
// pusher per repository and the record of what happened to each layer. A
// push of one platform has one of its own; the pushes of a multi-platform
// build share one (see Target), so that a layer two platforms build alike
// (a COPY of the same files, most often) is converted once and uploaded
// once, and a platform's export is told the store has a layer another
// platform's export already sent.
type target struct {
	dir      string // the target's temporary directory: the store, spools
	store    content.Store
	known    *knownStore // the store as every session's exports see it
	layers   *layerLog
	pushers  []*pusher             // one per target repository
	tags     map[string][]name.Tag // by repository
	conv     *converter
	memo     *layerMemo
	gate     *earlyGate
	arrivals arrivals // blobs written whole into the store
	// pushCtx bounds every upload: a failed build leaves none running.
	pushCtx context.Context

	mu      sync.Mutex
	sources []*importedRecords // every push's cache sources, for mounts

	closers []func()
}

// Target is a target several streamed pushes share (Config.Target): the
// platforms of one multi-platform build.
type Target struct{ t *target }

// NewTarget makes a target for the pushes pushes of the build whose
// shared configuration cfg is (its Tags, Insecure, Compression, Epoch,
// ClampFileTimes, MemoPath, Lazy, RewriteAll and Base), on the builder c;
// uploads stop when ctx ends. Close it once every push has returned. Each
// push may rewrite as much of its base as a push alone (see rewriteLimit).
func NewTarget(ctx context.Context, c *client.Client, cfg Config, pushes int, p Progress) (*Target, error) {
	t, err := newTarget(ctx, c, cfg, p)
	if err != nil {
		return nil, err
	}
	t.conv.sharedBy(pushes)
	return &Target{t: t}, nil
}

// BytesSent is what the target's pushes uploaded, to every repository.
func (t *Target) BytesSent() int64 { return t.t.bytesSent() }

// NoteKept says, once, which gzip layers the pushes left as they were (see
// converter.keptAsGzip).
func (t *Target) NoteKept(p Progress) { t.t.noteKept(p) }

// Close removes what the target kept on disk and stops its uploads.
func (t *Target) Close() { t.t.close() }

// newTarget makes the store, the pushers and the converter, and starts
// reaching the registry while the build runs.
func newTarget(ctx context.Context, c *client.Client, cfg Config, p Progress) (_ *target, err error) {
	t := &target{layers: newLayerLog(time.Now(), p)}
	defer func() {
		if err != nil {
			t.close()
		}
	}()
	if t.dir, err = os.MkdirTemp("", "strata-push-"); err != nil {
		return nil, err
	}
	t.closers = append(t.closers, func() { os.RemoveAll(t.dir) })
	if t.store, err = newPushStore(filepath.Join(t.dir, "store")); err != nil {
		return nil, err
	}
	if t.pushers, t.tags, err = newPushers(t.store, cfg.Tags, t.layers.pushed, cfg.Base, t.source, cfg.Insecure); err != nil {
		return nil, err
	}
	// BuildKit exports the layers it makes uncompressed; strata rewrites
	// their timestamps and compresses them while the build goes on.
	t.memo = openLayerMemo(cfg.MemoPath)
	t.closers = append(t.closers, func() { _ = t.memo.save() })
	var clamp *time.Time
	if cfg.ClampFileTimes {
		clamp = cfg.Epoch
	}
	t.conv = newConverter(t.store, cfg.Compression, clamp, t.memo)
	t.conv.builder = newBuilderBlobs(c.ContentClient())
	t.conv.lazy = cfg.Lazy
	if cfg.RewriteAll {
		t.conv.rewriteLeft = -1
	}
	var cancelPush context.CancelFunc
	t.pushCtx, cancelPush = context.WithCancel(ctx)
	t.closers = append(t.closers, cancelPush)
	// The registry is reached while the build runs, not at the first
	// upload.
	for _, ps := range t.pushers {
		go ps.Connect(t.pushCtx)
	}
	// Into repositories that hold nothing yet, a layer is uploaded while
	// it is converted as well (see earlyGate).
	t.gate = newEarlyGate(t.pushCtx, t.pushers)
	// BuildKit sends only the layers the registry lacks, and each layer is
	// converted and uploaded as soon as it has arrived, before BuildKit has
	// finished the export that sent it.
	t.known = &knownStore{Store: t.store, pushers: t.pushers, conv: t.conv, layers: t, arrivals: &t.arrivals}
	return t, nil
}

// close ends what newTarget started, last first.
func (t *target) close() {
	for i := len(t.closers) - 1; i >= 0; i-- {
		t.closers[i]()
	}
	t.closers = nil
}

// addSources adds a push's cache sources to those layers are mounted from.
func (t *target) addSources(r *importedRecords) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sources = append(t.sources, r)
}

// source is a repository of repo's registry, other than repo, that holds
// layer d in the cache sources of one of the pushes (see
// importedRecords.source).
func (t *target) source(ctx context.Context, repo name.Repository, d digest.Digest) (name.Repository, bool) {
	t.mu.Lock()
	rs := t.sources
	t.mu.Unlock()
	for _, r := range rs {
		if from, ok := r.source(ctx, repo, d); ok {
			return from, true
		}
	}
	return name.Repository{}, false
}

// bytesSent is what the pushers uploaded.
func (t *target) bytesSent() int64 {
	var n int64
	for _, ps := range t.pushers {
		n += ps.BytesSent()
	}
	return n
}

// noteKept says which gzip layers the conversions left as they were, for
// the limit on rewriting them (see converter.recompresses).
func (t *target) noteKept(p Progress) {
	n, size := t.conv.keptAsGzip()
	if n == 0 {
		return
	}
	now := time.Now()
	what, them := "1 gzip layer", "it"
	if n > 1 {
		what, them = fmt.Sprintf("%d gzip layers", n), "them"
	}
	p.Span(fmt.Sprintf("[strata] kept %s (%s) of the base image or cache sources: builders pull %s whole; --force-compression rewrites %s as eStargz (uploaded once)",
		what, units.HumanSize(float64(size)), them, them), now, now, nil)
}
