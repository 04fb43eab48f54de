package stream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/moby/buildkit/client"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// finisher finishes the image as soon as the main export has written its
// manifest, not when the main solve returns: BuildKit records the build in
// its history (provenance, logs) between the two, tens of milliseconds in
// which strata converts what is left, restores the cache records, uploads
// the config and waits for the last layers. Only the tags wait for the
// solve's success.
//
// The export's manifest is known from its progress (see exported); the
// OCI exporter then copies it into the client-side store last, after every
// blob it references, and the image exporter leaves it in buildkitd's
// content store.
type finisher struct {
	sp *streamedPush
	// stopChain ends the prefix chain: once the main export has offered
	// every layer of the image, a prefix can only offer them again.
	stopChain func()

	ctx    context.Context
	cancel context.CancelFunc
	solved chan struct{} // closed when the main solve has returned

	// finish makes the image whose manifest is d complete (f.image).
	finish func(d digest.Digest) (ocispecs.Descriptor, error)

	once     sync.Once
	started  bool          // read once solved is closed
	manifest digest.Digest // the main export's manifest
	done     chan struct{}
	desc     ocispecs.Descriptor // the image finished, its blobs in every repository
	err      error
}

// errNotEarly says the image could not be finished before the solve ended:
// the push goes on from the solve's response.
var errNotEarly = errors.New("the image is finished from the solve's response")

func newFinisher(ctx context.Context, sp *streamedPush, stopChain func()) *finisher {
	f := &finisher{sp: sp, stopChain: stopChain, solved: make(chan struct{}), done: make(chan struct{})}
	f.ctx, f.cancel = context.WithCancel(ctx)
	f.finish = f.image
	return f
}

// watch passes the main solve's statuses from the returned channel to out,
// and starts finishing the image once they say the export has written its
// manifest and its config. It closes out once the solve has closed the
// returned channel.
func (f *finisher) watch(out chan *client.SolveStatus) chan *client.SolveStatus {
	in := make(chan *client.SolveStatus)
	go func() {
		defer close(out)
		var manifest digest.Digest
		config := false
		for st := range in {
			for _, s := range st.Statuses {
				if d, ok := exported(s, "manifest"); ok {
					manifest = d
				} else if _, ok := exported(s, "config"); ok {
					config = true
				}
				if manifest != "" && config {
					f.start(manifest)
				}
			}
			out <- st
		}
	}()
	return in
}

// exported is the digest of the image's manifest or config (what) that s
// reports written, once it is: BuildKit's image writer reports each as
// "exporting manifest sha256:…" and "exporting config sha256:…" when the
// blob is in buildkitd's content store.
func exported(s *client.VertexStatus, what string) (digest.Digest, bool) {
	prefix := "exporting " + what + " "
	if s.Completed == nil || !strings.HasPrefix(s.ID, prefix) {
		return "", false
	}
	d, err := digest.Parse(strings.TrimPrefix(s.ID, prefix))
	return d, err == nil
}

func (f *finisher) start(d digest.Digest) {
	f.once.Do(func() {
		f.started, f.manifest = true, d
		go func() {
			defer close(f.done)
			f.desc, f.err = f.finish(d)
		}()
	})
}

// solveEnded says the main solve has returned; a finish not started is not
// started anymore.
func (f *finisher) solveEnded() {
	f.once.Do(func() { close(f.done) })
	close(f.solved)
}

// image makes the image whose manifest is d complete: in the client-side
// store, converted, edited, and every blob it references in every
// repository.
func (f *finisher) image(d digest.Digest) (ocispecs.Descriptor, error) {
	sp := f.sp
	if err := f.arrived(d); err != nil {
		return ocispecs.Descriptor{}, err
	}
	dt, err := content.ReadBlob(f.ctx, sp.store, ocispecs.Descriptor{Digest: d})
	if err != nil {
		return ocispecs.Descriptor{}, errNotEarly
	}
	var mf struct {
		MediaType string `json:"mediaType"`
	}
	if json.Unmarshal(dt, &mf) != nil || (mf.MediaType != ocispecs.MediaTypeImageManifest && mf.MediaType != images.MediaTypeDockerSchema2Manifest) {
		return ocispecs.Descriptor{}, errNotEarly
	}
	exported := ocispecs.Descriptor{MediaType: mf.MediaType, Digest: d, Size: int64(len(dt))}
	if sp.imageExport && !sp.complete(f.ctx, exported) {
		return ocispecs.Descriptor{}, errNotEarly
	}
	f.stopChain()
	resp := map[string]string{}
	setExportedDescriptor(f.ctx, sp.store, resp, exported)
	desc, err := sp.finishImage(f.ctx, resp)
	if err != nil {
		return desc, err
	}
	return desc, sp.pushContent(f.ctx, desc)
}

