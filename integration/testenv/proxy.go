package testenv

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Proxy sits between clients and a registry on 127.0.0.1: it counts what
// crosses it, can limit bandwidth each way (a CI runner's link to a remote
// registry), and can inject faults into chosen requests.
type Proxy struct {
	Host string // 127.0.0.1:PORT, the address clients use

	srv    *http.Server
	ln     net.Listener
	up     *rate.Limiter // client -> registry
	down   *rate.Limiter // registry -> client
	faults []*Fault
	delay  time.Duration // see WithLatency

	BytesUp, BytesDown atomic.Int64 // bodies sent to and received from the registry
	BlobUploads        atomic.Int64 // completed blob uploads (final PUT answered 201)
	uploads            sync.Map     // digest -> *atomic.Int64, completed uploads per blob
	silent             atomic.Bool  // see Silence
}

// Silence makes the proxy close every connection without an answer (on) as
// a registry that stopped answering, or answer again (off).
func (p *Proxy) Silence(on bool) { p.silent.Store(on) }

// Fault makes the first Count requests that match Method, a path
// containing PathContains and a raw query containing QueryContains fail
// (with Every > 0, only every Every-th of them, e.g. 5 for one in five):
// with Status (and Retry-After when set), or, when Reset is set, by closing
// the connection after reading part of the request body.
type Fault struct {
	Method        string
	PathContains  string
	QueryContains string
	Count         int
	Every         int
	Status        int
	RetryAfter    time.Duration
	Reset         bool

	seen, hits atomic.Int64
}

// Seen returns how many requests matched the fault, failed or not.
func (f *Fault) Seen() int { return int(f.seen.Load()) }

// Hits returns how many requests the fault has failed.
func (f *Fault) Hits() int { return int(min(f.hits.Load(), int64(f.Count))) }

// ProxyOption configures StartProxy.
type ProxyOption func(*Proxy)

// WithBandwidth limits each direction to bytesPerSecond.
func WithBandwidth(bytesPerSecond int) ProxyOption {
	return func(p *Proxy) {
		burst := min(bytesPerSecond, 256<<10)
		p.up = rate.NewLimiter(rate.Limit(bytesPerSecond), burst)
		p.down = rate.NewLimiter(rate.Limit(bytesPerSecond), burst)
	}
}

// WithLatency holds each request for rtt before it reaches the registry:
// one round trip to a distant registry per request (over connections kept
// alive; handshakes are not modelled).
func WithLatency(rtt time.Duration) ProxyOption {
	return func(p *Proxy) { p.delay = rtt }
}

// WithFaults injects faults.
func WithFaults(fs ...*Fault) ProxyOption {
	return func(p *Proxy) { p.faults = append(p.faults, fs...) }
}

// StartProxy listens on 127.0.0.1 and forwards to the registry at upstream (host:port).
func StartProxy(upstream string, opts ...ProxyOption) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{Host: ln.Addr().String(), ln: ln}
	for _, o := range opts {
		o(p)
	}
	target := &url.URL{Scheme: "http", Host: upstream}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.FlushInterval = -1
	rp.ModifyResponse = func(resp *http.Response) error {
		// Redirects and upload locations name the registry; clients must
		// keep talking to the proxy.
		if loc := resp.Header.Get("Location"); loc != "" {
			resp.Header.Set("Location", strings.Replace(loc, upstream, p.Host, 1))
		}
		if resp.Request.Method == http.MethodPut && resp.StatusCode == http.StatusCreated && strings.Contains(resp.Request.URL.Path, "/blobs/uploads/") {
			p.BlobUploads.Add(1)
			d := resp.Request.URL.Query().Get("digest")
			n, _ := p.uploads.LoadOrStore(d, new(atomic.Int64))
			n.(*atomic.Int64).Add(1)
		}
		resp.Body = &limitedBody{ReadCloser: resp.Body, lim: p.down, n: &p.BytesDown}
		return nil
	}
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p.silent.Load() {
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					conn.Close()
					return
				}
			}
			panic(http.ErrAbortHandler)
		}
		if f := p.fault(r); f != nil {
			f.inject(w, r)
			return
		}
		if r.Body != nil {
			r.Body = &limitedBody{ReadCloser: r.Body, lim: p.up, n: &p.BytesUp}
		}
		if p.delay > 0 {
			select {
			case <-time.After(p.delay):
			case <-r.Context().Done():
				return
			}
		}
		rp.ServeHTTP(w, r)
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// ResetUploads forgets the per-blob upload counts.
func (p *Proxy) ResetUploads() {
	p.uploads.Range(func(k, _ any) bool {
		p.uploads.Delete(k)
		return true
	})
}

// UploadsOf returns how many times the blob dgst was uploaded completely.
func (p *Proxy) UploadsOf(dgst string) int {
	if n, ok := p.uploads.Load(dgst); ok {
		return int(n.(*atomic.Int64).Load())
	}
	return 0
}

// MaxUploadsPerBlob returns the highest number of complete uploads of one blob.
func (p *Proxy) MaxUploadsPerBlob() int {
	m := 0
	p.uploads.Range(func(_, v any) bool {
		m = max(m, int(v.(*atomic.Int64).Load()))
		return true
	})
	return m
}

func (p *Proxy) fault(r *http.Request) *Fault {
	for _, f := range p.faults {
		if (f.Method == "" || f.Method == r.Method) && strings.Contains(r.URL.Path, f.PathContains) && strings.Contains(r.URL.RawQuery, f.QueryContains) {
			if n := f.seen.Add(1); f.Every > 0 && n%int64(f.Every) != 0 {
				continue
			}
			if f.hits.Add(1) <= int64(f.Count) {
				return f
			}
		}
	}
	return nil
}

func (f *Fault) inject(w http.ResponseWriter, r *http.Request) {
	if f.Reset {
		// Read part of the body, then drop the connection mid-request.
		if r.Body != nil {
			_, _ = io.CopyN(io.Discard, r.Body, 4096)
		}
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				if tc, ok := c.(*net.TCPConn); ok {
					_ = tc.SetLinger(0) // RST, not FIN
				}
				_ = c.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	}
	if f.RetryAfter > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(int(f.RetryAfter.Seconds())))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(f.Status)
	fmt.Fprintf(w, `{"errors":[{"code":"UNAVAILABLE","message":"injected fault %d"}]}`, f.Status)
}

// Close stops the proxy.
func (p *Proxy) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = p.srv.Shutdown(ctx)
}

type limitedBody struct {
	io.ReadCloser
	lim *rate.Limiter
	n   *atomic.Int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.lim != nil && len(p) > b.lim.Burst() {
		p = p[:b.lim.Burst()]
	}
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.n.Add(int64(n))
		if b.lim != nil {
			_ = b.lim.WaitN(context.Background(), n)
		}
	}
	return n, err
}
