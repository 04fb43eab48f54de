package regnet

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Retry returns next with each request that can be sent again (no body, or
// a body it can rewind: GetBody) retried on a transient failure: a
// connection reset or cut short, 429 (waiting as long as Retry-After asks,
// up to maxRetryAfter), 408, 500, 502, 503 or 504. A registry that does
// not answer in time is not asked again (see Retryable). It tries at most tries
// times, waiting first, doubling each time, with the context bounding it
// all. Requests that stream a body (a blob upload's PATCH) are sent once:
// the caller retries those whole.
func Retry(next http.RoundTripper, tries int, first time.Duration) http.RoundTripper {
	return &retry{next: next, tries: max(tries, 1), first: first}
}

// maxRetryAfter caps how long a Retry-After answer makes a request wait.
const maxRetryAfter = 30 * time.Second

type retry struct {
	next  http.RoundTripper
	tries int
	first time.Duration
}

func (t *retry) RoundTrip(r *http.Request) (*http.Response, error) {
	replayable := r.Body == nil || r.Body == http.NoBody || r.GetBody != nil
	wait := t.first
	for try := 1; ; try++ {
		resp, err := t.next.RoundTrip(r)
		if try >= t.tries || !replayable || !transient(resp, err) {
			return resp, err
		}
		d := wait
		if resp != nil {
			if ra := retryAfter(resp); ra > 0 {
				d = min(ra, maxRetryAfter)
			}
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
		if err := sleep(r.Context(), d); err != nil {
			return nil, err
		}
		wait *= 2
		if r.GetBody != nil {
			body, err := r.GetBody()
			if err != nil {
				return nil, err
			}
			r = r.Clone(r.Context())
			r.Body = body
		}
	}
}

func transient(resp *http.Response, err error) bool {
	if err != nil {
		return !isTimeout(err) && (errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) ||
			errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF))
	}
	return transientStatus(resp.StatusCode)
}

func transientStatus(code int) bool {
	switch code {
	case http.StatusTooManyRequests, http.StatusRequestTimeout, http.StatusInternalServerError,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// Retryable reports whether a failed registry operation is worth another
// try: a connection reset, cut short or refused, or an error that says it
// is temporary; never a timeout, so a registry that stops answering fails
// once ResponseTimeout has passed instead of that many times over.
func Retryable(err error) bool {
	if err == nil || isTimeout(err) {
		return false
	}
	var te *transport.Error
	if errors.As(err, &te) && transientStatus(te.StatusCode) {
		return true
	}
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary() || transient(nil, err) || errors.Is(err, net.ErrClosed)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// retryAfter reads a Retry-After header in seconds or as an HTTP date.
func retryAfter(resp *http.Response) time.Duration {
	v := resp.Header.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if at, err := http.ParseTime(v); err == nil {
		return time.Until(at)
	}
	return 0
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
