package regnet

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// answers is a transport that answers each request with the next of its
// outcomes, and records the bodies it was sent.
type answers struct {
	outcomes   []any // int status or error
	bodies     []string
	retryAfter string // Retry-After of 429 answers (default 0)
}

func (a *answers) RoundTrip(r *http.Request) (*http.Response, error) {
	var body []byte
	if r.Body != nil {
		body, _ = io.ReadAll(r.Body)
	}
	a.bodies = append(a.bodies, string(body))
	o := a.outcomes[0]
	a.outcomes = a.outcomes[1:]
	if err, ok := o.(error); ok {
		return nil, err
	}
	resp := &http.Response{StatusCode: o.(int), Header: http.Header{}, Body: io.NopCloser(strings.NewReader("")), Request: r}
	if o.(int) == http.StatusTooManyRequests {
		resp.Header.Set("Retry-After", cmp.Or(a.retryAfter, "0"))
	}
	return resp, nil
}

func TestRetry(t *testing.T) {
	for _, tc := range []struct {
		name      string
		method    string
		body      io.Reader // bytes.Reader: rewindable; a plain reader: streamed
		outcomes  []any
		want      int // final status, 0 for an error
		wantSends int
	}{
		{"503 then ok", http.MethodHead, nil, []any{503, 200}, 200, 2},
		{"reset then ok", http.MethodGet, nil, []any{syscall.ECONNRESET, 200}, 200, 2},
		{"429 with Retry-After", http.MethodGet, nil, []any{429, 429, 200}, 200, 3},
		{"rewindable body is sent again whole", http.MethodPut, bytes.NewReader([]byte("manifest")), []any{500, 201}, 201, 2},
		{"streamed body is sent once", http.MethodPatch, io.MultiReader(strings.NewReader("blob")), []any{503, 202}, 503, 1},
		{"not transient", http.MethodGet, nil, []any{404, 200}, 404, 1},
		{"gives up after the tries", http.MethodGet, nil, []any{503, 503, 503, 200}, 503, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &answers{outcomes: tc.outcomes}
			req, _ := http.NewRequest(tc.method, "http://127.0.0.1:1/v2/", tc.body)
			resp, err := Retry(a, 3, time.Millisecond).RoundTrip(req)
			got := 0
			if err == nil {
				got = resp.StatusCode
			}
			if got != tc.want || len(a.bodies) != tc.wantSends {
				t.Fatalf("status %d (%v) after %d sends, want %d after %d", got, err, len(a.bodies), tc.want, tc.wantSends)
			}
			if tc.name == "rewindable body is sent again whole" && (a.bodies[0] != "manifest" || a.bodies[1] != "manifest") {
				t.Errorf("bodies sent: %q", a.bodies)
			}
		})
	}
}

func TestRetryStopsWithTheContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	a := &answers{outcomes: []any{503, 200}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:1/v2/", nil)
	cancel()
	if _, err := Retry(a, 3, time.Hour).RoundTrip(req); err == nil || len(a.bodies) != 1 {
		t.Fatalf("err %v after %d sends: want the context's error after one", err, len(a.bodies))
	}
}

func TestRetryable(t *testing.T) {
	timeout := &net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}
	for err, want := range map[error]bool{
		nil: false, syscall.ECONNRESET: true, io.ErrUnexpectedEOF: true, timeout: false,
		&transport.Error{StatusCode: 503}: true, &transport.Error{StatusCode: 500, Errors: []transport.Diagnostic{{Code: "BLOB_UNKNOWN"}}}: true,
		&transport.Error{StatusCode: 404}: false, errors.New("manifest invalid"): false,
	} {
		if got := Retryable(err); got != want {
			t.Errorf("Retryable(%v) = %v, want %v", err, got, want)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	for v, want := range map[string]time.Duration{"": 0, "3": 3 * time.Second, "soon": 0, "-1": 0} {
		if got := retryAfter(&http.Response{Header: http.Header{"Retry-After": {v}}}); got != want {
			t.Errorf("Retry-After %q = %v, want %v", v, got, want)
		}
	}
	at := time.Now().Add(time.Minute).UTC().Format(http.TimeFormat)
	if got := retryAfter(&http.Response{Header: http.Header{"Retry-After": {at}}}); got < 50*time.Second || got > time.Minute {
		t.Errorf("Retry-After %q = %v, want about a minute", at, got)
	}
	// A long Retry-After waits at most maxRetryAfter: the context ends it first here.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	a := &answers{outcomes: []any{429, 200}}
	a.retryAfter = "3600"
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:1/v2/", nil)
	if _, err := Retry(a, 3, time.Millisecond).RoundTrip(req); !errors.Is(err, context.DeadlineExceeded) || len(a.bodies) != 1 {
		t.Errorf("err %v after %d sends: want the wait cut short by the context", err, len(a.bodies))
	}
}
