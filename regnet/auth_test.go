package regnet

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/strata-build/strata/errs"
)

func TestChallengeParams(t *testing.T) {
	got := challengeParams(`Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:team/app:pull,push",error="insufficient_scope"`)
	want := map[string]string{"realm": "https://auth.example.com/token", "service": "registry.example.com", "scope": "repository:team/app:pull,push", "error": "insufficient_scope"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if p := challengeParams(`Basic realm=strata`); p["realm"] != "strata" {
		t.Errorf("unquoted: %v", p)
	}
}

// The watch names the cause of each bearer-auth failure, from real HTTP
// exchanges with a server that answers as distribution's token auth does.
func TestAuthWatchCause(t *testing.T) {
	reason := ""
	tokenStatus := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			w.WriteHeader(tokenStatus)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="x",service="reg",scope="repository:team/app:pull,push",error="`+reason+`"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer srv.Close()
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close()
	// A registry that does not answer is not an auth failure.
	req, _ := http.NewRequest(http.MethodGet, downURL+"/v2/", nil)
	if _, err := WatchAuth(http.DefaultTransport).RoundTrip(req); err == nil {
		t.Fatal("a closed server answered")
	}
	failed := &transport.Error{StatusCode: http.StatusUnauthorized, Errors: []transport.Diagnostic{{Code: transport.UnauthorizedErrorCode, Message: "authentication required"}}}

	for _, tc := range []struct {
		name   string
		reason string
		token  string // URL of the token request sent first, if any
		status int
		want   string
	}{
		{"no auth trouble", "", "", 0, "UNAUTHORIZED: authentication required"},
		{"another error after a refusal", "insufficient_scope", "", -1, "MANIFEST_INVALID"},
		{"push scope missing", "insufficient_scope", "", 0, "gave a token without the scope repository:team/app:pull,push: the credentials in the docker config may not do that there"},
		{"token refused", "invalid_token", "", 0, "refused a fresh token from its own token service (invalid_token)"},
		{"token service down", "", downURL + "/token", 0, "the token service " + strings.TrimPrefix(downURL, "http://") + " of reg.example.com does not answer (connection refused): check that it runs"},
		{"credentials refused", "", srv.URL + "/token", http.StatusUnauthorized, "refused the credentials: log in again with 'docker login reg.example.com'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := WatchAuth(http.DefaultTransport)
			reason, tokenStatus = tc.reason, tc.status
			if tc.token != "" {
				req, _ := http.NewRequest(http.MethodGet, tc.token, nil)
				if resp, err := w.RoundTrip(req); err == nil {
					resp.Body.Close()
				}
			}
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v2/team/app/blobs/uploads/", nil)
			if tc.reason != "" {
				req.Header.Set("Authorization", "Bearer abc")
			}
			resp, err := w.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			var failure error = failed
			if tc.status == -1 {
				failure = &transport.Error{StatusCode: http.StatusBadRequest, Errors: []transport.Diagnostic{{Code: transport.ManifestInvalidErrorCode}}}
			}
			got := w.Cause(failure, "reg.example.com")
			if got == nil {
				got = failure
			}
			if !strings.Contains(got.Error(), tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if tc.status != -1 && (tc.reason != "" || tc.token != "") {
				if errs.Code(got) != errs.ExitRegistry {
					t.Errorf("exit code %d", errs.Code(got))
				}
			}
		})
	}
}
