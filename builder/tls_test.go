package builder_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/strata-build/strata/builder"
	"github.com/strata-build/strata/errs"
	"github.com/strata-build/strata/integration/testenv"
)

// pki is a CA with a server certificate for 127.0.0.1 and a client certificate.
type pki struct {
	dir                          string
	ca                           *testenv.CA
	serverCert, serverKey        string
	clientCert, clientKey        string
	otherCA                      *testenv.CA
	expiredClient, expiredClKey  string
	expiredServer, expiredSrvKey string
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	p := &pki{dir: t.TempDir()}
	var err error
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	p.ca, err = testenv.NewCA(p.dir, "ca")
	must(err)
	p.otherCA, err = testenv.NewCA(p.dir, "other-ca")
	must(err)
	p.serverCert, p.serverKey, err = p.ca.Issue(p.dir, "server", testenv.CertOptions{Server: true, Hosts: []string{"127.0.0.1"}})
	must(err)
	p.clientCert, p.clientKey, err = p.ca.Issue(p.dir, "client", testenv.CertOptions{})
	must(err)
	p.expiredClient, p.expiredClKey, err = p.ca.Issue(p.dir, "expired-client", testenv.CertOptions{NotAfter: time.Now().Add(-time.Hour)})
	must(err)
	p.expiredServer, p.expiredSrvKey, err = p.ca.Issue(p.dir, "expired-server", testenv.CertOptions{Server: true, Hosts: []string{"127.0.0.1"}, NotAfter: time.Now().Add(-time.Hour)})
	must(err)
	return p
}

// mtlsServer is a gRPC server that accepts only mutual TLS with the CA's
// client certificates, as buildkitd started with --tlscacert does. It
// serves no BuildKit API: the tests end at the handshake.
func mtlsServer(t *testing.T, p *pki, certFile, keyFile string) string {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(p.ca.Cert)
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{pair},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		NextProtos:   []string{"h2"}, // as buildkitd sets it
	})
	if err != nil {
		t.Fatal(err)
	}
	return serveGRPC(t, l)
}

func serveGRPC(t *testing.T, l net.Listener) string {
	s := grpc.NewServer()
	go func() { _ = s.Serve(l) }()
	t.Cleanup(s.Stop)
	return "tcp://" + l.Addr().String()
}

func TestResolveTLSErrors(t *testing.T) {
	p := newPKI(t)
	mtls := mtlsServer(t, p, p.serverCert, p.serverKey)
	expired := mtlsServer(t, p, p.expiredServer, p.expiredSrvKey)
	plainL, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	plain := serveGRPC(t, plainL)
	localhost := strings.Replace(mtls, "127.0.0.1", "localhost", 1)
	full := builder.TLS{CACert: p.ca.CertFile, Cert: p.clientCert, Key: p.clientKey}
	for _, tc := range []struct {
		name string
		addr string
		tls  builder.TLS
		want string
	}{
		{"no certificates", mtls, builder.TLS{}, "accepts only TLS connections: set --tlscacert, --tlscert and --tlskey"},
		{"wrong CA", mtls, builder.TLS{CACert: p.otherCA.CertFile, Cert: p.clientCert, Key: p.clientKey}, "not signed by the CA in --tlscacert"},
		{"no client certificate", mtls, builder.TLS{CACert: p.ca.CertFile}, "asks for a client certificate: set --tlscert and --tlskey"},
		{"client certificate of another CA", mtls, builder.TLS{CACert: p.ca.CertFile, Cert: p.otherClient(t), Key: p.dir + "/stranger-key.pem"}, "refused the client certificate"},
		{"expired server certificate", expired, full, "has expired or is not valid yet: renew buildkitd's certificate"},
		{"name mismatch", localhost, full, "set --tlsservername"},
		{"builder without TLS", plain, full, "does not speak TLS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			_, err := builder.Resolve(t.Context(), tc.addr, tc.tls)
			if err == nil {
				t.Fatal("resolved")
			}
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("took %s: the probe must fail fast", took)
			}
			if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q, want one line containing %q", err, tc.want)
			}
			if errs.Code(err) != errs.ExitBuilder {
				t.Errorf("exit code %d, want %d", errs.Code(err), errs.ExitBuilder)
			}
		})
	}
}

