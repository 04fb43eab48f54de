package push

import (
	"io"
	"net"
	"net/http"
	"strings"
)

// classifyRequest tells what a request does, to which repository and
// which blob or manifest.
func classifyRequest(req *http.Request) (kind, string, string) {
	p := strings.TrimPrefix(req.URL.Path, "/v2/")
	if p == "" || p == req.URL.Path {
		return ping, "", ""
	}
	if i := strings.LastIndex(p, "/blobs/uploads"); i >= 0 {
		repo := p[:i]
		switch req.Method {
		case http.MethodPost:
			if d := req.URL.Query().Get("mount"); d != "" {
				return mountRequest, repo, d
			}
			return uploadStart, repo, ""
		case http.MethodPatch:
			return uploadPatch, repo, ""
		case http.MethodPut:
			return uploadCommit, repo, ""
		case http.MethodDelete:
			return uploadCancel, repo, ""
		}
		return otherRequest, repo, ""
	}
	if i := strings.LastIndex(p, "/blobs/"); i >= 0 {
		k := blobGet
		if req.Method == http.MethodHead {
			k = blobHead
		}
		return k, p[:i], p[i+len("/blobs/"):]
	}
	if i := strings.LastIndex(p, "/manifests/"); i >= 0 {
		k := manifestGet
		if req.Method == http.MethodPut {
			k = manifestPut
		}
		return k, p[:i], p[i+len("/manifests/"):]
	}
	if i := strings.LastIndex(p, "/tags/list"); i >= 0 {
		return tagsList, p[:i], ""
	}
	return otherRequest, "", ""
}

// resetConnection drops the client's connection without an answer.
func resetConnection(w http.ResponseWriter) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // RST, not FIN
	}
	conn.Close()
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// countingReader counts an upload's bytes as the registry reads them.
type countingReader struct {
	r   io.ReadCloser
	reg *registry
	n   int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if n > 0 {
		c.reg.mu.Lock()
		c.reg.received += int64(n)
		c.reg.notify()
		c.reg.mu.Unlock()
	}
	return n, err
}

func (c *countingReader) Close() error { return c.r.Close() }
