package build

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/containerd/containerd/v2/core/remotes/docker"
	remoteerrors "github.com/containerd/containerd/v2/core/remotes/errors"
	cerrdefs "github.com/containerd/errdefs"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/moby/buildkit/util/grpcerrors"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-build/strata/errs"
)

// fromDaemon is err as a BuildKit client's Solve returns it when the
// daemon failed with it: sent as a gRPC status and rebuilt.
func fromDaemon(err error) error {
	return fmt.Errorf("failed to solve: %w", grpcerrors.FromGRPC(grpcerrors.ToGRPC(context.Background(), err)))
}

// fromConnection is a gRPC failure of the connection to the daemon itself,
// as the client's interceptor returns it.
func fromConnection(code codes.Code, msg string) error {
	return fmt.Errorf("failed to solve: %w", grpcerrors.FromGRPC(status.Error(code, msg)))
}

// dialError is the error of a dial to addr (IP:port) that nothing answers.
func dialError(addr string) error {
	return &net.OpError{Op: "dial", Net: "tcp", Addr: must(net.ResolveTCPAddr("tcp", addr)),
		Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}
}

// registryError is a registry's answer as go-containerregistry reports it.
func registryError(method, u string, status int, code transport.ErrorCode, msg string) error {
	req := &http.Request{Method: method, URL: must(url.Parse(u))}
	return &transport.Error{Errors: []transport.Diagnostic{{Code: code, Message: msg}}, StatusCode: status, Request: req}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

const pushed = "registry.example.com/team/app:v1"

// The errors BuildKit v0.33.1 (with containerd and gRPC under it) and
// strata's own pusher return, each mapped to the kind that decides the
// exit code and to the advice the user gets.
func TestClassify(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tokenURL := "https://auth.example.com/token?scope=repository%3Ateam%2Fapp%3Apull%2Cpush&service=registry.example.com"
	for _, tc := range []struct {
		name string
		ctx  context.Context // nil: not cancelled
		err  error
		push bool
		want error
		hint string // a part of the hint; "": no hint
	}{
		{
			name: "push: token refused",
			err: fromDaemon(fmt.Errorf("failed to push %s: %w", pushed, fmt.Errorf("failed to authorize: %w", fmt.Errorf("failed to fetch oauth token: %w",
				remoteerrors.ErrUnexpectedStatus{Status: "401 Unauthorized", StatusCode: 401, RequestURL: tokenURL, RequestMethod: http.MethodGet})))),
			push: true, want: errs.ErrRegistry, hint: "docker login",
		},
		{
			// The token has no push scope: the account (or an anonymous
			// one) may not push there.
			name: "push: insufficient scope",
			err: fromDaemon(fmt.Errorf("failed to push %s: %w", pushed, fmt.Errorf("push access denied, repository does not exist or may require authorization: %w",
				fmt.Errorf("server message: %s: %w", "insufficient_scope", docker.ErrInvalidAuthorization)))),
			push: true, want: errs.ErrRegistry, hint: "may not push to this repository",
		},
		{
			name: "push: registry not there",
			err: fromDaemon(fmt.Errorf("failed to push %s: %w", pushed, fmt.Errorf("failed to do request: %w",
				&url.Error{Op: "Head", URL: "https://registry.example.com/v2/team/app/blobs/sha256:0a1b", Err: dialError("10.0.0.5:443")}))),
			push: true, want: errs.ErrRegistry, hint: "check the registry address",
		},
		{
			name: "push: registry failing",
			err: fromDaemon(fmt.Errorf("failed to push %s: %w", pushed,
				remoteerrors.ErrUnexpectedStatus{Status: "503 Service Unavailable", StatusCode: 503, RequestURL: "https://registry.example.com/v2/team/app/blobs/uploads/", RequestMethod: http.MethodPost})),
			push: true, want: errs.ErrRegistry, hint: "kept failing after retries",
		},
		{
			name: "push: daemon answers Unavailable for the registry",
			err:  fromConnection(codes.Unavailable, fmt.Sprintf("failed to push %s: unexpected status from PUT request to https://registry.example.com/v2/team/app/manifests/v1: 503 Service Unavailable", pushed)),
			push: true, want: errs.ErrRegistry, hint: "kept failing after retries",
		},
		{
			name: "base image: registry not there",
			err: fromDaemon(fmt.Errorf("failed to resolve source metadata for registry.example.com/team/base:v1: %w", fmt.Errorf("failed to do request: %w",
				&url.Error{Op: "Head", URL: "https://registry.example.com/v2/team/base/manifests/v1", Err: dialError("10.0.0.5:443")}))),
			want: errs.ErrRegistry, hint: "check the registry address",
		},
		{
			name: "cache export: registry not there",
			err: fromDaemon(fmt.Errorf("error writing layer blob: %w", fmt.Errorf("failed to do request: %w",
				&url.Error{Op: "Head", URL: "https://cache.example.com/v2/team/app/blobs/sha256:0a1b", Err: dialError("10.0.0.6:443")}))),
			want: errs.ErrRegistry, hint: "--cache-to",
		},
		{
			name: "base image: token refused",
			err: fromDaemon(fmt.Errorf("failed to resolve source metadata for registry.example.com/team/base:v1: %w", fmt.Errorf("failed to authorize: %w",
				fmt.Errorf("failed to fetch oauth token: %w", remoteerrors.ErrUnexpectedStatus{Status: "401 Unauthorized", StatusCode: 401, RequestURL: tokenURL, RequestMethod: http.MethodGet})))),
			want: errs.ErrRegistry, hint: "docker login",
		},
		{
			name: "strata's push: authentication required",
			err: fmt.Errorf("%w: blob %s (%d bytes) to %s: %v", errs.ErrRegistry, "sha256:0a1b", 1234, "registry.example.com/team/app",
				registryError(http.MethodPost, "https://registry.example.com/v2/team/app/blobs/uploads/", 401, transport.UnauthorizedErrorCode, "authentication required")),
			push: true, want: errs.ErrRegistry, hint: "docker login",
		},
		{
			name: "strata's push: denied",
			err: fmt.Errorf("%w: manifest %s to %s: %v", errs.ErrRegistry, "sha256:0a1b", pushed,
				registryError(http.MethodPut, "https://registry.example.com/v2/team/app/manifests/v1", 403, transport.DeniedErrorCode, "requested access to the resource is denied")),
			push: true, want: errs.ErrRegistry, hint: "may not push to this repository",
		},
		{
			name: "strata's push: rate limited",
			err: fmt.Errorf("%w: blob %s (%d bytes) to %s: %v", errs.ErrRegistry, "sha256:0a1b", 1234, "registry.example.com/team/app",
				registryError(http.MethodPatch, "https://registry.example.com/v2/team/app/blobs/uploads/1", 429, transport.TooManyRequestsErrorCode, "rate limit exceeded")),
			push: true, want: errs.ErrRegistry, hint: "kept failing after retries",
		},
		{
			name: "strata's push: registry not there",
			err: fmt.Errorf("%w: blob %s (%d bytes) to %s: %v", errs.ErrRegistry, "sha256:0a1b", 1234, "registry.example.com/team/app",
				&url.Error{Op: "Get", URL: "https://registry.example.com/v2/", Err: dialError("10.0.0.5:443")}),
			push: true, want: errs.ErrRegistry, hint: "check the registry address",
		},
		{
			name: "strata's push: unknown refusal",
			err: fmt.Errorf("%w: manifest %s to %s: %v", errs.ErrRegistry, "sha256:0a1b", pushed,
				registryError(http.MethodPut, "https://registry.example.com/v2/team/app/manifests/v1", 400, transport.ManifestInvalidErrorCode, "manifest invalid")),
			push: true, want: errs.ErrRegistry, hint: "check the image name and the registry's state",
		},
		{
			name: "COPY source missing",
			err: fromDaemon(fmt.Errorf("failed to compute cache key: %w", fmt.Errorf("failed to calculate checksum of ref %s: %w",
				"7dcd2bce-0e5f-4c4d-a1a5-6f1b9b3a1f0e::w3l9q0pyx8hk1t2m9v4c8z5rj", fmt.Errorf("%q: %w", "/app/missing.txt", cerrdefs.ErrNotFound)))),
			want: errs.ErrBuildFailed, hint: "COPY and ADD read only the build context",
		},
		{
			name: "daemon gone: EOF",
			err:  fromConnection(codes.Unavailable, "error reading from server: EOF"),
			want: errs.ErrBuilder, hint: "check the buildkitd log",
		},
		{
			name: "daemon gone: transport closing",
			err:  fromConnection(codes.Unavailable, `connection error: desc = "transport is closing"`),
			want: errs.ErrBuilder, hint: "check the buildkitd log",
		},
		{
			name: "daemon not there",
			err:  fromConnection(codes.Unavailable, `connection error: desc = "transport: Error while dialing: dial unix /run/buildkit/buildkitd.sock: connect: connection refused"`),
			want: errs.ErrBuilder, hint: "check the buildkitd log",
		},
		{
			name: "daemon unreachable",
			err:  fromConnection(codes.Unavailable, `connection error: desc = "transport: Error while dialing: dial tcp 10.0.0.7:1234: connect: no route to host"`),
			want: errs.ErrBuilder, hint: "check the buildkitd log",
		},
		{
			name: "daemon not there, code lost",
			err:  fmt.Errorf("failed to solve: %w", errors.New(`rpc error: code = Unavailable desc = connection error: desc = "transport: Error while dialing: dial unix /run/buildkit/buildkitd.sock: connect: connection refused"`)),
			want: errs.ErrBuilder, hint: "check the buildkitd log",
		},
		{
			name: "daemon gone, code lost: EOF",
			err:  fmt.Errorf("failed to solve: %w", errors.New("rpc error: code = Unavailable desc = error reading from server: EOF")),
			want: errs.ErrBuilder, hint: "check the buildkitd log",
		},
		{
			name: "daemon gone, code lost: transport closing",
			err:  fmt.Errorf("failed to solve: %w", errors.New(`rpc error: code = Unavailable desc = connection error: desc = "transport is closing"`)),
			want: errs.ErrBuilder, hint: "check the buildkitd log",
		},
		{
			name: "a RUN step fails",
			err:  fromDaemon(errors.New(`process "/bin/sh -c make" did not complete successfully: exit code: 2`)),
			want: errs.ErrBuildFailed,
		},
		{
			name: "cancelled",
			ctx:  cancelled,
			err:  fromConnection(codes.Canceled, "context canceled"),
			want: errs.ErrInterrupted,
		},
		{
			name: "cancelled inside",
			err:  fmt.Errorf("exporting layers: %w", context.Canceled),
			want: errs.ErrInterrupted,
		},
		{
			name: "already a kind",
			err:  errs.WithHint(fmt.Errorf("%w: buildkitd did not answer within 1m0s", errs.ErrBuilder), "see the log"),
			want: errs.ErrBuilder, hint: "see the log",
		},
		{
			name: "bad input",
			err:  errs.Inputf("Dockerfile not found"),
			want: errs.ErrInput,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := tc.ctx
			if ctx == nil {
				ctx = t.Context()
			}
			got := classify(ctx, tc.err, tc.push)
			if !errors.Is(got, tc.want) || errs.Code(got) != errs.Code(tc.want) {
				t.Fatalf("%v\nclassified as %v (exit %d), want %v (exit %d)", tc.err, got, errs.Code(got), tc.want, errs.Code(tc.want))
			}
			var h *errs.Hint
			switch {
			case tc.hint == "" && errors.As(got, &h) && h.Hint != "":
				t.Errorf("%v\nunexpected hint %q", tc.err, h.Hint)
			case tc.hint != "" && (!errors.As(got, &h) || !strings.Contains(h.Hint, tc.hint)):
				t.Errorf("%v\nclassified as %v, want a hint with %q", tc.err, got, tc.hint)
			}
			if strings.Count(got.Error(), "\n") > strings.Count(tc.err.Error(), "\n") {
				t.Errorf("the message grew lines: %q", got)
			}
		})
	}
}
