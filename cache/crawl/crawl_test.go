package crawl

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/strata-build/strata/cache"
	"github.com/strata-build/strata/cache/internal/cachetest"
	"github.com/strata-build/strata/cache/internal/regopts"
	"github.com/strata-build/strata/errs"
)

func TestRefresh(t *testing.T) {
	host := cachetest.FaultyRegistry(t)
	ctx := t.Context()
	app := host + "/app"
	l3 := cachetest.Layers(3, "app")
	cachetest.PushRaw(t, app+":v1", types.OCIConfigJSON, cachetest.Config("amd64", true, cachetest.History("RUN /bin/sh -c a", "COPY x /x"), l3), l3)
	cachetest.PushRaw(t, app+":v2", types.OCIConfigJSON, cachetest.Config("amd64", true, cachetest.History("RUN /bin/sh -c a", "COPY x /x"), l3), l3)
	cachetest.PushRaw(t, app+":bad", types.OCIConfigJSON, cachetest.Config("amd64", true, cachetest.History("RUN /bin/sh -c a"), l3), l3)
	cachetest.PushRaw(t, app+":nohistory", types.OCIConfigJSON, cachetest.Config("amd64", true, nil, l3), l3)
	legacy := []v1.History{{CreatedBy: "/bin/sh -c #(nop) ADD file:aa in / "}, {CreatedBy: "/bin/sh -c #(nop)  CMD [\"sh\"]", EmptyLayer: true}, {CreatedBy: "/bin/sh -c make"}}
	cachetest.PushRaw(t, app+":legacy", types.DockerConfigJSON, cachetest.Config("amd64", false, legacy, cachetest.Layers(2, "legacy")), cachetest.Layers(2, "legacy"))
	cachetest.PushRaw(t, app+":helm", "application/vnd.cncf.helm.config.v1+json", []byte(`{}`), cachetest.Layers(1, "chart"))
	cachetest.PushRaw(t, app+":buildcache", buildkitCacheConfig, []byte(`{}`), cachetest.Layers(1, "cache")) // skipped silently
	cachetest.PushRaw(t, app+":boom", types.OCIConfigJSON, cachetest.Config("amd64", true, cachetest.History(), cachetest.Layers(1, "boom")), cachetest.Layers(1, "boom"))
	huge := cachetest.History("RUN /bin/sh -c " + strings.Repeat("z", 1<<20))
	cachetest.PushRaw(t, host+"/other:huge", types.OCIConfigJSON, cachetest.Config("amd64", true, huge, cachetest.Layers(2, "huge")), cachetest.Layers(2, "huge"))

	amd := cachetest.PushRaw(t, app+":tmp-amd", types.OCIConfigJSON, cachetest.Config("amd64", true, cachetest.History("RUN /bin/sh -c m"), cachetest.Layers(2, "ma")), cachetest.Layers(2, "ma"))
	arm := cachetest.PushRaw(t, app+":tmp-arm", types.OCIConfigJSON, cachetest.Config("arm64", true, cachetest.History("RUN /bin/sh -c m"), cachetest.Layers(2, "mb")), cachetest.Layers(2, "mb"))
	att := cachetest.PushRaw(t, app+":tmp-att", "application/vnd.in-toto+json", []byte(`{}`), cachetest.Layers(1, "att"))
	im := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{
		amd.Descriptor(&v1.Platform{OS: "linux", Architecture: "amd64"}),
		arm.Descriptor(&v1.Platform{OS: "linux", Architecture: "arm64"}),
		att.Descriptor(&v1.Platform{OS: "unknown", Architecture: "unknown"}),
	}}
	body, _ := json.Marshal(im)
	r, _ := name.ParseReference(app + ":multi")
	if err := remote.Put(r, cachetest.RawManifest{MT: types.OCIImageIndex, Body: body}); err != nil {
		t.Fatal(err)
	}
	for _, tag := range []string{"tmp-amd", "tmp-arm", "tmp-att"} {
		if err := remote.Delete(r.Context().Tag(tag)); err != nil {
			t.Logf("delete tag %s: %v", tag, err) // the in-process registry deletes tags
		}
	}

	x := cache.NewIndex()
	noRetry := func(o *regopts.Options) { o.Extra = append(o.Extra, remote.WithRetryBackoff(remote.Backoff{Steps: 1})) }
	opts := []Option{WithKeychain(authn.NewMultiKeychain()), WithJobs(4), noRetry}
	res, err := Refresh(ctx, x, RefreshOptions{Registry: host}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	want := map[string]bool{app + ":v1|linux/amd64": true, app + ":v2|linux/amd64": true, app + ":legacy|linux/amd64": true,
		app + ":multi|linux/amd64": true, app + ":multi|linux/arm64": true, host + "/other:huge|linux/amd64": true}
	got := map[string]bool{}
	for _, m := range x.Images() {
		got[m.ID()] = true
	}
	for id := range want {
		if !got[id] {
			t.Errorf("%s not indexed", id)
		}
	}
	for id := range got {
		if !want[id] {
			t.Errorf("%s indexed", id)
		}
	}
	warnings := strings.Join(res.Warnings, "\n")
	if strings.Contains(warnings, ":buildcache") {
		t.Errorf("warned about a registry cache export:\n%s", warnings)
	}
	if want := []string{app + ":buildcache"}; !slices.Equal(res.CacheExports, want) {
		t.Errorf("cache exports %v, want %v", res.CacheExports, want)
	}
	for _, w := range []string{":bad", ":nohistory", ":helm", ":boom"} {
		if !strings.Contains(warnings, w) {
			t.Errorf("no warning about %s in:\n%s", w, warnings)
		}
	}
	if res.Fetched+res.Reused != 5 { // v1 and v2 share a digest; multi counts once
		t.Errorf("fetched %d + reused %d, want 5", res.Fetched, res.Reused)
	}
	if m, _ := x.Get(app+":legacy", "linux/amd64"); m == nil || m.InlineCache || m.Steps[0].Sources != "file:aa" {
		t.Errorf("legacy image: %+v", m)
	}
	if m, _ := x.Get(app+":v1", "linux/amd64"); m == nil || !m.InlineCache || len(m.Layers) != 3 || m.Layers[2].Size != 4 {
		t.Errorf("v1: %+v", m)
	}

	// Nothing new: nothing fetched.
	res, err = Refresh(ctx, x, RefreshOptions{Registry: host, Repos: []string{"app", "oth*"}}, opts...)
	if err != nil || res.Fetched != 0 || res.Reused != 5 || res.Removed != 0 {
		t.Fatalf("second refresh: %+v %v", res, err)
	}
	// A moved tag is fetched again, a deleted one drops out.
	cachetest.PushRaw(t, app+":v2", types.OCIConfigJSON, cachetest.Config("amd64", true, cachetest.History("RUN /bin/sh -c b"), cachetest.Layers(2, "v2")), cachetest.Layers(2, "v2"))
	if err := remote.Delete(r.Context().Tag("legacy")); err != nil {
		t.Fatal(err)
	}
	// The multi-platform tag becomes a single-platform image: its other platform drops out.
	cachetest.PushRaw(t, app+":multi", types.OCIConfigJSON, cachetest.Config("arm64", true, cachetest.History("RUN /bin/sh -c m"), cachetest.Layers(2, "mb")), cachetest.Layers(2, "mb"))
	res, err = Refresh(ctx, x, RefreshOptions{Registry: host, Repos: []string{"app"}}, opts...)
	if err != nil || res.Fetched != 2 || res.Removed != 1 {
		t.Fatalf("third refresh: %+v %v", res, err)
	}
	if _, ok := x.Get(app+":multi", "linux/amd64"); ok {
		t.Error("platform gone from the tag still indexed")
	}
	if _, ok := x.Get(app+":multi", "linux/arm64"); !ok {
		t.Error("remaining platform dropped")
	}
	if _, ok := x.Get(app+":legacy", "linux/amd64"); ok {
		t.Error("deleted tag still indexed")
	}
	if m, _ := x.Get(app+":v2", "linux/amd64"); m == nil || m.Steps[1].Text != "RUN /bin/sh -c b" {
		t.Errorf("moved tag: %+v", m)
	}

	// A tag moved to a manifest already indexed under another tag takes
	// that manifest's entries and loses the platforms it had before.
	cachetest.PushRaw(t, app+":multi", types.OCIConfigJSON, cachetest.Config("amd64", true, cachetest.History("RUN /bin/sh -c a", "COPY x /x"), l3), l3) // v1's image
	res, err = Refresh(ctx, x, RefreshOptions{Registry: host, Repos: []string{"app"}}, opts...)
	if err != nil || res.Fetched != 0 || res.Reused != 3 {
		t.Fatalf("fourth refresh: %+v %v", res, err)
	}
	if _, ok := x.Get(app+":multi", "linux/arm64"); ok {
		t.Error("a platform the moved tag no longer has is still indexed")
	}
	if m, ok := x.Get(app+":multi", "linux/amd64"); !ok || m.Steps[2].Text != "COPY x /x" {
		t.Errorf("the moved tag does not hold v1's image: %+v", m)
	}

	// Named repositories work without the catalog; a missing one is empty.
	y := cache.NewIndex()
	res, err = Refresh(ctx, y, RefreshOptions{Registry: host, Repos: []string{"app", "nope", "secret"}}, opts...)
	if err != nil || y.Len() != 3 || res.Skipped != 5 || !strings.Contains(strings.Join(res.Warnings, "\n"), "secret") {
		t.Errorf("named repos: %d images, %+v, %v", y.Len(), res, err)
	}
}

