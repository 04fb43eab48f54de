package stream

import (
	"context"
	"errors"
	"sync/atomic"

	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-build/strata/push"
)

// A layer's compressed bytes normally go to the registry once it is
// converted: its digest is then known, and a HEAD check skips a layer the
// repository holds, so a layer rebuilt unchanged uploads nothing. Where no
// layer of the build can be there already (every repository pushed to has
// no tags yet), strata does not wait for the digest: it sends each layer
// while converting it, so the upload overlaps BuildKit's transfer and the
// compression, and commits it under its digest at the end (see push.Early).

// errEarlyDropped ends an early upload whose layer was not converted from
// its transfer.
var errEarlyDropped = errors.New("the layer was not converted as it arrived")

// earlyGate decides whether layers are uploaded as they are converted.
type earlyGate struct {
	open atomic.Bool
}

// newEarlyGate checks in the background whether every repository is empty;
// the gate stays shut until it knows, and when any check fails.
func newEarlyGate(ctx context.Context, pushers []*pusher) *earlyGate {
	g := &earlyGate{}
	if len(pushers) == 0 {
		return g
	}
	go func() {
		for _, ps := range pushers {
			empty, err := ps.Empty(ctx)
			if err != nil || !empty {
				return
			}
		}
		g.open.Store(true)
	}()
	return g
}

// earlyUpload sends one layer's compressed bytes to every repository as
// the conversion writes them.
type earlyUpload struct {
	sp     *spool
	ups    []*push.Early
	broken bool // a write to the spool failed: the upload is dropped
}

// start returns an early upload of a layer converted now, or nil when the
// gate is shut or the spool cannot be made (the layer then goes up once
// converted).
func (g *earlyGate) start(ctx context.Context, dir string, pushers []*pusher) *earlyUpload {
	if g == nil || !g.open.Load() {
		return nil
	}
	sp, err := newSpool(dir)
	if err != nil {
		return nil
	}
	e := &earlyUpload{sp: sp}
	for _, ps := range pushers {
		e.ups = append(e.ups, ps.Early(ctx, sp.reader()))
	}
	return e
}

// Write takes the conversion's output. It never fails the conversion: a
// spool that cannot take the bytes only drops the early upload.
func (e *earlyUpload) Write(p []byte) (int, error) {
	if !e.broken {
		if _, err := e.sp.Write(p); err != nil {
			e.broken = true
		}
	}
	return len(p), nil
}

// end commits the upload as desc, the layer the conversion made; with desc
// nil (the conversion failed, or was done again from the store) it drops
// the upload.
func (e *earlyUpload) end(desc *ocispecs.Descriptor) {
	if desc == nil || e.broken {
		e.sp.close(errEarlyDropped)
		for _, u := range e.ups {
			u.Abort()
		}
		return
	}
	e.sp.close(nil)
	for _, u := range e.ups {
		u.Finish(*desc)
	}
}
