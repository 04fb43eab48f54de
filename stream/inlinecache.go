package stream

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/platforms"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/moby/buildkit/client"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-build/strata/cache"
	"github.com/strata-build/strata/cache/crawl"
	"github.com/strata-build/strata/cache/plan"
	"github.com/strata-build/strata/regnet"
)

// cacheRecord is one record of BuildKit's inline cache metadata, as it is
// in an image config: a cache key, its inputs, and the image layers that
// hold its result ("layers": the result is the image's layers 0 to
// layer). Fields strata does not touch are kept as they are.
type cacheRecord struct {
	Digest  digest.Digest
	Results []cacheResult
	raw     map[string]json.RawMessage
}

type cacheResult struct {
	LayerIndex int       `json:"layer"`
	CreatedAt  time.Time `json:"createdAt"`
}

// sourceCache is what a cache source's config says: its diff_ids, and the
// layer of each of its records' results.
type sourceCache struct {
	platform string
	// diffIDs are the image's layers as later plans know them: a base
	// layer strata rewrote as eStargz by the diff_id of the layer it was
	// rewritten from (see baseDiffIDs).
	diffIDs []digest.Digest
	results map[digest.Digest][]cacheResult
}

// baseDiffIDs are the diff_ids of an image, with each layer strata
// rewrote as eStargz from a gzip base image layer (its manifest's
// cache.AnnotationSourceDiffID, which source gives by the layer's index)
// known by the diff_id of the layer it was rewritten from: the same files,
// so the cache records over one hold over the other. An image whose base
// strata rewrote in one build and not in another (its builder pulls lazily
// in one only) still shares its records with the other.
func baseDiffIDs(diffIDs []digest.Digest, source func(i int) string) []digest.Digest {
	out := slices.Clone(diffIDs)
	for i := range out {
		if src, err := digest.Parse(source(i)); err == nil {
			out[i] = src
		}
	}
	return out
}

// importedRecords reads, beside the build, the inline cache metadata of
// the registry images the build imports cache from.
//
// BuildKit writes a record's result into an image's inline cache only in
// the compression the image is exported in; strata has BuildKit export
// uncompressed layers, so the records of steps BuildKit took from a cache
// source (whose layers stay compressed) would come without their layer,
// and the image would be a poorer cache source than the one it came from.
// apply gives such a record back the layer the source gave it, when the
// source's layers up to it are the image's own (same diff_ids).
//
// It also learns which repository holds each layer of those images, so
// the push mounts a layer the build reused from there (see source).
type importedRecords struct {
	// ready is closed once the imports are known (see Config.Late), done
	// once every source has been read.
	ready   chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	sources []sourceCache
	// Per registry: the repositories of its sources that hold each layer,
	// and a channel closed once all of its sources have been read.
	layers map[string]map[digest.Digest][]name.Repository
	read   map[string]chan struct{}
	// sourceDiffIDs are the cache.AnnotationSourceDiffID annotations of
	// the sources' layers, which BuildKit's export leaves out.
	sourceDiffIDs map[digest.Digest]string
}

// readImportedRecords starts reading the registry images of imports, and
// of the imports late chooses when it is set.
func readImportedRecords(ctx context.Context, imports []client.CacheOptionsEntry, late func(context.Context) (Chosen, error), platform string, insecure []string) *importedRecords {
	r := &importedRecords{ready: make(chan struct{}), done: make(chan struct{}), layers: map[string]map[digest.Digest][]name.Repository{}, read: map[string]chan struct{}{}}
	if late == nil {
		r.start(ctx, imports, platform, insecure)
		return r
	}
	go func() {
		if ch, err := late(ctx); err == nil {
			imports = slices.Concat(imports, ch.Imports)
		}
		r.start(ctx, imports, platform, insecure)
	}()
	return r
}

