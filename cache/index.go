package cache

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/derekparker/trie/v3"
)

// Layer is one layer of an indexed image.
type Layer struct {
	Digest string `json:"digest"` // the compressed blob's digest, as in the manifest
	DiffID string `json:"diffID"` // the uncompressed digest, as in the config
	Size   int64  `json:"size"`   // the compressed blob's size
}

// Image is one image (one platform of a tag) in the index.
type Image struct {
	Ref         string    `json:"ref"`                 // registry/repo:tag
	Digest      string    `json:"digest"`              // manifest digest of this platform's image
	TagDigest   string    `json:"tagDigest,omitempty"` // what the tag pointed to: the image index of a multi-platform tag
	Platform    string    `json:"platform"`            // os/arch[/variant]
	Layers      []Layer   `json:"layers,omitempty"`
	Steps       []Step    `json:"steps,omitempty"`       // one per layer
	InlineCache bool      `json:"inlineCache,omitempty"` // the config carries BuildKit's inline cache metadata
	Pushed      time.Time `json:"pushed"`                // the config's created time, else when first indexed
	// Indexed is when the entry was last written; when two copies of an
	// index are merged, the newer entry for a ref and platform wins.
	Indexed time.Time `json:"indexed"`
	// Deleted marks a tombstone: the tag is gone. It keeps a stale copy of
	// the index from bringing the image back when copies are merged.
	Deleted bool `json:"deleted,omitempty"`
}

// ID is the key of an image in the index: its ref and platform.
func (m *Image) ID() string { return m.Ref + "|" + m.Platform }

// CacheRef is the ref BuildKit should import cache from: the repository
// pinned to this image's digest, so a moved tag cannot change it.
func (m *Image) CacheRef() string {
	repo := m.Ref
	if i := strings.IndexByte(repo, '@'); i >= 0 {
		repo = repo[:i]
	} else if i := strings.LastIndexByte(repo, ':'); i > strings.LastIndexByte(repo, '/') {
		repo = repo[:i]
	}
	if m.Digest == "" {
		return m.Ref
	}
	return repo + "@" + m.Digest
}

// Index holds image histories in a trie keyed by platform and step tokens.
// Build it (Put, Delete), then query it (Longest, Matches); the trie is
// rebuilt on the first query after a change. It is safe for concurrent use.
type Index struct {
	mu     sync.Mutex
	images []*Image
	byID   map[string]int

	built  bool
	tokens map[string]int32 // interned tokens; ids start at 1
	trie   *trie.Trie[[]int32]
}

// NewIndex returns an empty index.
func NewIndex() *Index { return &Index{byID: map[string]int{}} }

// Put adds or replaces an image (by ref and platform) when it is at least
// as new as the entry it replaces. It reports whether the index changed.
func (x *Index) Put(m *Image) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.put(m)
}

func (x *Index) put(m *Image) bool {
	id := m.ID()
	if i, ok := x.byID[id]; ok {
		old := x.images[i]
		if m.Indexed.Before(old.Indexed) {
			return false
		}
		x.images[i] = m
	} else {
		x.byID[id] = len(x.images)
		x.images = append(x.images, m)
	}
	x.built = false
	return true
}

// Delete replaces every platform of ref but those in keep with a tombstone dated at.
func (x *Index) Delete(ref string, at time.Time, keep ...string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, m := range x.images {
		if m.Ref == ref && !m.Deleted && !at.Before(m.Indexed) && !slices.Contains(keep, m.Platform) {
			x.put(&Image{Ref: ref, Platform: m.Platform, Indexed: at, Deleted: true})
		}
	}
}

// Merge puts every entry of other into x (newer entries win, tombstones
// included) and returns how many changed x.
func (x *Index) Merge(other *Index) int {
	imgs := other.all()
	x.mu.Lock()
	defer x.mu.Unlock()
	n := 0
	for _, m := range imgs {
		if x.put(m) {
			n++
		}
	}
	return n
}

// Prune drops tombstones older than before.
func (x *Index) Prune(before time.Time) {
	x.mu.Lock()
	defer x.mu.Unlock()
	kept := x.images[:0]
	for _, m := range x.images {
		if m.Deleted && m.Indexed.Before(before) {
			continue
		}
		kept = append(kept, m)
	}
	clear(x.images[len(kept):])
	x.images = kept
	x.byID = make(map[string]int, len(kept))
	for i, m := range kept {
		x.byID[m.ID()] = i
	}
	x.built = false
}

// all returns every entry, tombstones included, in insertion order.
func (x *Index) all() []*Image {
	x.mu.Lock()
	defer x.mu.Unlock()
	return slices.Clone(x.images)
}

// Images returns the live images (no tombstones).
func (x *Index) Images() []*Image {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := make([]*Image, 0, len(x.images))
	for _, m := range x.images {
		if !m.Deleted {
			out = append(out, m)
		}
	}
	return out
}

// Len is the number of live images.
func (x *Index) Len() int { return len(x.Images()) }

