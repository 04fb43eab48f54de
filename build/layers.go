package build

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

// PushStats describe what strata uploaded.
type PushStats struct {
	Streamed    bool    `json:"streamed"`
	BytesPushed int64   `json:"bytesPushed"`
	Layers      []Layer `json:"layers"`
}

// layerLog records when each layer was exported by BuildKit and when the
// registry had it, and shows each upload as a step of the display.
type layerLog struct {
	start time.Time
	p     *progress
	mu    sync.Mutex
	m     map[digest.Digest]*Layer
	order []digest.Digest
}

func newLayerLog(start time.Time, p *progress) *layerLog {
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
	l.mu.Lock()
	defer l.mu.Unlock()
	x := l.get(desc.Digest)
	x.Size = desc.Size
	if x.Built == 0 {
		x.Built = time.Since(l.start).Seconds()
	}
}

func (l *layerLog) pushed(ev push.Event) {
	l.mu.Lock()
	x := l.get(ev.Digest)
	x.Size = ev.Size
	x.Pushed = ev.Done.Sub(l.start).Seconds()
	x.Uploaded += ev.Uploaded
	l.mu.Unlock()

	what := "already in the registry"
	if ev.Uploaded > 0 {
		what = "uploaded " + units.HumanSize(float64(ev.Uploaded))
	}
	l.p.span(fmt.Sprintf("[strata] push %s (%s): %s", shortDigest(ev.Digest), units.HumanSize(float64(ev.Size)), what), ev.Started, ev.Done, ev.Err)
}

// list returns the layers in the order BuildKit produced them.
func (l *layerLog) list() []Layer {
	l.mu.Lock()
	defer l.mu.Unlock()
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