func (r *importedRecords) start(ctx context.Context, imports []client.CacheOptionsEntry, platform string, insecure []string) {
	defer close(r.ready)
	byRegistry := map[string][]name.Reference{}
	for _, im := range imports {
		ref := im.Attrs["ref"]
		if im.Type != "registry" || ref == "" {
			continue
		}
		if nr, err := name.ParseReference(ref, regnet.NameOptions(ref, insecure)...); err == nil {
			byRegistry[nr.Context().RegistryStr()] = append(byRegistry[nr.Context().RegistryStr()], nr)
		}
	}
	p := plan.ImagePlatform(platform)
	resolver := plan.NewRegistryResolver(crawl.WithInsecureRegistries(insecure...))
	var all sync.WaitGroup
	for reg, refs := range byRegistry {
		read := make(chan struct{})
		r.read[reg] = read
		layers := map[digest.Digest][]name.Repository{}
		r.layers[reg] = layers
		var wg sync.WaitGroup
		for _, nr := range refs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				img, err := resolver.ResolveImage(ctx, nr.String(), p)
				if err != nil {
					return // best effort: the source may be gone or not an image
				}
				r.mu.Lock()
				defer r.mu.Unlock()
				for _, l := range img.Layers {
					d := digest.Digest(l.String())
					layers[d] = append(layers[d], nr.Context())
				}
				for l, src := range img.SourceDiffIDs {
					if r.sourceDiffIDs == nil {
						r.sourceDiffIDs = map[digest.Digest]string{}
					}
					r.sourceDiffIDs[digest.Digest(l.String())] = src
				}
				if sc, ok := parseSourceCache(img.Config); ok {
					sc.diffIDs = baseDiffIDs(sc.diffIDs, func(i int) string {
						if i < len(img.Layers) {
							return img.SourceDiffIDs[img.Layers[i]]
						}
						return ""
					})
					r.sources = append(r.sources, sc)
				}
			}()
		}
		all.Add(1)
		go func() {
			defer all.Done()
			wg.Wait()
			close(read)
		}()
	}
	go func() {
		all.Wait()
		close(r.done)
	}()
}

// source is a repository of repo's registry, other than repo, that holds
// layer d in a cache source, once the sources on that registry have been
// read (for at most editWait).
func (r *importedRecords) source(ctx context.Context, repo name.Repository, d digest.Digest) (name.Repository, bool) {
	if ok, _ := waitBounded(ctx, r.ready); !ok {
		return name.Repository{}, false
	}
	read, ok := r.read[repo.RegistryStr()]
	if !ok {
		return name.Repository{}, false
	}
	if ok, _ := waitBounded(ctx, read); !ok {
		return name.Repository{}, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, from := range r.layers[repo.RegistryStr()][d] {
		if from.RepositoryStr() != repo.RepositoryStr() {
			return from, true
		}
	}
	return name.Repository{}, false
}

// imageConfigCache is the part of an image config strata reads here.
type imageConfigCache struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Variant      string `json:"variant,omitempty"`
	RootFS       struct {
		DiffIDs []digest.Digest `json:"diff_ids"`
	} `json:"rootfs"`
	Cache string `json:"moby.buildkit.cache.v0"`
}

func (c imageConfigCache) platform() string {
	return platforms.Format(ocispecs.Platform{OS: c.OS, Architecture: c.Architecture, Variant: c.Variant})
}

func parseSourceCache(cfg []byte) (sourceCache, bool) {
	var c imageConfigCache
	if json.Unmarshal(cfg, &c) != nil || c.Cache == "" {
		return sourceCache{}, false
	}
	records, err := decodeInlineCache(c.Cache)
	if err != nil {
		return sourceCache{}, false
	}
	sc := sourceCache{platform: c.platform(), diffIDs: c.RootFS.DiffIDs, results: map[digest.Digest][]cacheResult{}}
	for _, rec := range records {
		if len(rec.Results) > 0 {
			sc.results[rec.Digest] = rec.Results
		}
	}
	return sc, true
}

// inlineCacheRecords decodes the inline cache metadata of an image config;
// ok is false when the config has none.
func inlineCacheRecords(cfg map[string]json.RawMessage) (records []cacheRecord, ok bool, err error) {
	raw, ok := cfg[inlineCacheKey]
	if !ok {
		return nil, false, nil
	}
	var b64 string
	if err := json.Unmarshal(raw, &b64); err != nil {
		return nil, false, fmt.Errorf("inline cache: %w", err)
	}
	records, err = decodeInlineCache(b64)
	if err != nil {
		return nil, false, fmt.Errorf("inline cache: %w", err)
	}
	return records, true, nil
}

