package push

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// registry is go-containerregistry's in-process registry held to the rules
// of distribution that a pusher's mistakes would otherwise slip past:
//
//   - blobs belong to a repository: one uploaded to a is not in b (HEAD and
//     GET answer 404) unless b mounted it;
//   - POST /v2/b/blobs/uploads/?mount=D&from=a answers 201 when a holds D,
//     and otherwise 202 with a plain upload session;
//   - a manifest whose config, layers or (for an index) manifests the
//     repository lacks is refused with 400 MANIFEST_BLOB_UNKNOWN;
//   - DELETE of an upload session answers 204.
//
// It logs every request with the blob bytes it carried, and fails the
// requests fail names.
type registry struct {
	t     *testing.T
	host  string
	inner http.Handler
	blobs *repoBlobs

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced on every change below
	log      []request
	received int64 // upload body bytes read so far, requests still running included
	faults   []*fault
	holds    []*hold
}

// kind is what a request does.
type kind string

const (
	ping         kind = "ping"
	blobHead     kind = "blob HEAD"
	blobGet      kind = "blob GET"
	uploadStart  kind = "upload start"
	mountRequest kind = "mount"
	uploadPatch  kind = "upload PATCH"
	uploadCommit kind = "upload commit"
	uploadCancel kind = "upload cancel"
	manifestPut  kind = "manifest PUT"
	manifestGet  kind = "manifest GET"
	tagsList     kind = "tags list"
	otherRequest kind = "other"
)

// request is one request the registry answered.
type request struct {
	kind   kind
	repo   string
	target string // the digest or tag of a blob or manifest request; the mounted digest
	status int    // 0: the connection was reset
	body   int64  // blob bytes read from the request
}

// fault fails the first n requests of a kind to a repository ("": any):
// with status, or when it is 0 by resetting the connection before reading
// anything.
type fault struct {
	kind   kind
	repo   string
	n      int
	status int
}

// hold keeps the first request of a kind waiting until released.
type hold struct {
	kind     kind
	arrived  chan struct{}
	released chan struct{}
	used     bool
}

func newRegistry(t *testing.T) *registry {
	t.Helper()
	r := &registry{t: t, blobs: &repoBlobs{m: map[string]map[string][]byte{}}, changed: make(chan struct{})}
	r.inner = ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)), ggcrregistry.WithBlobHandler(r.blobs))
	srv := httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(srv.Close)
	r.host = strings.TrimPrefix(srv.URL, "http://")
	return r
}

// repo names repository path in this registry.
func (r *registry) repo(path string) name.Repository {
	r.t.Helper()
	repo, err := name.NewRepository(r.host + "/" + path)
	if err != nil {
		r.t.Fatal(err)
	}
	return repo
}

// fail makes the first n requests of k to repo ("": any) fail with status
// (0: a connection reset).
func (r *registry) fail(k kind, repo string, n, status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.faults = append(r.faults, &fault{kind: k, repo: repo, n: n, status: status})
}

// hold makes the next request of k wait, before it is answered, until
// release is called; arrived is closed when it comes.
func (r *registry) hold(k kind) (arrived <-chan struct{}, release func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := &hold{kind: k, arrived: make(chan struct{}), released: make(chan struct{})}
	r.holds = append(r.holds, h)
	var once sync.Once
	release = func() { once.Do(func() { close(h.released) }) }
	r.t.Cleanup(release)
	return h.arrived, release
}