// otherClient issues a client certificate from a CA the server does not trust.
func (p *pki) otherClient(t *testing.T) string {
	c, _, err := p.otherCA.Issue(p.dir, "stranger", testenv.CertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestTLSClientOpts(t *testing.T) {
	p := newPKI(t)
	dir := t.TempDir()
	for src, dst := range map[string]string{p.ca.CertFile: "ca.pem", p.clientCert: "cert.pem", p.clientKey: "key.pem"} {
		dt, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, dst), dt, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name string
		tls  builder.TLS
		code int
		want string
	}{
		{"none", builder.TLS{}, 0, ""},
		{"files", builder.TLS{CACert: p.ca.CertFile, Cert: p.clientCert, Key: p.clientKey}, 0, ""},
		{"dir", builder.TLS{Dir: dir}, 0, ""},
		{"dir and files", builder.TLS{Dir: dir, CACert: p.ca.CertFile}, errs.ExitUsage, "--tlsdir and --tlscacert"},
		{"dir without files", builder.TLS{Dir: t.TempDir()}, errs.ExitUsage, "holds neither ca.pem nor ca.crt"},
		{"cert without key", builder.TLS{CACert: p.ca.CertFile, Cert: p.clientCert}, errs.ExitUsage, "--tlscert and --tlskey go together"},
		{"missing CA", builder.TLS{CACert: filepath.Join(dir, "nope.pem")}, errs.ExitUsage, "--tlscacert: " + filepath.Join(dir, "nope.pem") + ": no such file"},
		{"CA not PEM", builder.TLS{CACert: p.clientKey}, errs.ExitUsage, "holds no PEM certificate"},
		{"key of another cert", builder.TLS{Cert: p.clientCert, Key: p.serverKey}, errs.ExitUsage, "give the client certificate and the private key it was made for"},
		{"expired client cert", builder.TLS{CACert: p.ca.CertFile, Cert: p.expiredClient, Key: p.expiredClKey}, errs.ExitBuilder, "expired on"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.tls.ClientOpts("tcp://127.0.0.1:1234", time.Now())
			if errs.Code(err) != tc.code {
				t.Fatalf("exit code %d (%v), want %d", errs.Code(err), err, tc.code)
			}
			if err != nil && !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want %q", err, tc.want)
			}
		})
	}
}

func TestResolveTLSFlagsWithoutBuilder(t *testing.T) {
	t.Setenv("BUILDKIT_HOST", "")
	t.Setenv("BUILDX_BUILDER", "")
	_, err := builder.Resolve(context.Background(), "", builder.TLS{CACert: "ca.pem"})
	if errs.Code(err) != errs.ExitUsage || !strings.Contains(err.Error(), "--builder") {
		t.Fatalf("got %v, want a usage error naming --builder", err)
	}
}

func TestTLSFromEnv(t *testing.T) {
	t.Setenv(builder.EnvTLSCACert, "/env/ca.pem")
	t.Setenv(builder.EnvTLSCert, "/env/cert.pem")
	t.Setenv(builder.EnvTLSKey, "/env/key.pem")
	t.Setenv(builder.EnvTLSServerName, "bk.example")
	t.Setenv(builder.EnvTLSDir, "")
	got := builder.TLS{}.OrEnv()
	want := builder.TLS{CACert: "/env/ca.pem", Cert: "/env/cert.pem", Key: "/env/key.pem", ServerName: "bk.example"}
	if got != want {
		t.Errorf("from the environment: %+v, want %+v", got, want)
	}
	flags := builder.TLS{Dir: "/flags"}
	if got := flags.OrEnv(); got != flags {
		t.Errorf("flags given: %+v, want the flags alone", got)
	}
}

// A buildx remote builder brings its own certificates; BUILDKIT_TLS_*
// left in the environment for another builder does not replace them.
func TestResolveBuildxTLSOverEnv(t *testing.T) {
	p := newPKI(t)
	addr := mtlsServer(t, p, p.serverCert, p.serverKey)
	cfg := t.TempDir()
	inst := filepath.Join(cfg, "buildx", "instances")
	if err := os.MkdirAll(inst, 0o755); err != nil {
		t.Fatal(err)
	}
	rec := `{"Name":"fleet","Driver":"remote","Nodes":[{"Name":"fleet0","Endpoint":"` + addr + `",` +
		`"DriverOpts":{"cacert":"` + p.ca.CertFile + `","cert":"` + p.clientCert + `","key":"` + p.clientKey + `"}}]}`
	if err := os.WriteFile(filepath.Join(inst, "fleet"), []byte(rec), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BUILDX_CONFIG", "")
	t.Setenv("DOCKER_CONFIG", cfg)
	t.Setenv(builder.EnvTLSCACert, p.otherCA.CertFile)
	_, err := builder.Resolve(t.Context(), "fleet", builder.TLS{})
	// The test server speaks TLS and gRPC but not BuildKit's API: getting
	// that far means the handshake with the builder's own files worked.
	if err == nil || !strings.Contains(err.Error(), "Unimplemented") || !strings.Contains(err.Error(), "--builder=fleet (buildx builder, remote driver)") {
		t.Fatalf("got %v, want the handshake to pass and the BuildKit API to be missing", err)
	}
}
