package stream

import (
	"context"
	"time"

	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// What happens to each layer of the push: converted from one of its
// sources, then uploaded to every repository.

// pushConverted uploads what a layer BuildKit exported at t became. An
// error is reported by the image's conversion.
func (t *target) pushConverted(l ocispecs.Descriptor, at time.Time, cv *conversion) {
	t.layers.converted(l, at, cv, t.conv.compression)
	if cv.err == nil {
		for _, ps := range t.pushers {
			ps.PushBlob(t.pushCtx, cv.desc)
		}
	}
	// The uncompressed layer is not needed once converted: the store
	// answers later exports that it has it (see knownStore). So the store
	// holds little more than the compressed layers, and removing it at the
	// end is quick.
	if cv.err == nil && cv.desc.Digest != l.Digest {
		_ = t.store.Delete(context.WithoutCancel(t.pushCtx), l.Digest)
	}
}

// take converts desc from src, then uploads the layer it became.
func (t *target) take(desc ocispecs.Descriptor, src layerSource) bool {
	_, ok := t.convert(desc, src)
	return ok
}

// convert starts the conversion of desc from src, unless one was started
// before (then it returns that one, and false), and the upload of what it
// became; into repositories that hold nothing yet, a layer read from a
// transfer is uploaded while it is converted as well (see earlyGate).
func (t *target) convert(desc ocispecs.Descriptor, src layerSource) (*conversion, bool) {
	early := func() *earlyUpload { return t.gate.start(t.pushCtx, t.dir, t.pushers) }
	return t.conv.begin(t.pushCtx, desc, src, early, func(cv *conversion, at time.Time) { t.pushConverted(desc, at, cv) })
}

// convertAndPush converts a layer of an image exported at t, then uploads
// it: one the store holds, or a gzip layer the builder holds (see
// converter.recompresses). A layer neither has stays as it is.
func (sp *streamedPush) convertAndPush(l ocispecs.Descriptor, t time.Time) *conversion {
	if sp.imageExport {
		sp.rememberedInRegistry(l)
	}
	if sp.imageExport || sp.conv.recompresses(l) {
		if src, ok := sp.conv.fromBuilder(sp.pushCtx, l); ok {
			cv, _ := sp.convert(l, src)
			return cv
		}
	}
	cv, _ := sp.convert(l, storeSource{at: t})
	return cv
}
