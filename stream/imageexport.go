package stream

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/moby/buildkit/client"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-build/strata/frontend"
	"github.com/strata-build/strata/push"
)

// BuildKit's OCI exporter fetches every lazily pulled layer of the image
// whole before it offers the layers to the client's store, even those the
// store answers it has: on a builder with the stargz snapshotter, an
// export to strata would pull all that the build reused. Its image
// exporter does not. So where buildkitd serves its content store (see
// builderBlobs) and pulls lazily, and the reused layers are on the target
// registry (see oneRegistry), every solve of the push exports with the
// image exporter, pushing nothing and storing nothing, and strata reads the
// manifest, the config and each new layer from buildkitd's content store.
// When it cannot read the image there, or a layer is neither there nor in
// the client-side store nor in every repository (reused from another
// registry, most often), the image is exported once more the other way
// (see collect).

// oneRegistry reports whether the cache sources of the push are on the
// registry of every target: only then can every reused layer be found
// there (or mounted), and none needs to be sent. (A gzip base layer comes
// from the builder, rewritten; see converter.recompresses.)
func oneRegistry(cfg Config, imports []client.CacheOptionsEntry) bool {
	host := func(ref string) string { h, _, _ := strings.Cut(ref, "/"); return h }
	var want string
	for _, t := range cfg.Tags {
		if want == "" {
			want = host(t)
		}
		if host(t) != want {
			return false
		}
	}
	for _, im := range imports {
		if ref := im.Attrs["ref"]; ref != "" && host(ref) != want {
			return false
		}
	}
	return true
}

// rememberedInRegistry takes the layer an earlier build converted the
// uncompressed layer l into, when every repository holds it: as knownStore
// does for a layer offered through the session, so a builder's cached layer
// is not converted again.
func (sp *streamedPush) rememberedInRegistry(l ocispecs.Descriptor) {
	e, ok := sp.conv.remembered(l.Digest)
	if ok && (&knownStore{pushers: sp.pushers}).allHave(sp.pushCtx, e.descriptor()) {
		sp.conv.known(l.Digest, e)
	}
}

// exporter is the export of one solve of the push with attrs.
func (sp *streamedPush) exporter(attrs map[string]string) client.ExportEntry {
	if !sp.imageExport {
		return client.ExportEntry{Type: client.ExporterOCI, Attrs: attrs, OutputStore: sp.store}
	}
	attrs = clone(attrs)
	delete(attrs, "tar")
	attrs["push"], attrs["store"] = "false", "false"
	return client.ExportEntry{Type: client.ExporterImage, Attrs: attrs}
}

// readImage copies the manifest and config of the image desc from
// buildkitd's content store into the client-side store, when the solve
// exported it with the image exporter.
func (sp *streamedPush) readImage(ctx context.Context, desc ocispecs.Descriptor) error {
	if !sp.imageExport {
		return nil
	}
	if err := sp.copyFromBuilder(ctx, desc); err != nil {
		return err
	}
	dt, err := content.ReadBlob(ctx, sp.store, desc)
	if err != nil {
		return err
	}
	var mf ocispecs.Manifest
	if err := json.Unmarshal(dt, &mf); err != nil {
		return fmt.Errorf("manifest %s: %w", desc.Digest, err)
	}
	return sp.copyFromBuilder(ctx, mf.Config)
}

// copyFromBuilder copies the blob d from buildkitd's content store into
// the client-side store, unless that holds it.
func (sp *streamedPush) copyFromBuilder(ctx context.Context, d ocispecs.Descriptor) error {
	if _, err := sp.store.Info(ctx, d.Digest); err == nil {
		return nil
	}
	var buf bytes.Buffer
	if err := sp.conv.builder.fetch(ctx, d, &buf); err != nil {
		return err
	}
	return content.WriteBlob(ctx, sp.store, "strata-"+d.Digest.String(), &buf, d)
}

// collect makes the main solve's image complete in the client-side store
// and the registry: its manifest and config read from the builder, and its
// layers to be converted from the builder, in the store or in every
// repository. When that fails, it exports the image once more with the OCI
// exporter (the solve's result is cached: only the export runs), which
// sends what is missing. It returns the exporter response the push goes on
// with.
func (sp *streamedPush) collect(ctx context.Context, c *client.Client, so client.SolveOpt, resp map[string]string) (map[string]string, error) {
	if !sp.imageExport {
		return resp, nil
	}
	desc, err := exportedDescriptor(resp)
	if err != nil {
		return nil, err
	}
	if sp.readImage(ctx, desc) == nil && sp.complete(ctx, desc) {
		return resp, nil
	}
	sp.imageExport = false
	opt := sp.withSession(so, sp.mainAttrs)
	opt.CacheExports = []client.CacheOptionsEntry{{Type: "inline"}}
	again, err := c.Build(ctx, opt, frontend.Name, sp.frontend(nil), sp.p.Quiet())
	if err != nil {
		return nil, err
	}
	return again.ExporterResponse, nil
}

// complete reports whether every layer of the image desc, whose manifest
// the store holds, is to be converted from the builder, is in the store or
// is in every repository.
func (sp *streamedPush) complete(ctx context.Context, desc ocispecs.Descriptor) bool {
	ls, err := push.Layers(ctx, sp.store, desc)
	if err != nil {
		return false
	}
	known := &knownStore{Store: sp.store, pushers: sp.pushers}
	for _, l := range ls {
		if sp.conv.converts(l) {
			if _, ok := sp.conv.fromBuilder(ctx, l); ok {
				continue
			}
		}
		if _, err := sp.store.Info(ctx, l.Digest); err != nil && !known.allHave(ctx, l) {
			return false
		}
	}
	return true
}
