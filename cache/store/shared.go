package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/strata-build/strata/cache"
	"github.com/strata-build/strata/cache/crawl"
	"github.com/strata-build/strata/cache/internal/regopts"
	"github.com/strata-build/strata/errs"
)

// The shared index lives in a registry repository as small images, so
// every CI runner shares it with nothing new to run, and a BuildKit
// frontend can read it with llb.Image(ref) and ReadFile(cache.IndexPath):
//
//   - REF (e.g. registry/strata/index:main) is the compacted index, an
//     image index with a linux/amd64 and a linux/arm64 image sharing one
//     layer holding cache.IndexPath and mergedPath.
//   - Every update first pushes its own changes as a delta under a tag of
//     its own, TAG-delta-<nanoseconds>-<random>, which no other writer
//     touches: once pushed, they cannot be lost.
//   - It then compacts: reads REF and every delta not yet merged into it,
//     merges (newer entries win, per ref and platform), and pushes REF with
//     the list of deltas it holds. Registries have no conditional PUT, so
//     two compactions can race and the later one may drop the other's
//     merge; readers therefore merge the deltas REF does not list, and the
//     writer re-reads REF and compacts again until REF lists its delta.
//   - Deltas REF lists are deleted once older than deltaGrace. A
//     compaction that takes longer than maxCompaction from read to write
//     is abandoned, so no stale compaction can drop a delta already gone.
const (
	mergedPath    = "merged.txt"
	deltaInfix    = "-delta-"
	deltaGrace    = 10 * time.Minute
	maxCompaction = time.Minute
	compactTries  = 8
)

// RegistryStore keeps the index in a registry (see the notes on
// the shared index).
type RegistryStore struct {
	ref name.Tag
	o   *regopts.Options
	now func() time.Time
}

// NewRegistryStore returns the shared index at ref (a tag).
func NewRegistryStore(ref string, opts ...crawl.Option) (*RegistryStore, error) {
	o := regopts.New(opts)
	r, err := o.ParseRef(ref)
	if err != nil {
		return nil, errs.Usagef("--index %q: %v", ref, err)
	}
	t, ok := r.(name.Tag)
	if !ok {
		return nil, errs.WithHint(errs.Usagef("--index %q is a digest", ref), "name the shared index by a tag, e.g. registry.example.com/strata/index:main")
	}
	if len(t.TagStr())+len(deltaInfix)+26 > 128 {
		return nil, errs.Usagef("--index tag %q is too long; keep it under 100 characters", t.TagStr())
	}
	return &RegistryStore{ref: t, o: o, now: o.Now}, nil
}

func (s *RegistryStore) String() string { return s.ref.String() }

// snapshot is the shared index as one reader saw it.
type snapshot struct {
	x        *cache.Index
	mainDesc string          // digest of REF, "" when absent
	merged   map[string]bool // deltas REF holds
	deltas   []string        // delta tags whose entries x holds
}

// Load implements Store: REF merged with every delta it does not hold yet.
func (s *RegistryStore) Load(ctx context.Context) (*cache.Index, error) {
	snap, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	return snap.x, nil
}

// readTries bounds how often read starts again because REF moved under it;
// each try after the first waits a little longer, with jitter, so that
// runners writing at once stop reading in step.
const readTries = 8

// readBackoff is the wait before the second try.
const readBackoff = 20 * time.Millisecond

