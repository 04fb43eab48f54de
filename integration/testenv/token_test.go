package testenv

import (
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/distribution/distribution/v3/registry/auth/token"
	"github.com/go-jose/go-jose/v4"
)

// The tokens verify with distribution's own verifier, as the registry
// configured by WithTokenAuth runs it, and carry only the actions granted.
func TestTokenServerTokensVerify(t *testing.T) {
	ts, err := StartTokenServer(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer ts.Stop()
	ts.AddUser("ci", "pw", true)
	ts.AddUser("reader", "pw", false)
	roots := x509.NewCertPool()
	roots.AddCert(ts.CA.Cert)
	opts := token.VerifyOptions{TrustedIssuers: []string{ts.Issuer}, AcceptedAudiences: []string{ts.Service}, Roots: roots}

	get := func(user, password string, scopes ...string) (int, string) {
		q := url.Values{"service": {ts.Service}, "scope": scopes}
		req, _ := http.NewRequest(http.MethodGet, ts.Realm+"?"+q.Encode(), nil)
		req.SetBasicAuth(user, password)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct{ Token string }
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body.Token
	}
	actions := func(raw string) map[string][]string {
		tok, err := token.NewToken(raw, []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			t.Fatal(err)
		}
		claims, err := tok.Verify(opts)
		if err != nil {
			t.Fatalf("distribution refuses the token: %v", err)
		}
		got := map[string][]string{}
		for _, a := range claims.Access {
			got[a.Type+":"+a.Name] = a.Actions
		}
		return got
	}

	code, raw := get("ci", "pw", "repository:app:pull,push", "repository:base:pull", "registry:catalog:*")
	if code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	got := actions(raw)
	if !slices.Equal(got["repository:app"], []string{"pull", "push"}) || !slices.Equal(got["repository:base"], []string{"pull"}) || !slices.Equal(got["registry:catalog"], []string{"*"}) {
		t.Errorf("ci granted %v", got)
	}
	_, raw = get("reader", "pw", "repository:app:pull,push")
	if got := actions(raw); !slices.Equal(got["repository:app"], []string{"pull"}) {
		t.Errorf("reader granted %v, want pull only", got)
	}
	if code, _ := get("ci", "wrong", "repository:app:pull"); code != http.StatusUnauthorized {
		t.Errorf("wrong password: status %d", code)
	}
	ts.DenyCatalog()
	_, raw = get("ci", "pw", "registry:catalog:*", "repository:app:pull")
	if got := actions(raw); got["registry:catalog"] != nil {
		t.Errorf("catalog granted after DenyCatalog: %v", got)
	}
	ts.Forge()
	_, raw = get("ci", "pw", "repository:app:pull")
	tok, _ := token.NewToken(raw, []jose.SignatureAlgorithm{jose.ES256})
	if _, err := tok.Verify(opts); err == nil {
		t.Errorf("a forged token verifies")
	}
	if n := len(ts.Tokens()); n != 4 {
		t.Errorf("%d tokens recorded, want 4", n)
	}
}
