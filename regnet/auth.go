package regnet

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/strata-build/strata/errs"
)

// AuthWatch is a transport that remembers why bearer-token auth failed, so
// an error can name the cause instead of the bare 401 a client library
// reports: a token service (the realm of a Bearer challenge) that does not
// answer or refuses the credentials, or a registry that refuses the token
// it asked for, with the reason its challenge gives (RFC 6750's error
// parameter: insufficient_scope, invalid_token).
type AuthWatch struct {
	next http.RoundTripper

	mu      sync.Mutex
	service string // host of a token service that failed
	failure string // how it failed
	reason  string // error parameter of the last 401 to a bearer token
	scope   string // scope parameter of that 401
}

// WatchAuth returns next with an AuthWatch over it.
func WatchAuth(next http.RoundTripper) *AuthWatch { return &AuthWatch{next: next} }

// RoundTrip sends r and notes auth failures. Every registry API request
// is under /v2/; any other request a registry client sends is a token
// request to the realm.
func (w *AuthWatch) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := w.next.RoundTrip(r)
	token := !strings.HasPrefix(r.URL.Path, "/v2/")
	switch {
	case token && err != nil:
		w.note(func() { w.service, w.failure = r.URL.Host, fmt.Sprintf("does not answer (%v)", rootCause(err)) })
	case token && resp.StatusCode >= 400:
		w.note(func() { w.service, w.failure = r.URL.Host, "answers "+resp.Status })
	case token:
		w.note(func() { w.service, w.failure = "", "" })
	case err != nil:
	case resp.StatusCode == http.StatusUnauthorized && strings.HasPrefix(r.Header.Get("Authorization"), "Bearer "):
		p := challengeParams(resp.Header.Get("WWW-Authenticate"))
		w.note(func() { w.reason, w.scope = p["error"], p["scope"] })
	}
	return resp, err
}

func (w *AuthWatch) note(f func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	f()
}

// Cause returns a registry error naming the auth failure behind err, as
// the watch saw it, and what to do; nil when it saw none.
func (w *AuthWatch) Cause(err error, registry string) error {
	if err == nil {
		return nil
	}
	w.mu.Lock()
	service, failure, reason, scope := w.service, w.failure, w.reason, w.scope
	w.mu.Unlock()
	// A refusal noted earlier explains only a refusal: a token can expire
	// and be renewed on the way, and other errors have other causes.
	var te *transport.Error
	if !errors.As(err, &te) || te.StatusCode != http.StatusUnauthorized && te.StatusCode != http.StatusForbidden {
		reason = ""
	}
	switch {
	case service != "" && strings.HasPrefix(failure, "answers 401"):
		return errs.WithHint(fmt.Errorf("%w: the token service %s of %s refused the credentials", errs.ErrRegistry, service, registry),
			"log in again with 'docker login "+registry+"' (strata reads the docker config and its credential helpers)")
	case service != "":
		return errs.WithHint(fmt.Errorf("%w: the token service %s of %s %s", errs.ErrRegistry, service, registry, failure),
			"check that it runs and is reachable from here, then build again")
	case reason == "insufficient_scope":
		return errs.WithHint(fmt.Errorf("%w: %s gave a token without the scope %s", errs.ErrRegistry, registry, scope),
			"the credentials in the docker config may not do that there: grant the account push on the repository, or use one that has it")
	case reason != "":
		return errs.WithHint(fmt.Errorf("%w: %s refused a fresh token from its own token service (%s)", errs.ErrRegistry, registry, reason),
			"the registry does not trust its token service's tokens (issuer, service or signing certificate), or a clock is off: check the registry's auth configuration")
	}
	return nil
}

// challengeParams parses the parameters of a WWW-Authenticate challenge
// such as: Bearer realm="...",service="...",scope="...",error="insufficient_scope".
func challengeParams(h string) map[string]string {
	p := map[string]string{}
	if i := strings.IndexByte(h, ' '); i >= 0 {
		h = h[i+1:]
	}
	for h != "" {
		eq := strings.IndexByte(h, '=')
		if eq < 0 {
			break
		}
		key := strings.ToLower(strings.TrimSpace(h[:eq]))
		h = h[eq+1:]
		var val string
		if strings.HasPrefix(h, `"`) {
			end := strings.IndexByte(h[1:], '"')
			if end < 0 {
				end = len(h) - 1
			}
			val, h = h[1:end+1], h[min(end+2, len(h)):]
		} else if c := strings.IndexByte(h, ','); c >= 0 {
			val, h = h[:c], h[c:]
		} else {
			val, h = h, ""
		}
		p[key] = val
		h = strings.TrimLeft(h, ", ")
	}
	return p
}

// rootCause is the innermost error's text, without the URL and operation
// prefixes the net and http packages add.
func rootCause(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		return s[i+2:]
	}
	return s
}
