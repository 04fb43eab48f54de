package stream

import (
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/docker/go-units"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/strata-build/strata/push"
)

// layerLog records when each layer was exported by BuildKit and when the
// registry had it, and shows each upload as a step of the display.
type layerLog struct {
	start time.Time
	p     Progress
	mu    sync.Mutex
	m     map[digest.Digest]*Layer
	order []digest.Digest
}

func newLayerLog(start time.Time, p Progress) *layerLog {
	return &layerLog{start: start, p: p, m: map[digest.Digest]*Layer{}}
}

func (l *layerLog) get(d digest.Digest) *Layer {
	if x, ok := l.m[d]; ok {
		return x
	}
	x := &Layer{Digest: d}
	l.m[d] = x
	l.order = append(l.order, d)
	return x
}

func (l *layerLog) built(desc ocispecs.Descriptor) {
	l.builtAt(desc, time.Now())
}

// builtAt records that BuildKit exported desc at t.
func (l *layerLog) builtAt(desc ocispecs.Descriptor, t time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	x := l.get(desc.Digest)
	x.Size = desc.Size
	if x.Built == 0 {
		x.Built = t.Sub(l.start).Seconds()
	}
}

// sized records the uncompressed size of the layer d.
func (l *layerLog) sized(d digest.Digest, n int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if x := l.get(d); x.Bytes == 0 {
		x.Bytes = n
	}
}

// converted records that strata made desc from a layer BuildKit exported
// at t, and shows the conversion as a step of the display.
func (l *layerLog) converted(from ocispecs.Descriptor, t time.Time, cv *conversion, compression string) {
	if cv.err == nil && cv.desc.Digest != from.Digest {
		l.builtAt(cv.desc, t)
		l.mu.Lock()
		x := l.get(cv.desc.Digest)
		x.Bytes = cv.size
		x.Converted = cv.finished.Sub(l.start).Seconds()
		l.mu.Unlock()
	}
	if cv.started.IsZero() || (cv.err == nil && cv.desc.Digest == from.Digest) {
		return // remembered from an earlier build, or left as the registry has it
	}
	what := fmt.Sprintf("%s, %s %s", units.HumanSize(float64(cv.size)), units.HumanSize(float64(cv.desc.Size)), compression)
	if compression == "uncompressed" {
		what = units.HumanSize(float64(cv.size))
	}
	name := fmt.Sprintf("[strata] layer %s", shortDigest(from.Digest))
	if cv.err == nil {
		name = fmt.Sprintf("[strata] layer %s → %s (%s)", shortDigest(from.Digest), shortDigest(cv.desc.Digest), what)
	}
	l.p.Span(name, cv.started, cv.finished, cv.err)
}

func (l *layerLog) pushed(ev push.Event) {
	l.mu.Lock()
	x := l.get(ev.Digest)
	x.Size = ev.Size
	x.Pushed = ev.Done.Sub(l.start).Seconds()
	x.Uploaded += ev.Uploaded
	x.Early = x.Early || ev.Early
	if ev.MountedFrom != "" {
		x.MountedFrom = ev.MountedFrom
	}
	l.mu.Unlock()

	what := "already in the registry"
	switch {
	case ev.Uploaded > 0:
		what = "uploaded " + units.HumanSize(float64(ev.Uploaded))
	case ev.MountedFrom != "":
		what = "mounted from " + ev.MountedFrom
	}
	if ev.Early {
		what += " while compressing"
	}
	l.p.Span(fmt.Sprintf("[strata] push %s (%s): %s", shortDigest(ev.Digest), units.HumanSize(float64(ev.Size)), what), ev.Started, ev.Done, ev.Err)
}

// image records the layers of an image pushed, and returns their digests
// in its order.
func (l *layerLog) image(ls []ocispecs.Descriptor) []digest.Digest {
	out := make([]digest.Digest, len(ls))
	for i, d := range ls {
		l.built(d)
		out[i] = d.Digest
	}
	return out
}

// list returns the layers whose digests final holds (an image's, see
// image), in that order; with final empty, every layer BuildKit produced,
// in the order it produced them.
func (l *layerLog) list(final []digest.Digest) []Layer {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(final) > 0 {
		out := make([]Layer, 0, len(final))
		for _, d := range final {
			out = append(out, *l.get(d))
		}
		return out
	}
	out := make([]Layer, 0, len(l.order))
	for _, d := range l.order {
		if x := l.m[d]; x.Built > 0 {
			out = append(out, *x)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Built < out[j].Built })
	return out
}

func shortDigest(d digest.Digest) string {
	s := d.Encoded()
	if len(s) > 12 {
		s = s[:12]
	}
	return s
}
