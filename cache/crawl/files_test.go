package crawl

import (
	"crypto/sha256"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"path"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/strata-build/strata/cache"
	"github.com/strata-build/strata/cache/internal/cachetest"
)

// A registry that refuses to serve a COPY layer leaves the step a text
// match, said once for all the layers it refused.
func TestRefusedLayerReadsFallBackToText(t *testing.T) {
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	var refuse sync.Map
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := refuse.Load(path.Base(r.URL.Path)); ok && r.Method == http.MethodGet {
			http.Error(w, "denied", http.StatusForbidden)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	history := []v1.History{{CreatedBy: "base"}, {CreatedBy: "COPY lock ./ # buildkit"}}
	for i := range 2 {
		layers := [][]byte{[]byte("base"), cachetest.LayerTar(t, map[string]string{"lock": fmt.Sprint("lock", i)})}
		refuse.Store(fmt.Sprintf("sha256:%x", sha256.Sum256(layers[1])), true)
		cachetest.PushRaw(t, fmt.Sprintf("%s/r%d/app:latest", host, i), types.OCIConfigJSON, cachetest.Config("amd64", true, history, layers), layers)
	}
	x := cache.NewIndex()
	res, err := Refresh(t.Context(), x, RefreshOptions{Registry: host, Repos: []string{"r0/app", "r1/app"}})
	if err != nil {
		t.Fatal(err)
	}
	if x.Len() != 2 || res.Skipped != 0 {
		t.Fatalf("%d images indexed, %d skipped; want both indexed", x.Len(), res.Skipped)
	}
	for _, m := range x.Images() {
		if m.Steps[1].Sources != "" {
			t.Errorf("%s: COPY sources %q from a layer the registry refused", m.Ref, m.Steps[1].Sources)
		}
	}
	if !strings.Contains(res.TextOnly, "2 could not be read") || strings.Count(res.TextOnly, "\n") != 0 {
		t.Errorf("TextOnly = %q, want one line counting the two refused layers", res.TextOnly)
	}
}
