package regnet

import (
	"io"
	"net/http"
	"testing"
)

func TestPlainHTTP(t *testing.T) {
	insecure := []string{"10.0.0.5:5000", "registry.internal"}
	for host, want := range map[string]bool{
		"localhost:5000": true, "localhost": true, "127.0.0.1:5000": true, "127.1.2.3": true, "[::1]:5000": true,
		"10.0.0.5:5000": true, "registry.internal:443": true, "registry.internal": true,
		"10.0.0.5:5001": false, "10.0.0.6:5000": false, "registry.local": false, "192.168.1.2": false,
		"172.16.0.1:5000": false, "example.com": false, "localhost.example.com": false,
	} {
		if got := PlainHTTP(host, insecure); got != want {
			t.Errorf("PlainHTTP(%s) = %v, want %v", host, got, want)
		}
	}
}

func TestGuard(t *testing.T) {
	var seen string
	g := Guard(roundTripFunc(func(r *http.Request) (*http.Response, error) {
		seen = r.URL.String()
		return nil, io.EOF
	}), []string{"10.0.0.5:5000"})
	for in, want := range map[string]string{
		"http://192.168.1.2/v2/":         "https://192.168.1.2/v2/",
		"http://registry.local:5000/v2/": "https://registry.local:5000/v2/",
		"http://10.0.0.5:5000/v2/":       "http://10.0.0.5:5000/v2/",
		"http://127.0.0.1:5000/v2/":      "http://127.0.0.1:5000/v2/",
		"https://192.168.1.2/v2/":        "https://192.168.1.2/v2/",
	} {
		req, _ := http.NewRequest(http.MethodGet, in, nil)
		_, _ = g.RoundTrip(req)
		if seen != want {
			t.Errorf("%s went out as %s, want %s", in, seen, want)
		}
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