func TestPlainHTTPOnlyForLoopback(t *testing.T) {
	var seen []string
	o := regopts.New([]Option{WithInsecureRegistries("10.0.0.5:5000"), withTransport(roundTripFunc(func(r *http.Request) (*http.Response, error) {
		seen = append(seen, r.URL.String())
		return nil, io.EOF
	}))})
	for _, u := range []string{"http://192.168.1.2/v2/", "http://10.0.0.5:5000/v2/"} {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		_, _ = o.Base.RoundTrip(req)
	}
	if want := []string{"https://192.168.1.2/v2/", "http://10.0.0.5:5000/v2/"}; !slices.Equal(seen, want) {
		t.Errorf("requests went out as %v, want %v", seen, want)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestDropGoneRepos(t *testing.T) {
	x := cache.NewIndex()
	for _, ref := range []string{"r.example/team/a:1", "r.example/team/b:1", "r.example/other/c:1", "elsewhere/team/d:1"} {
		x.Put(cachetest.Image(ref, "linux/amd64", "base"))
		x.Put(cachetest.Image(ref, "linux/arm64", "base"))
	}
	c := &crawler{x: x, host: "r.example", res: &RefreshResult{}, now: cachetest.T0.Add(time.Hour), indexed: map[string][]string{}}
	for _, m := range x.Images() {
		if repo, ok := c.repoOf(m.Ref); ok && !slices.Contains(c.indexed[repo], m.Ref) {
			c.indexed[repo] = append(c.indexed[repo], m.Ref)
		}
	}
	c.dropGoneRepos([]string{"team/a"}, []string{"team/*"})
	var left []string
	for _, m := range x.Images() {
		left = append(left, m.ID())
	}
	slices.Sort(left)
	want := []string{"elsewhere/team/d:1|linux/amd64", "elsewhere/team/d:1|linux/arm64", "r.example/other/c:1|linux/amd64", "r.example/other/c:1|linux/arm64",
		"r.example/team/a:1|linux/amd64", "r.example/team/a:1|linux/arm64"}
	if !slices.Equal(left, want) || c.res.Removed != 1 {
		t.Errorf("left %v, removed %d", left, c.res.Removed)
	}
}

func TestPickTags(t *testing.T) {
	tags := []string{"v1.9", "feature-x", "latest", "v1.10", "main", "v1.2", "sha-0a1b"}
	for _, tc := range []struct {
		n    int
		want []string
	}{
		{0, tags},
		{7, tags},
		{3, []string{"latest", "main", "v1.10"}},
		{5, []string{"latest", "main", "v1.10", "v1.9", "v1.2"}},
	} {
		if got := pickTags(tags, tc.n); !slices.Equal(got, tc.want) {
			t.Errorf("pickTags(%d) = %v, want %v", tc.n, got, tc.want)
		}
	}
}

// A repository with many tags costs one tag list and MaxTags images.
func TestRefreshMaxTags(t *testing.T) {
	host := cachetest.FaultyRegistry(t)
	for i := range 40 {
		l := cachetest.Layers(2, fmt.Sprint("many", i))
		cachetest.PushRaw(t, fmt.Sprintf("%s/many:v1.%d", host, i), types.OCIConfigJSON, cachetest.Config("amd64", true, cachetest.History("RUN /bin/sh -c a"), l), l)
	}
	x := cache.NewIndex()
	res, err := Refresh(t.Context(), x, RefreshOptions{Registry: host, Repos: []string{"many"}, MaxTags: 5})
	if err != nil {
		t.Fatal(err)
	}
	if res.Tags != 5 || res.Unread != 35 || res.Fetched != 5 || x.Len() != 5 {
		t.Fatalf("result %+v with %d images indexed, want 5 tags read, 35 unread", res, x.Len())
	}
	for _, m := range x.Images() {
		if !slices.Contains([]string{"v1.39", "v1.38", "v1.37", "v1.36", "v1.35"}, m.Ref[strings.LastIndexByte(m.Ref, ':')+1:]) {
			t.Errorf("read %s, want the five newest versions", m.Ref)
		}
	}
}

// With nothing indexed, each tag's manifest is read at once; once indexed,
// a HEAD per tag finds it unchanged and nothing more is read.
func TestRefreshHeadsOnlyWhatCanBeReused(t *testing.T) {
	host := cachetest.FaultyRegistry(t)
	l := cachetest.Layers(2, "app")
	for _, tag := range []string{"v1", "v2"} {
		cachetest.PushRaw(t, host+"/app:"+tag, types.OCIConfigJSON, cachetest.Config("amd64", true, cachetest.History("RUN /bin/sh -c a"), l), l)
	}
	var mu sync.Mutex
	count := map[string]int{}
	counting := withTransport(roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if strings.Contains(r.URL.Path, "/manifests/") {
			mu.Lock()
			count[r.Method]++
			mu.Unlock()
		}
		return http.DefaultTransport.RoundTrip(r)
	}))
	x := cache.NewIndex()
	opts := []Option{WithKeychain(authn.NewMultiKeychain()), counting}
	for i, want := range []map[string]int{{http.MethodGet: 2}, {http.MethodHead: 2}} {
		clear(count)
		res, err := Refresh(t.Context(), x, RefreshOptions{Registry: host, Repos: []string{"app"}}, opts...)
		if err != nil || x.Len() != 2 {
			t.Fatalf("refresh %d: %d images, %+v, %v", i+1, x.Len(), res, err)
		}
		if !maps.Equal(count, want) {
			t.Errorf("refresh %d: manifest requests %v, want %v", i+1, count, want)
		}
	}
}

