package stream

import (
	"context"
	"testing"
	"time"

	"github.com/moby/buildkit/client"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// The image is finished once the main export's statuses say its manifest
// and its config are written, from the manifest they name; an index, an
// attestation or a status still running starts nothing, and every status
// still reaches the display.
func TestFinisherStartsOnTheExportedManifest(t *testing.T) {
	manifest, config := digest.FromString("manifest"), digest.FromString("config")
	now := time.Now()
	status := func(id string, done bool) *client.SolveStatus {
		s := &client.VertexStatus{ID: id, Started: &now}
		if done {
			s.Completed = &now
		}
		return &client.SolveStatus{Statuses: []*client.VertexStatus{s}}
	}
	for _, tc := range []struct {
		name     string
		statuses []*client.SolveStatus
		want     digest.Digest
	}{
		{"image", []*client.SolveStatus{
			status("exporting layers", true),
			status("exporting manifest "+manifest.String(), false),
			status("exporting manifest "+manifest.String(), true),
			status("exporting config "+config.String(), true),
		}, manifest},
		{"config first", []*client.SolveStatus{
			status("exporting config "+config.String(), true),
			status("exporting manifest "+manifest.String(), true),
		}, manifest},
		{"config still running", []*client.SolveStatus{
			status("exporting manifest "+manifest.String(), true),
			status("exporting config "+config.String(), false),
		}, ""},
		{"index and attestation", []*client.SolveStatus{
			status("exporting attestation manifest "+manifest.String(), true),
			status("exporting manifest list "+manifest.String(), true),
			status("exporting config "+config.String(), true),
		}, ""},
		{"no digest", []*client.SolveStatus{
			status("exporting manifest sha256:zz", true),
			status("exporting config "+config.String(), true),
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFinisher(context.Background(), nil, func() {})
			var started []digest.Digest
			f.finish = func(d digest.Digest) (ocispecs.Descriptor, error) {
				started = append(started, d)
				return ocispecs.Descriptor{Digest: d}, nil
			}
			out := make(chan *client.SolveStatus)
			in := f.watch(out)
			go func() {
				for _, st := range tc.statuses {
					in <- st
				}
				close(in)
			}()
			n := 0
			for range out {
				n++
			}
			f.solveEnded()
			<-f.done
			if n != len(tc.statuses) {
				t.Errorf("%d statuses passed on, want %d", n, len(tc.statuses))
			}
			switch {
			case tc.want == "" && len(started) > 0:
				t.Errorf("finishing started from %v", started)
			case tc.want != "" && (len(started) != 1 || started[0] != tc.want):
				t.Errorf("finishing started from %v, want %s once", started, tc.want)
			}
		})
	}
}

// The image finished beside the solve is the push's only when it is the
// one the solve's response describes.
func TestFinisherResultIsTheResponsesImage(t *testing.T) {
	manifest := digest.FromString("manifest")
	finished := ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageManifest, Digest: digest.FromString("converted")}
	store := testStore(t)
	resp := func(d digest.Digest) map[string]string {
		r := map[string]string{}
		setExportedDescriptor(t.Context(), store, r, ocispecs.Descriptor{MediaType: ocispecs.MediaTypeImageManifest, Digest: d})
		return r
	}
	for _, tc := range []struct {
		name  string
		start bool
		resp  map[string]string
		err   error
		early bool
	}{
		{"finished", true, resp(manifest), nil, true},
		{"another image", true, resp(digest.FromString("index")), nil, false},
		{"not started", false, resp(manifest), nil, false},
		{"not early", true, resp(manifest), errNotEarly, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFinisher(context.Background(), &streamedPush{target: &target{store: store}}, func() {})
			f.finish = func(digest.Digest) (ocispecs.Descriptor, error) { return finished, tc.err }
			if tc.start {
				f.start(manifest)
			}
			f.solveEnded()
			desc, early, err := f.result(tc.resp)
			if early != tc.early || err != nil {
				t.Fatalf("result: early %v, %v; want early %v", early, err, tc.early)
			}
			if early && (desc.Digest != finished.Digest || tc.resp["containerimage.digest"] != finished.Digest.String()) {
				t.Errorf("result %s, response digest %q; want %s in both", desc.Digest, tc.resp["containerimage.digest"], finished.Digest)
			}
		})
	}
}