// read returns REF merged with the deltas it does not hold. A compaction
// deletes old deltas only after writing a REF that holds them, so a delta
// missing from the listing is in any REF written before the listing: if
// REF still has the digest read at the start once the deltas are read, the
// snapshot lost nothing; if it moved, read starts again.
func (s *RegistryStore) read(ctx context.Context) (*snapshot, error) {
	p, err := s.o.Puller(ctx)
	if err != nil {
		return nil, err
	}
	for try := range readTries {
		if try > 0 {
			wait := readBackoff * time.Duration(try)
			wait += time.Duration(mrand.Int64N(int64(wait)))
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		snap, err := s.readOnce(ctx, p)
		if err != nil {
			return nil, err
		}
		now := ""
		desc, err := p.Head(ctx, s.ref)
		switch {
		case regopts.IsNotFound(err):
		case err != nil:
			return nil, regopts.Error("read index "+s.ref.String(), err)
		default:
			now = desc.Digest.String()
		}
		if now == snap.mainDesc {
			return snap, nil
		}
	}
	return nil, fmt.Errorf("%w: the shared index %s kept changing while it was read; try again", errs.ErrRegistry, s.ref)
}

func (s *RegistryStore) readOnce(ctx context.Context, p *remote.Puller) (*snapshot, error) {
	snap := &snapshot{x: cache.NewIndex(), merged: map[string]bool{}}
	x, merged, dgst, err := s.readImage(ctx, p, s.ref, true)
	switch {
	case regopts.IsNotFound(err):
	case err != nil:
		return nil, err
	default:
		snap.x, snap.mainDesc = x, dgst
		for _, d := range merged {
			snap.merged[d] = true
		}
	}
	tags, err := p.List(ctx, s.ref.Context())
	if err != nil && !regopts.IsNotFound(err) {
		return nil, regopts.Error("list "+s.ref.Context().String(), err)
	}
	prefix := s.ref.TagStr() + deltaInfix
	for _, t := range tags {
		if !strings.HasPrefix(t, prefix) {
			continue
		}
		if snap.merged[t] {
			snap.deltas = append(snap.deltas, t)
			continue
		}
		dx, _, _, err := s.readImage(ctx, p, s.ref.Context().Tag(t), false)
		if regopts.IsNotFound(err) {
			// Deleted by a compaction since the listing (a REF read
			// before holds it), or listed before its writer finished
			// writing it (that writer compacts until REF holds it).
			// Either way it is not merged here, so no REF written from
			// this snapshot may claim to hold it.
			continue
		}
		if err != nil {
			return nil, err
		}
		snap.x.Merge(dx)
		snap.deltas = append(snap.deltas, t)
	}
	sort.Strings(snap.deltas)
	return snap, nil
}

// readImage reads an index image: the index and the deltas it holds.
func (s *RegistryStore) readImage(ctx context.Context, p *remote.Puller, ref name.Reference, keepCopy bool) (*cache.Index, []string, string, error) {
	desc, err := p.Get(ctx, ref)
	if err != nil {
		if regopts.IsNotFound(err) {
			return nil, nil, "", err
		}
		return nil, nil, "", regopts.Error("read index "+ref.String(), err)
	}
	var img v1.Image
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err == nil {
			var im *v1.IndexManifest
			if im, err = idx.IndexManifest(); err == nil && len(im.Manifests) > 0 {
				img, err = idx.Image(im.Manifests[0].Digest)
			} else if err == nil {
				err = errors.New("empty image index")
			}
		}
		if err != nil {
			return nil, nil, "", regopts.Error("read index "+ref.String(), err)
		}
	} else if img, err = desc.Image(); err != nil {
		return nil, nil, "", regopts.Error("read index "+ref.String(), err)
	}
	// Only an image strata wrote (labelled) is ever rebuilt over: any other
	// image at the tag is an error, and stays as it is.
	if cf, err := img.ConfigFile(); err != nil || cf.Config.Labels[cache.IndexLabel] == "" {
		return nil, nil, "", errs.WithHint(fmt.Errorf("%w: %s is not a strata index (no %s label)", errs.ErrUsage, ref, cache.IndexLabel),
			"name a tag only strata writes, e.g. REGISTRY/strata/index:main")
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		return nil, nil, "", fmt.Errorf("%w: %s is not a strata index (want one layer): %v", errs.ErrRegistry, ref, err)
	}
	files, err := s.layerFiles(layers[0], keepCopy)
	if err != nil {
		return nil, nil, "", fmt.Errorf("%w: index %s: %v", errs.ErrRegistry, ref, err)
	}
	x, err := cache.Decode(files[cache.IndexPath])
	if errors.Is(err, cache.ErrNewerFormat) {
		return nil, nil, "", errs.WithHint(fmt.Errorf("%w: index %s: %w", errs.ErrRegistry, ref, err), "upgrade strata to use it")
	}
	if err != nil {
		// Damaged: read as empty, so the next update (a build's, or
		// 'strata index refresh') writes REF anew from the deltas and
		// what it adds, instead of every reader failing on it for good.
		s.o.Log.Warn("shared index is unusable; it will be rebuilt", "ref", ref.String(), "err", err)
		return cache.NewIndex(), nil, desc.Digest.String(), nil
	}
	return x, strings.Fields(string(files[mergedPath])), desc.Digest.String(), nil
}

// maxSharedIndex is the largest index layer read (uncompressed); 100,000
// images take about 60 MB.
var maxSharedIndex int64 = 1 << 30