// With NoPing the tag list is the first request (one /v2/ check less); a
// repository whose tags cannot be listed is skipped with a warning as
// before, a missing one is no error, and a registry that does not answer
// at all still fails the refresh.
func TestRefreshNoPing(t *testing.T) {
	host := cachetest.FaultyRegistry(t)
	l := cachetest.Layers(2, "app")
	cachetest.PushRaw(t, host+"/app:v1", types.OCIConfigJSON, cachetest.Config("amd64", true, cachetest.History("RUN /bin/sh -c a"), l), l)
	var mu sync.Mutex
	pings := 0
	counting := withTransport(roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.URL.Path == "/v2/" && r.URL.Scheme == "http" { // the registry is plain HTTP
			mu.Lock()
			pings++
			mu.Unlock()
		}
		return http.DefaultTransport.RoundTrip(r)
	}))
	opts := []Option{WithKeychain(authn.NewMultiKeychain()), counting}
	for noPing, want := range map[bool]int{false: 2, true: 1} {
		pings = 0
		x := cache.NewIndex()
		if res, err := Refresh(t.Context(), x, RefreshOptions{Registry: host, Repos: []string{"app"}, NoPing: noPing}, opts...); err != nil || x.Len() != 1 {
			t.Fatalf("no ping %v: %d images, %+v, %v", noPing, x.Len(), res, err)
		}
		if pings != want {
			t.Errorf("no ping %v: %d requests to /v2/, want %d", noPing, pings, want)
		}
	}
	for _, noPing := range []bool{false, true} {
		res, err := Refresh(t.Context(), cache.NewIndex(), RefreshOptions{Registry: host, Repos: []string{"secret"}, NoPing: noPing}, opts...)
		if err != nil || len(res.Warnings) != 1 {
			t.Errorf("no ping %v, a repository refusing its tag list: %+v, %v; want it skipped with a warning", noPing, res, err)
		}
	}
	if res, err := Refresh(t.Context(), cache.NewIndex(), RefreshOptions{Registry: host, Repos: []string{"missing"}, NoPing: true}, opts...); err != nil || res.Tags != 0 || len(res.Warnings) != 0 {
		t.Errorf("with no ping, a missing repository: %+v, %v; want no tags and no error", res, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := ln.Addr().String()
	ln.Close()
	if _, err := Refresh(t.Context(), cache.NewIndex(), RefreshOptions{Registry: gone, Repos: []string{"app"}, NoPing: true}, opts...); !errors.Is(err, errs.ErrRegistry) || !strings.Contains(err.Error(), "reach "+gone) {
		t.Errorf("with no ping, a registry that does not answer: %v; want a registry error naming it", err)
	}
}

func TestIsCacheExport(t *testing.T) {
	host := cachetest.FaultyRegistry(t)
	l := cachetest.Layers(1, "x")
	cachetest.PushRaw(t, host+"/app:buildcache", buildkitCacheConfig, []byte(`{}`), l)
	cachetest.PushRaw(t, host+"/app:v1", types.OCIConfigJSON, cachetest.Config("amd64", true, cachetest.History("RUN /bin/sh -c a"), l), l)
	opts := []Option{WithKeychain(authn.NewMultiKeychain())}
	for ref, want := range map[string]bool{host + "/app:buildcache": true, host + "/app:v1": false, host + "/app:gone": false} {
		got, err := IsCacheExport(t.Context(), ref, opts...)
		if err != nil || got != want {
			t.Errorf("%s: %v %v, want %v", ref, got, err, want)
		}
	}
}
