package build

import (
	"context"

	"github.com/containerd/containerd/v2/core/content"
	cerrdefs "github.com/containerd/errdefs"
)

// minSkipSize is the smallest blob the store checks the registry for:
// manifests and configs are smaller and always written, so strata can read
// them back.
const minSkipSize = 64 << 10

// knownStore is the client-side store exports write into. A layer every
// target repository already holds is answered "already exists", so BuildKit
// does not send it over the session (base image layers, layers of a cache
// hit): only what the registry lacks reaches the client.
type knownStore struct {
	content.Store
	pushers []*pusher
}

func (s *knownStore) Writer(ctx context.Context, opts ...content.WriterOpt) (content.Writer, error) {
	var wo content.WriterOpts
	for _, o := range opts {
		if err := o(&wo); err != nil {
			return nil, err
		}
	}
	if wo.Desc.Digest != "" && wo.Desc.Size >= minSkipSize && s.allHave(ctx, wo) {
		return nil, cerrdefs.ErrAlreadyExists
	}
	return s.Store.Writer(ctx, opts...)
}

func (s *knownStore) allHave(ctx context.Context, wo content.WriterOpts) bool {
	if len(s.pushers) == 0 {
		return false
	}
	for _, p := range s.pushers {
		if ok, err := p.Has(ctx, wo.Desc); err != nil || !ok {
			return false
		}
	}
	return true
}