func (r *registry) serve(w http.ResponseWriter, req *http.Request) {
	k, repo, target := classifyRequest(req)
	r.mu.Lock()
	var held *hold
	for _, h := range r.holds {
		if h.kind == k && !h.used {
			h.used, held = true, h
			break
		}
	}
	r.mu.Unlock()
	if held != nil {
		close(held.arrived)
		<-held.released
	}
	if status, failed := r.faulty(k, repo); failed {
		r.record(request{kind: k, repo: repo, target: target, status: status})
		if status == 0 {
			resetConnection(w)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"errors":[{"code":"%s","message":"refused by the test"}]}`, errorCode(status))
		return
	}

	var body *countingReader
	if k == uploadPatch || k == uploadCommit {
		body = &countingReader{r: req.Body, reg: r}
		req.Body = body
	}
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	switch k {
	case mountRequest:
		from := req.URL.Query().Get("from")
		if r.blobs.mount(from, repo, target) {
			sw.Header().Set("Location", fmt.Sprintf("/v2/%s/blobs/%s", repo, target))
			sw.Header().Set("Docker-Content-Digest", target)
			sw.WriteHeader(http.StatusCreated)
			break
		}
		// Declined: a plain upload session, as distribution starts.
		q := req.URL.Query()
		q.Del("mount")
		q.Del("from")
		q.Del("origin")
		req.URL.RawQuery = q.Encode()
		r.inner.ServeHTTP(sw, req)
	case uploadCancel:
		sw.WriteHeader(http.StatusNoContent)
	case manifestPut:
		dt, err := io.ReadAll(req.Body)
		if err != nil {
			http.Error(sw, err.Error(), http.StatusBadRequest)
			break
		}
		if missing := r.missing(repo, dt); missing != "" {
			sw.Header().Set("Content-Type", "application/json")
			sw.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(sw, `{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry","detail":%q}]}`, missing)
			break
		}
		req.Body = io.NopCloser(bytes.NewReader(dt))
		r.inner.ServeHTTP(sw, req)
	default:
		r.inner.ServeHTTP(sw, req)
	}
	rq := request{kind: k, repo: repo, target: target, status: sw.status}
	if body != nil {
		rq.body = body.n
	}
	if k == uploadCommit && rq.status == http.StatusCreated {
		rq.target = req.URL.Query().Get("digest")
	}
	r.record(rq)
}

// faulty reports whether a fault fails this request, and with what status.
func (r *registry) faulty(k kind, repo string) (int, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range r.faults {
		if f.kind == k && (f.repo == "" || f.repo == repo) && f.n > 0 {
			f.n--
			return f.status, true
		}
	}
	return 0, false
}

func errorCode(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "UNAUTHORIZED"
	case http.StatusForbidden:
		return "DENIED"
	case http.StatusTooManyRequests:
		return "TOOMANYREQUESTS"
	}
	return "UNAVAILABLE"
}

// missing names a blob or manifest the manifest dt references that repo
// does not hold, or is "".
func (r *registry) missing(repo string, dt []byte) string {
	var m struct {
		Config    *v1.Descriptor  `json:"config"`
		Layers    []v1.Descriptor `json:"layers"`
		Manifests []v1.Descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(dt, &m); err != nil {
		return "unparsable manifest"
	}
	var blobs []v1.Descriptor
	if m.Config != nil {
		blobs = append(blobs, *m.Config)
	}
	for _, b := range append(blobs, m.Layers...) {
		if !r.blobs.has(repo, b.Digest.String()) {
			return b.Digest.String()
		}
	}
	for _, c := range m.Manifests {
		rec := httptest.NewRecorder()
		r.inner.ServeHTTP(rec, httptest.NewRequest(http.MethodHead, fmt.Sprintf("/v2/%s/manifests/%s", repo, c.Digest), nil))
		if rec.Code != http.StatusOK {
			return c.Digest.String()
		}
	}
	return ""
}

func (r *registry) record(rq request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = append(r.log, rq)
	r.notify()
}

// notify wakes those in until; r.mu is held.
func (r *registry) notify() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// until waits for cond, checked with the registry's state locked after
// every change, and fails the test when it does not come in time.
func (r *registry) until(what string, cond func() bool) {
	r.t.Helper()
	timeout := time.NewTimer(20 * time.Second)
	defer timeout.Stop()
	for {
		r.mu.Lock()
		ok, changed := cond(), r.changed
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-timeout.C:
			r.t.Fatalf("still waiting for %s", what)
		}
	}
}

// requests returns the log of requests of kinds (all when none) to repo
// (every repository when "").
func (r *registry) requests(repo string, kinds ...kind) []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []request
	for _, rq := range r.log {
		if (repo == "" || rq.repo == repo) && (len(kinds) == 0 || contains(kinds, rq.kind)) {
			out = append(out, rq)
		}
	}
	return out
}