// setInlineCacheRecords writes records back as the config's inline cache
// metadata.
func setInlineCacheRecords(cfg map[string]json.RawMessage, records []cacheRecord) error {
	raws := make([]map[string]json.RawMessage, len(records))
	for i, rec := range records {
		raws[i] = rec.raw
	}
	dt, err := json.Marshal(raws)
	if err != nil {
		return err
	}
	cfg[inlineCacheKey], err = json.Marshal(base64.StdEncoding.EncodeToString(dt))
	return err
}

func decodeInlineCache(b64 string) ([]cacheRecord, error) {
	dt, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, err
	}
	var raws []map[string]json.RawMessage
	if err := json.Unmarshal(dt, &raws); err != nil {
		return nil, err
	}
	out := make([]cacheRecord, len(raws))
	for i, raw := range raws {
		out[i].raw = raw
		if err := json.Unmarshal(raw["digest"], &out[i].Digest); err != nil {
			return nil, err
		}
		if v, ok := raw["layers"]; ok {
			if err := json.Unmarshal(v, &out[i].Results); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// apply fills in the records of the image desc's inline cache that have
// no layer, from the cache sources, and returns the new manifest's
// descriptor (desc when nothing changed).
func (r *importedRecords) apply(ctx context.Context, store content.Store, desc ocispecs.Descriptor) (ocispecs.Descriptor, error) {
	// A source too slow to read keeps the records as BuildKit wrote them.
	if ok, err := waitBounded(ctx, r.done); !ok {
		return desc, err
	}
	desc, err := r.annotateSources(ctx, store, desc)
	if err != nil || len(r.sources) == 0 {
		return desc, err
	}
	return rewriteImage(ctx, store, desc, func(mf *ocispecs.Manifest, cfg map[string]json.RawMessage) (bool, error) {
		records, ok, err := inlineCacheRecords(cfg)
		if err != nil || !ok {
			return false, nil // none, or not a format strata knows: leave it
		}
		dt, err := json.Marshal(cfg)
		if err != nil {
			return false, err
		}
		var c imageConfigCache
		if json.Unmarshal(dt, &c) != nil {
			return false, nil
		}
		diffIDs := baseDiffIDs(c.RootFS.DiffIDs, func(i int) string {
			if i < len(mf.Layers) {
				return mf.Layers[i].Annotations[cache.AnnotationSourceDiffID]
			}
			return ""
		})
		changed := false
		for i, rec := range records {
			if len(rec.Results) > 0 || rec.raw["chains"] != nil {
				continue
			}
			for _, src := range r.sources {
				if src.platform != c.platform() {
					continue
				}
				var found []cacheResult
				for _, res := range src.results[rec.Digest] {
					n := res.LayerIndex + 1
					if n <= len(diffIDs) && n <= len(src.diffIDs) && slices.Equal(diffIDs[:n], src.diffIDs[:n]) {
						found = append(found, res)
					}
				}
				if len(found) == 0 {
					continue
				}
				v, err := json.Marshal(found)
				if err != nil {
					return false, err
				}
				records[i].raw["layers"] = v
				changed = true
				break
			}
		}
		if !changed {
			return false, nil
		}
		return true, setInlineCacheRecords(cfg, records)
	})
}

// annotateSources puts back, on each layer of the image desc that a cache
// source's manifest annotates with cache.AnnotationSourceDiffID (a base
// layer strata rewrote as eStargz), that annotation: BuildKit's export
// leaves it out, and later plans know the image's base by it.
func (r *importedRecords) annotateSources(ctx context.Context, store content.Store, desc ocispecs.Descriptor) (ocispecs.Descriptor, error) {
	if len(r.sourceDiffIDs) == 0 {
		return desc, nil
	}
	return rewriteImage(ctx, store, desc, func(mf *ocispecs.Manifest, _ map[string]json.RawMessage) (bool, error) {
		changed := false
		for i, l := range mf.Layers {
			src, ok := r.sourceDiffIDs[l.Digest]
			if !ok || l.Annotations[cache.AnnotationSourceDiffID] == src {
				continue
			}
			mf.Layers[i].Annotations = maps.Clone(l.Annotations)
			if mf.Layers[i].Annotations == nil {
				mf.Layers[i].Annotations = map[string]string{}
			}
			mf.Layers[i].Annotations[cache.AnnotationSourceDiffID] = src
			changed = true
		}
		return changed, nil
	})
}
