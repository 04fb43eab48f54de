// Package regnet holds strata's one rule for talking to registries over
// the network: plain HTTP only to registries on the loopback interface (as
// BuildKit and docker allow by default) and to those the user names with
// --insecure-registry; every other request goes over HTTPS.
//
// go-containerregistry would also fall back to plain HTTP for private
// (RFC 1918) and .local addresses; Guard sends those requests over HTTPS.
package regnet

import (
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
)

// PlainHTTP reports whether plain HTTP may be used for host (host or
// host:port): localhost, a loopback address, or a host in insecure (with or
// without its port).
func PlainHTTP(host string, insecure []string) bool {
	if slices.Contains(insecure, host) {
		return true
	}
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	h = strings.Trim(h, "[]")
	if slices.Contains(insecure, h) || h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// Guard returns next with plain HTTP kept to the hosts PlainHTTP allows:
// any other plain HTTP request is sent over HTTPS instead.
func Guard(next http.RoundTripper, insecure []string) http.RoundTripper {
	return &guard{next: next, insecure: insecure}
}

type guard struct {
	next     http.RoundTripper
	insecure []string
}

func (g *guard) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme == "http" && !PlainHTTP(r.URL.Host, g.insecure) {
		r = r.Clone(r.Context())
		r.URL.Scheme = "https"
	}
	return g.next.RoundTrip(r)
}

// ResponseTimeout bounds the wait for a registry's answer once a request
// has been sent in full, so a registry that stops answering fails the
// request (and its retries) instead of hanging the build.
const ResponseTimeout = 5 * time.Minute

// Transport is a new HTTP transport for registry traffic: the standard
// library's defaults, a response timeout, and at most conns connections
// per host (0: no limit, with idle connections kept for reuse as
// go-containerregistry's default transport keeps them).
func Transport(conns int) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = ResponseTimeout
	t.MaxIdleConnsPerHost = 50
	if conns > 0 {
		t.MaxIdleConnsPerHost = conns
		t.MaxConnsPerHost = conns
	}
	return t
}

// NameOptions are the go-containerregistry name options for ref (a
// reference or repository): name.Insecure where PlainHTTP allows it.
func NameOptions(ref string, insecure []string) []name.Option {
	host, _, _ := strings.Cut(ref, "/")
	if PlainHTTP(host, insecure) {
		return []name.Option{name.Insecure}
	}
	return nil
}