// uploaded is the number of blob bytes the registry read from uploads to repo.
func (r *registry) uploaded(repo string) int64 {
	var n int64
	for _, rq := range r.requests(repo, uploadPatch, uploadCommit) {
		n += rq.body
	}
	return n
}

// commits counts, per digest, the uploads to repo the registry committed.
func (r *registry) commits(repo string) map[string]int {
	n := map[string]int{}
	for _, rq := range r.requests(repo, uploadCommit) {
		if rq.status == http.StatusCreated {
			n[rq.target]++
		}
	}
	return n
}

// tags lists the tags of repo.
func (r *registry) tags(repo string) []string {
	r.t.Helper()
	tags, err := remote.List(r.repo(repo))
	var te *transport.Error
	if errors.As(err, &te) && te.StatusCode == http.StatusNotFound {
		return nil // no such repository yet
	}
	if err != nil {
		r.t.Fatal(err)
	}
	return tags
}

// validate pulls ref (a tag or digest in repo) and checks every blob of
// the image against its manifest and config.
func (r *registry) validate(repo, ref string) {
	r.t.Helper()
	sep := ":"
	if strings.Contains(ref, ":") {
		sep = "@"
	}
	rf, err := name.ParseReference(r.host + "/" + repo + sep + ref)
	if err != nil {
		r.t.Fatal(err)
	}
	img, err := remote.Image(rf)
	if err != nil {
		r.t.Fatalf("pull %s: %v", rf, err)
	}
	if err := validate.Image(img); err != nil {
		r.t.Fatalf("%s: %v", rf, err)
	}
}

func contains(ks []kind, k kind) bool {
	for _, x := range ks {
		if x == k {
			return true
		}
	}
	return false
}

// The test registry keeps distribution's rules, or the tests above would
// miss what they are about.
func TestRegistryIsStrict(t *testing.T) {
	reg := newRegistry(t)
	store := newStore(t)
	img := newImage(t, store, nil, 1)
	pushed(t, reg, "app", store, img)
	l := img.layers[0].Digest.String()
	do := func(method, path string) int {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, "http://"+reg.host+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := do(http.MethodHead, "/v2/app/blobs/"+l); got != http.StatusOK {
		t.Errorf("HEAD of a blob app holds: %d", got)
	}
	if got := do(http.MethodHead, "/v2/mirror/blobs/"+l); got != http.StatusNotFound {
		t.Errorf("HEAD in mirror of a blob only app holds: %d, want 404", got)
	}
	if got := do(http.MethodPost, "/v2/mirror/blobs/uploads/?mount="+l+"&from=other"); got != http.StatusAccepted {
		t.Errorf("mount from a repository without the blob: %d, want 202", got)
	}
	if got := do(http.MethodPost, "/v2/mirror/blobs/uploads/?mount="+l+"&from=app"); got != http.StatusCreated {
		t.Errorf("mount from a repository with the blob: %d, want 201", got)
	}
	if got := do(http.MethodHead, "/v2/mirror/blobs/"+l); got != http.StatusOK {
		t.Errorf("HEAD of a mounted blob: %d", got)
	}
	mf, err := content.ReadBlob(t.Context(), store, img.desc)
	if err != nil {
		t.Fatal(err)
	}
	err = remote.Put(reg.repo("mirror").Tag("v1"), rawManifest{data: mf, mediaType: types.MediaType(img.desc.MediaType)})
	var te *transport.Error
	if !errors.As(err, &te) || te.StatusCode != http.StatusBadRequest || !strings.Contains(err.Error(), "MANIFEST_BLOB_UNKNOWN") {
		t.Errorf("manifest put where its config is missing: %v, want 400 MANIFEST_BLOB_UNKNOWN", err)
	}
}

// rawManifest is a manifest's bytes as go-containerregistry puts them.
type rawManifest struct {
	data      []byte
	mediaType types.MediaType
}

func (r rawManifest) RawManifest() ([]byte, error)        { return r.data, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return r.mediaType, nil }