// arrived waits for the manifest d to be in the client-side store: copied
// from buildkitd's content store when the image exporter wrote it, else
// written by the OCI exporter through the session. It fails with
// errNotEarly when the solve ends first.
func (f *finisher) arrived(d digest.Digest) error {
	sp := f.sp
	desc := ocispecs.Descriptor{Digest: d}
	if sp.imageExport {
		if sp.readImage(f.ctx, desc) != nil {
			return errNotEarly
		}
		return nil
	}
	in := sp.arrivals.wait(d)
	if _, err := sp.store.Info(f.ctx, d); err == nil {
		return nil
	}
	select {
	case <-in:
		return nil
	case <-f.solved:
		// The blob may have arrived just before the solve returned.
		if _, err := sp.store.Info(f.ctx, d); err == nil {
			return nil
		}
		return errNotEarly
	case <-f.ctx.Done():
		return errNotEarly
	}
}

// result is the image finished beside the solve when it is the one resp
// describes: ok is false when the push is to go on from resp instead.
func (f *finisher) result(resp map[string]string) (ocispecs.Descriptor, bool, error) {
	<-f.done
	if !f.started || errors.Is(f.err, errNotEarly) {
		return ocispecs.Descriptor{}, false, nil
	}
	if exported, err := exportedDescriptor(resp); err != nil || exported.Digest != f.manifest {
		return ocispecs.Descriptor{}, false, nil
	}
	if f.err != nil {
		return f.desc, true, f.err
	}
	setExportedDescriptor(f.ctx, f.sp.store, resp, f.desc)
	return f.desc, true, nil
}

// abandon stops the finish and waits for it to end.
func (f *finisher) abandon() {
	f.cancel()
	<-f.done
}

// arrivals tells who waits for a blob that it is in the client-side store.
type arrivals struct {
	mu   sync.Mutex
	seen map[digest.Digest]chan struct{}
}

// wait returns a channel closed once d has been committed to the store
// (after wait was called, or before it).
func (a *arrivals) wait(d digest.Digest) <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.channel(d)
}

// committed says d has been committed to the store.
func (a *arrivals) committed(d digest.Digest) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ch := a.channel(d)
	select {
	case <-ch:
	default:
		close(ch)
	}
}

func (a *arrivals) channel(d digest.Digest) chan struct{} {
	if a.seen == nil {
		a.seen = map[digest.Digest]chan struct{}{}
	}
	ch, ok := a.seen[d]
	if !ok {
		ch = make(chan struct{})
		a.seen[d] = ch
	}
	return ch
}

// pushContent uploads what the image desc references to every
// repository: with more than one, each one's manifest by digest too, so
// that no tag anywhere moves before every repository holds all of the
// image.
func (sp *streamedPush) pushContent(ctx context.Context, desc ocispecs.Descriptor) error {
	for _, ps := range sp.pushers {
		what := strings.Join(tagNames(sp.tags[ps.repo]), ", ")
		if sp.cfg.Untagged {
			what = fmt.Sprintf("the %s image to %s", sp.cfg.Platform, ps.repo)
		}
		sp.pushEnds = append(sp.pushEnds, sp.p.Begin("[strata] pushing "+what))
		var err error
		if len(sp.pushers) == 1 {
			err = ps.PushReferenced(ctx, desc)
		} else {
			err = ps.PushContent(ctx, desc)
		}
		if err != nil {
			sp.endPushes(err)
			return err
		}
	}
	return nil
}

// tag is the last phase: the image's tags move in every repository, once
// each holds all of it (with Config.Untagged, its manifest goes in by
// digest).
func (sp *streamedPush) tag(desc ocispecs.Descriptor) error {
	var err error
	for _, ps := range sp.pushers {
		tags := sp.tags[ps.repo]
		if sp.cfg.Untagged {
			tags = nil // by digest: PushIndex tags the index over it
		}
		if err = ps.Tag(sp.pushCtx, desc, tags); err != nil {
			break
		}
	}
	sp.endPushes(err)
	return err
}

// endPushes ends the progress of each repository's push.
func (sp *streamedPush) endPushes(err error) {
	for _, end := range sp.pushEnds {
		end(err)
	}
	sp.pushEnds = nil
}