// Get returns the entry for ref and platform.
func (x *Index) Get(ref, platform string) (*Image, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	i, ok := x.byID[ref+"|"+platform]
	if !ok || x.images[i].Deleted {
		return nil, false
	}
	return x.images[i], true
}

// build interns every token and fills the trie: one key per distinct token
// sequence, holding the images that have it.
func (x *Index) build() {
	if x.built {
		return
	}
	x.tokens = make(map[string]int32, len(x.images)/4+16)
	groups := make(map[string][]int32, len(x.images))
	var order []string
	var buf []rune
	for i, m := range x.images {
		if m.Deleted || len(m.Steps) != len(m.Layers) {
			continue // a tombstone, or an entry that does not line up
		}
		buf = appendToken(buf[:0], x.intern("platform "+m.Platform))
		for _, s := range m.Steps {
			buf = appendToken(buf, x.intern(s.Token))
		}
		k := string(buf)
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], int32(i))
	}
	x.trie = trie.New[[]int32]()
	for _, k := range order {
		x.trie.Add(k, groups[k])
	}
	x.built = true
}

func (x *Index) intern(tok string) int32 {
	if id, ok := x.tokens[tok]; ok {
		return id
	}
	id := int32(len(x.tokens) + 1)
	x.tokens[tok] = id
	return id
}

// Token ids map to runes the trie can hold: never 0 (the trie's end
// marker), never a surrogate (not valid in a Go string). Ids beyond what
// one rune holds take an escape rune and two more, which keeps the
// encoding prefix-free, so a prefix of runes is a prefix of tokens.
const (
	surrogateLo = 0xD800
	surrogateN  = 0x800
	escapeRune  = 0x10FFFF
	singleMax   = escapeRune - 1 - surrogateN // ids 1..singleMax take one rune
)

func idRune(v int32) rune {
	r := rune(v)
	if r >= surrogateLo {
		r += surrogateN
	}
	return r
}

func appendToken(buf []rune, id int32) []rune {
	if id <= singleMax {
		return append(buf, idRune(id))
	}
	v := id - singleMax
	return append(buf, escapeRune, idRune(v>>10+1), idRune(v&0x3FF+1))
}

// encode returns the key runes of platform and tokens, as far as every
// token is known to the index, and how many tokens that covers (the
// platform counts as one).
func (x *Index) encode(platform string, tokens []string) (key []rune, bounds []int) {
	id, ok := x.tokens["platform "+platform]
	if !ok {
		return nil, nil
	}
	key = appendToken(key, id)
	bounds = append(bounds, len(key))
	for _, t := range tokens {
		id, ok := x.tokens[t]
		if !ok {
			break
		}
		key = appendToken(key, id)
		bounds = append(bounds, len(key))
	}
	return key, bounds
}

// Longest returns how many leading tokens of the query (platform, then
// step tokens) the index holds for at least one image: 0 when no image
// has the platform, 1 + the number of steps matched otherwise.
func (x *Index) Longest(platform string, tokens []string) int {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.build()
	key, bounds := x.encode(platform, tokens)
	return x.longest(key, bounds)
}

// longest probes prefixes at token boundaries with HasKeysWithPrefix; the
// answer is monotone in the prefix length, so a binary search finds it.
func (x *Index) longest(key []rune, bounds []int) int {
	lo, hi := 0, len(bounds) // bounds[:lo] known present
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if x.trie.HasKeysWithPrefix(string(key[:bounds[mid-1]])) {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo
}

// Match is an image sharing a prefix of steps with a query.
type Match struct {
	Image *Image
	Steps int // leading steps shared with the query (the platform not counted)
}

// Matches returns up to limit images that share the most leading steps
// with the query, at least minSteps of them, deepest first; keep, when not
// nil, must accept an image for it to count.
func (x *Index) Matches(platform string, tokens []string, minSteps, limit int, keep func(*Image) bool) []Match {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.build()
	key, bounds := x.encode(platform, tokens)
	depth := x.longest(key, bounds)
	var out []Match
	seen := map[int32]bool{}
	for d := depth; d >= 1 && d-1 >= minSteps && len(out) < limit; d-- {
		for _, ids := range x.trie.PrefixSearchIter(string(key[:bounds[d-1]])) {
			for _, id := range ids {
				if seen[id] {
					continue
				}
				seen[id] = true
				if m := x.images[id]; keep == nil || keep(m) {
					out = append(out, Match{Image: m, Steps: d - 1})
				}
			}
		}
	}
	return out
}

// Snapshot records the entries of x, for ChangedSince.
func (x *Index) Snapshot() map[string]*Image {
	x.mu.Lock()
	defer x.mu.Unlock()
	snap := make(map[string]*Image, len(x.images))
	for _, m := range x.images {
		snap[m.ID()] = m
	}
	return snap
}

// ChangedSince returns an index of the entries put into x since snap was
// taken: what a writer sends to a shared store.
func (x *Index) ChangedSince(snap map[string]*Image) *Index {
	out := NewIndex()
	for _, m := range x.all() {
		if snap[m.ID()] != m {
			out.Put(m)
		}
	}
	return out
}
