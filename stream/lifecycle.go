package stream

import (
	"context"
	"io"
	"time"

	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// A layerSource is where a conversion reads a layer's uncompressed bytes:
// the client-side store (storeSource), the export's transfer through the
// session (transferSource, streamconv.go) or buildkitd's content store
// (builderSource, builderblobs.go). Every conversion, whatever its source,
// goes through one lifecycle (see begin).
type layerSource interface {
	// paced reports whether a transfer paces the conversion: it then
	// takes no turn, and may feed an early upload.
	paced() bool
	// read converts desc into cv, the converted bytes going to tee too
	// when it is not nil. It returns when the layer was whole, and gone
	// when the source lost the layer: the conversion is then forgotten,
	// so that a later write of the layer starts another.
	read(ctx context.Context, c *converter, desc ocispecs.Descriptor, cv *conversion, tee io.Writer) (at time.Time, gone error)
	// again converts desc once more after read failed while the source
	// did not; it returns as read does.
	again(ctx context.Context, c *converter, desc ocispecs.Descriptor, cv *conversion) (at time.Time, gone error)
}

// storeSource reads a layer the store holds whole, exported at at.
type storeSource struct{ at time.Time }

func (storeSource) paced() bool { return false }

func (s storeSource) read(ctx context.Context, c *converter, desc ocispecs.Descriptor, cv *conversion, _ io.Writer) (time.Time, error) {
	c.convertInTurn(ctx, desc, cv)
	return s.at, nil
}

// again: the store's bytes are all there is; the error stands.
func (s storeSource) again(context.Context, *converter, ocispecs.Descriptor, *conversion) (time.Time, error) {
	return s.at, nil
}

// start converts desc from the store in the background unless a
// conversion of desc was started before; it returns the conversion. done,
// when not nil, is called with the outcome.
func (c *converter) start(ctx context.Context, desc ocispecs.Descriptor, done func(*conversion)) *conversion {
	var then func(*conversion, time.Time)
	if done != nil {
		then = func(cv *conversion, _ time.Time) { done(cv) }
	}
	cv, _ := c.begin(ctx, desc, storeSource{}, nil, then)
	return cv
}

// begin converts desc from src in the background, unless a conversion of
// desc was recorded before: then it returns that one, and false. When src
// is paced, early (when not nil) may give an upload that gets the
// converted bytes as they are made; it is ended before done is called.
// done, when not nil, is called with the outcome and the time the layer
// was whole, unless src lost the layer.
func (c *converter) begin(ctx context.Context, desc ocispecs.Descriptor, src layerSource, early func() *earlyUpload, done func(*conversion, time.Time)) (*conversion, bool) {
	c.mu.Lock()
	if cv, ok := c.jobs[desc.Digest]; ok {
		c.mu.Unlock()
		return cv, false
	}
	cv := &conversion{done: make(chan struct{}), src: src}
	c.jobs[desc.Digest] = cv
	c.mu.Unlock()
	var up *earlyUpload
	if src.paced() && early != nil {
		up = early()
	}
	go c.run(ctx, desc, cv, up, done)
	return cv, true
}

// run is one conversion's lifecycle: read from the source; end the early
// upload, which stands only when that read did; read once more when the
// source still has the layer; then forget the conversion (the source lost
// the layer) or remember, settle and report it.
func (c *converter) run(ctx context.Context, desc ocispecs.Descriptor, cv *conversion, up *earlyUpload, done func(*conversion, time.Time)) {
	defer close(cv.done)
	var tee io.Writer
	if up != nil {
		tee = up
	}
	at, gone := cv.src.read(ctx, c, desc, cv, tee)
	if up != nil {
		if gone == nil && cv.err == nil {
			up.end(&cv.desc)
		} else {
			up.end(nil)
		}
	}
	if gone == nil && cv.err != nil {
		at, gone = cv.src.again(ctx, c, desc, cv)
	}
	if gone != nil {
		cv.err = gone
		c.mu.Lock()
		delete(c.jobs, desc.Digest)
		c.mu.Unlock()
		return
	}
	c.mu.Lock()
	delete(c.unread, desc.Digest)
	c.mu.Unlock()
	c.remember(desc, cv)
	c.settle(cv)
	if done != nil {
		done(cv, at)
	}
}
