package testenv

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/strata-build/strata/builder"
)

// MutualTLS is a buildkitd's loopback TCP listener that accepts only
// clients with a certificate of CA, as a fleet's builders do.
type MutualTLS struct {
	Addr                  string // tcp://127.0.0.1:PORT
	CA                    *CA
	ClientCert, ClientKey string
	// Dir holds ca.pem, cert.pem and key.pem, the layout --tlsdir reads.
	Dir string
}

// WithMutualTLS makes buildkitd listen on a free loopback port with mutual
// TLS, besides its unix socket (which stays plain, as buildkitd keeps unix
// sockets), and fills m with the address and the client's files.
func WithMutualTLS(m *MutualTLS) BuildkitdOption {
	return func(l *builder.Local) error {
		dir := filepath.Join(l.Dir, "certs")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		ca, err := NewCA(dir, "ca")
		if err != nil {
			return err
		}
		srvCert, srvKey, err := ca.Issue(dir, "buildkitd", CertOptions{Server: true, Hosts: []string{"127.0.0.1", "localhost"}})
		if err != nil {
			return err
		}
		m.CA = ca
		if m.ClientCert, m.ClientKey, err = ca.Issue(dir, "client", CertOptions{}); err != nil {
			return err
		}
		m.Dir = filepath.Join(dir, "client")
		if err := os.MkdirAll(m.Dir, 0o700); err != nil {
			return err
		}
		for src, dst := range map[string]string{ca.CertFile: "ca.pem", m.ClientCert: "cert.pem", m.ClientKey: "key.pem"} {
			if err := copyFile(src, filepath.Join(m.Dir, dst)); err != nil {
				return err
			}
		}
		port, err := freePort()
		if err != nil {
			return err
		}
		m.Addr = fmt.Sprintf("tcp://127.0.0.1:%d", port)
		l.Args = append(l.Args, "--addr", m.Addr,
			"--tlscacert", ca.CertFile, "--tlscert", srvCert, "--tlskey", srvKey)
		return nil
	}
}

func copyFile(src, dst string) error {
	dt, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, dt, 0o600)
}