// layerFiles reads the files of an index layer, from the local copy kept
// under the user cache directory when its content still hashes to the
// layer's diff ID, else from the registry (keeping a copy).
func (s *RegistryStore) layerFiles(l v1.Layer, keepCopy bool) (map[string][]byte, error) {
	diffID, err := l.DiffID()
	if err != nil {
		return nil, err
	}
	local := ""
	if dir, err := os.UserCacheDir(); err == nil && s.o.CacheDir != "-" && keepCopy {
		if s.o.CacheDir != "" {
			dir = s.o.CacheDir
		}
		local = filepath.Join(dir, "strata", "index", "blobs", diffID.Hex)
		if b, err := os.ReadFile(local); err == nil {
			if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) == diffID.Hex {
				return untar(bytes.NewReader(b))
			}
		}
	}
	rc, err := l.Uncompressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxSharedIndex+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > maxSharedIndex {
		return nil, fmt.Errorf("the index layer holds more than %d MiB: refused", maxSharedIndex>>20)
	}
	if local != "" && os.MkdirAll(filepath.Dir(local), 0o755) == nil {
		pruneBlobs(filepath.Dir(local), s.now().Add(-7*24*time.Hour))
		if f, err := os.CreateTemp(filepath.Dir(local), "blob-*"); err == nil {
			_, werr := f.Write(b)
			if cerr := f.Close(); werr == nil && cerr == nil {
				_ = os.Rename(f.Name(), local)
			}
			_ = os.Remove(f.Name())
		}
	}
	return untar(bytes.NewReader(b))
}

// pruneBlobs removes local index copies not written since before.
func pruneBlobs(dir string, before time.Time) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && fi.ModTime().Before(before) {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// Update implements Store: push changes as a delta, then compact.
func (s *RegistryStore) Update(ctx context.Context, changes *cache.Index) (*cache.Index, error) {
	// Nothing is pushed beside a REF strata cannot use (another image, a
	// newer format).
	p, err := s.o.Puller(ctx)
	if err != nil {
		return nil, err
	}
	if _, _, _, err := s.readImage(ctx, p, s.ref, true); err != nil && !regopts.IsNotFound(err) {
		return nil, err
	}
	tag := s.deltaTag()
	img, err := indexImage(changes, nil, tag)
	if err != nil {
		return nil, err
	}
	if err := remote.WriteIndex(s.ref.Context().Tag(tag), img, s.o.Remote(ctx)...); err != nil {
		return nil, regopts.Error("push index delta "+tag, err)
	}
	var last *cache.Index
	for try := 0; try < compactTries; try++ {
		x, done, err := s.compact(ctx, tag)
		if err != nil {
			return nil, err
		}
		last = x
		if done {
			break
		}
	}
	return last, nil
}

func (s *RegistryStore) deltaTag() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s%s%016x-%s", s.ref.TagStr(), deltaInfix, s.now().UnixNano(), hex.EncodeToString(b[:]))
}

// compact writes REF with every delta merged, and reports whether REF,
// read back, holds mine.
func (s *RegistryStore) compact(ctx context.Context, mine string) (*cache.Index, bool, error) {
	start := s.now()
	snap, err := s.read(ctx)
	if err != nil {
		return nil, false, err
	}
	if snap.merged[mine] {
		return snap.x, true, nil
	}
	snap.x.Prune(start.Add(-tombstoneTTL))
	merged := append([]string(nil), snap.deltas...)
	if !slices.Contains(merged, mine) {
		// The listing did not show my delta yet; read it directly.
		return snap.x, false, nil
	}
	img, err := indexImage(snap.x, merged, "")
	if err != nil {
		return nil, false, err
	}
	if s.now().Sub(start) > maxCompaction {
		return snap.x, true, nil // too slow to be safe; readers merge the deltas
	}
	if err := remote.WriteIndex(s.ref, img, s.o.Remote(ctx)...); err != nil {
		return nil, false, regopts.Error("push index "+s.ref.String(), err)
	}
	p, err := s.o.Puller(ctx)
	if err != nil {
		return nil, false, err
	}
	_, held, _, err := s.readImage(ctx, p, s.ref, true)
	if err != nil && !regopts.IsNotFound(err) {
		return nil, false, err
	}
	if !slices.Contains(held, mine) {
		return snap.x, false, nil
	}
	s.collect(ctx, held)
	return snap.x, true, nil
}

// collect deletes deltas REF holds that are older than deltaGrace.
// Registries that do not allow deletes keep them; that costs only space.
func (s *RegistryStore) collect(ctx context.Context, held []string) {
	prefix := s.ref.TagStr() + deltaInfix
	for _, t := range held {
		rest, ok := strings.CutPrefix(t, prefix)
		if !ok || len(rest) < 16 {
			continue
		}
		ns, err := strconv.ParseInt(rest[:16], 16, 64)
		if err != nil || s.now().Sub(time.Unix(0, ns)) < deltaGrace {
			continue
		}
		// Deleting the tag is enough where registries allow it; others
		// delete the manifest by digest, which takes its tags along.
		ref := s.ref.Context().Tag(t)
		desc, err := remote.Head(ref, s.o.Remote(ctx)...)
		if err != nil {
			continue
		}
		if remote.Delete(ref, s.o.Remote(ctx)...) != nil {
			_ = remote.Delete(s.ref.Context().Digest(desc.Digest.String()), s.o.Remote(ctx)...)
		}
	}
}
