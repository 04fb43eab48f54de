package testenv

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// TokenServer issues the bearer tokens of distribution's token auth, as
// Docker Hub, GHCR or Harbor do: it checks basic credentials, grants the
// actions each user may have on the scopes asked for, and signs a JWT with
// a key whose certificate (x5c) chains to CA, which the registry trusts
// through rootcertbundle.
type TokenServer struct {
	Realm   string // http://localhost:PORT/token
	Service string // the audience the registry accepts
	Issuer  string
	CA      *CA
	// TTL is how long tokens are valid (default five minutes).
	TTL time.Duration

	signer  *ecdsa.PrivateKey
	x5c     []string
	srv     *http.Server
	mu      sync.Mutex
	users   map[string]tokenUser
	issued  []string
	forgery bool
	noCat   bool
}

type tokenUser struct {
	password string
	push     bool
}

// StartTokenServer starts a token server on a free loopback port with its
// CA and signing certificate in dir.
func StartTokenServer(dir string) (*TokenServer, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	ca, err := NewCA(dir, "token-ca")
	if err != nil {
		return nil, err
	}
	// Distribution verifies the x5c chain with Go's default key usage,
	// server authentication.
	certFile, keyFile, err := ca.Issue(dir, "token-signer", CertOptions{Server: true})
	if err != nil {
		return nil, err
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	ts := &TokenServer{
		// A host name, as hosted registries' token services have:
		// go-containerregistry refuses a realm on a private or
		// loopback IP address unless it is the registry's own host.
		Realm:   fmt.Sprintf("http://localhost:%d/token", l.Addr().(*net.TCPAddr).Port),
		Service: "strata-test-registry",
		Issuer:  "strata-test-token-server",
		CA:      ca,
		TTL:     5 * time.Minute,
		signer:  pair.PrivateKey.(*ecdsa.PrivateKey),
		x5c:     []string{base64.StdEncoding.EncodeToString(pair.Certificate[0])},
		users:   map[string]tokenUser{},
	}
	ts.srv = &http.Server{Handler: http.HandlerFunc(ts.serveToken), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = ts.srv.Serve(l) }()
	return ts, nil
}

// AddUser lets user in with password: pull on every repository, and push
// too when push is set.
func (ts *TokenServer) AddUser(user, password string, push bool) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.users[user] = tokenUser{password: password, push: push}
}

// Forge makes the server sign tokens for another issuer from now on: the
// registry refuses them, so a client gets a 401 with a fresh token.
func (ts *TokenServer) Forge() {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.forgery = true
}

// DenyCatalog stops granting the catalog, as Docker Hub and GHCR do not
// offer it (and Harbor only to admins).
func (ts *TokenServer) DenyCatalog() {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.noCat = true
}

// Tokens returns every token issued so far.
func (ts *TokenServer) Tokens() []string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return slices.Clone(ts.issued)
}

// Stop shuts the server down: later token requests are refused connections.
func (ts *TokenServer) Stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = ts.srv.Shutdown(ctx)
}

// WithTokenAuth makes the registry answer 401 with a Bearer challenge
// naming ts, and accept only tokens ts signed.
func WithTokenAuth(ts *TokenServer) RegistryOption {
	return func(dir string, r *Registry) error {
		bundle := filepath.Join(dir, "token-rootcerts.pem")
		if err := copyFile(ts.CA.CertFile, bundle); err != nil {
			return err
		}
		r.auth = fmt.Sprintf("auth:\n  token:\n    realm: %s\n    service: %s\n    issuer: %s\n    rootcertbundle: %s\n",
			ts.Realm, ts.Service, ts.Issuer, bundle)
		return nil
	}
}

type resourceActions struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

func (ts *TokenServer) serveToken(w http.ResponseWriter, r *http.Request) {
	user, password, ok := r.BasicAuth()
	ts.mu.Lock()
	u, known := ts.users[user]
	forgery, noCat := ts.forgery, ts.noCat
	ts.mu.Unlock()
	if !ok || !known || u.password != password {
		w.Header().Set("WWW-Authenticate", `Basic realm="strata-test"`)
		http.Error(w, `{"details":"incorrect username or password"}`, http.StatusUnauthorized)
		return
	}
	if r.URL.Query().Get("service") != ts.Service {
		http.Error(w, `{"details":"unknown service"}`, http.StatusBadRequest)
		return
	}
	var access []resourceActions
	for _, scope := range r.URL.Query()["scope"] {
		if ra, ok := grant(scope, u.push, !noCat); ok {
			access = append(access, ra)
		}
	}
	issuer := ts.Issuer
	if forgery {
		issuer = "someone-else"
	}
	tok, err := ts.sign(user, issuer, access)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	ts.mu.Lock()
	ts.issued = append(ts.issued, tok)
	ts.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"token": tok, "access_token": tok, "expires_in": int(ts.TTL.Seconds()), "issued_at": time.Now().UTC().Format(time.RFC3339)})
}

// grant returns the actions of scope ("repository:NAME:pull,push" or
// "registry:catalog:*") the user may have.
func grant(scope string, push, catalog bool) (resourceActions, bool) {
	i, j := strings.Index(scope, ":"), strings.LastIndex(scope, ":")
	if i < 0 || i == j {
		return resourceActions{}, false
	}
	ra := resourceActions{Type: scope[:i], Name: scope[i+1 : j]}
	for _, a := range strings.Split(scope[j+1:], ",") {
		switch {
		case ra.Type == "registry" && ra.Name == "catalog" && a == "*" && catalog,
			ra.Type == "repository" && a == "pull",
			ra.Type == "repository" && a == "push" && push:
			ra.Actions = append(ra.Actions, a)
		}
	}
	return ra, len(ra.Actions) > 0
}

// sign makes an ES256 JWT with the claims distribution checks.
func (ts *TokenServer) sign(subject, issuer string, access []resourceActions) (string, error) {
	now := time.Now()
	jti := make([]byte, 12)
	if _, err := rand.Read(jti); err != nil {
		return "", err
	}
	header, err := json.Marshal(map[string]any{"alg": "ES256", "typ": "JWT", "x5c": ts.x5c})
	if err != nil {
		return "", err
	}
	claims, err := json.Marshal(map[string]any{
		"iss": issuer, "sub": subject, "aud": ts.Service,
		"exp": now.Add(ts.TTL).Unix(), "nbf": now.Add(-time.Second).Unix(), "iat": now.Unix(),
		"jti": base64.RawURLEncoding.EncodeToString(jti), "access": access,
	})
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	signed := enc.EncodeToString(header) + "." + enc.EncodeToString(claims)
	sum := sha256.Sum256([]byte(signed))
	r, s, err := ecdsa.Sign(rand.Reader, ts.signer, sum[:])
	if err != nil {
		return "", err
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signed + "." + enc.EncodeToString(sig), nil
}
