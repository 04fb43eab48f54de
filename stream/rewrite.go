package stream

import (
	"github.com/containerd/stargz-snapshotter/estargz"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// rewriteLimit bounds the compressed bytes of gzip layers a build rewrites
// as eStargz (see recompresses) unless told to rewrite them all, per
// platform when the platforms share a target (NewTarget): a rewritten
// layer is uploaded once more, which on a slow link costs more than the
// build saves when the layers are large (a 50 MB dependency layer of an
// image plain BuildKit pushed: 2 s more at 25 MB/s), while a small base
// image (busybox, alpine, distroless) costs little and makes every layer
// above it lazily pullable.
const rewriteLimit = 32 << 20

// recompresses reports whether desc is a gzip layer, of the base image most
// often, that strata rewrites as eStargz, on a builder that pulls lazily:
// as it is, it would stop a builder with the stargz snapshotter from
// pulling any layer above it lazily (BuildKit mounts a chain lazily only
// from its first layer up). Its files and their times stay as they are;
// only the compression changes. Layers are rewritten in the order they are
// asked about until rewriteLimit bytes are taken; the others keep their
// bytes (see keptAsGzip). On other builders the base layers stay as the
// base image has them, mounted from its repository.
func (c *converter) recompresses(desc ocispecs.Descriptor) bool {
	switch desc.MediaType {
	case ocispecs.MediaTypeImageLayerGzip, "application/vnd.docker.image.rootfs.diff.tar.gzip":
		if !c.lazy || c.compression != "estargz" || desc.Annotations[estargz.TOCJSONDigestAnnotation] != "" {
			return false
		}
	default:
		return false
	}
	c.rewriteMu.Lock()
	defer c.rewriteMu.Unlock()
	if ok, seen := c.rewrites[desc.Digest]; seen {
		return ok
	}
	ok := c.rewriteLeft < 0 || desc.Size <= c.rewriteLeft
	if ok && c.rewriteLeft >= 0 {
		c.rewriteLeft -= desc.Size
	}
	if !ok {
		c.keptGzip = append(c.keptGzip, desc)
	}
	c.rewrites[desc.Digest] = ok
	return ok
}

// sharedBy gives a converter that n pushes share (the platforms of one
// build) n times one push's limit on rewriting: each platform's base as
// much as a push alone, a layer they share counted once.
func (c *converter) sharedBy(n int) {
	c.rewriteMu.Lock()
	defer c.rewriteMu.Unlock()
	if c.rewriteLeft > 0 && n > 1 {
		c.rewriteLeft *= int64(n)
	}
}

// keptAsGzip is how many gzip layers recompresses left as they are for
// the limit, and their compressed size.
func (c *converter) keptAsGzip() (int, int64) {
	c.rewriteMu.Lock()
	defer c.rewriteMu.Unlock()
	var n int64
	for _, d := range c.keptGzip {
		n += d.Size
	}
	return len(c.keptGzip), n
}
