package push

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
)

// A registry that fails requests now and then (503, a connection reset)
// still gets the image, each blob committed once.
func TestTransientErrorsAreRetried(t *testing.T) {
	for _, tc := range []struct {
		kind   kind
		n      int
		status int // 0: connection reset
	}{
		{blobHead, 2, http.StatusServiceUnavailable},
		{uploadStart, 2, http.StatusServiceUnavailable},
		{uploadStart, 1, 0},
		{uploadCommit, 2, http.StatusServiceUnavailable},
		{uploadCommit, 1, 0},
		{uploadCommit, 1, http.StatusTooManyRequests},
		{manifestPut, 2, http.StatusServiceUnavailable},
		{manifestPut, 1, 0},
	} {
		what := "reset"
		if tc.status != 0 {
			what = fmt.Sprint(tc.status)
		}
		t.Run(fmt.Sprintf("%s %dx %s", tc.kind, tc.n, what), func(t *testing.T) {
			t.Parallel()
			reg := newRegistry(t)
			store := newStore(t)
			img := newImage(t, store, nil, 2)
			reg.fail(tc.kind, "", tc.n, tc.status)
			p, evs := newPusher(t, reg, "app", store)
			if err := p.PushImage(t.Context(), img.desc, []name.Tag{tag(t, reg, "app", "v1")}); err != nil {
				t.Fatal(err)
			}
			reg.validate("app", "v1")
			failed := 0
			for _, r := range reg.requests("app", tc.kind) {
				if r.status == tc.status {
					failed++
				}
			}
			if failed != tc.n {
				t.Fatalf("%d requests failed, want %d: the test did not test", failed, tc.n)
			}
			commits := reg.commits("app")
			for _, b := range img.blobs() {
				if commits[b.Digest.String()] != 1 {
					t.Errorf("%s committed %d times, want once", b.Digest, commits[b.Digest.String()])
				}
				evs.once(t, b.Digest)
			}
		})
	}
}
