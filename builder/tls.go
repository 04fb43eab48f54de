package builder

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/moby/buildkit/client"

	"github.com/strata-build/strata/errs"
)

// TLS is how strata authenticates to a builder reached over tcp://, with
// buildctl's flags and meaning: CACert verifies the builder's certificate,
// Cert and Key are the client's own for mutual TLS, ServerName is the name
// the builder's certificate must carry (default: the address's host), and
// Dir holds ca.pem, cert.pem and key.pem (or ca.crt, tls.crt and tls.key,
// as cert-manager writes them) in place of the three files.
type TLS struct {
	CACert, Cert, Key, ServerName, Dir string
}

// The environment variables that carry TLS settings when no TLS flag is
// given: BUILDKIT_HOST names the builder, these say how to reach it.
const (
	EnvTLSCACert     = "BUILDKIT_TLS_CA_CERT"
	EnvTLSCert       = "BUILDKIT_TLS_CERT"
	EnvTLSKey        = "BUILDKIT_TLS_KEY"
	EnvTLSServerName = "BUILDKIT_TLS_SERVER_NAME"
	EnvTLSDir        = "BUILDKIT_TLS_DIR"
)

// TLSFromEnv reads the BUILDKIT_TLS_* variables.
func TLSFromEnv() TLS {
	return TLS{
		CACert:     os.Getenv(EnvTLSCACert),
		Cert:       os.Getenv(EnvTLSCert),
		Key:        os.Getenv(EnvTLSKey),
		ServerName: os.Getenv(EnvTLSServerName),
		Dir:        os.Getenv(EnvTLSDir),
	}
}

// IsZero reports whether no TLS setting is given.
func (t TLS) IsZero() bool { return t == TLS{} }

// OrEnv returns t when any of its settings is given, else the environment's.
// Flags and variables are not mixed: a flag set on the command line is
// never completed by a variable left over in the environment.
func (t TLS) OrEnv() TLS {
	if !t.IsZero() {
		return t
	}
	return TLSFromEnv()
}

// resolve turns Dir into the three file names, as buildctl does.
func (t TLS) resolve() (TLS, error) {
	if t.Dir == "" {
		return t, nil
	}
	if t.CACert != "" || t.Cert != "" || t.Key != "" {
		return t, errs.WithHint(errs.Usagef("--tlsdir and --tlscacert/--tlscert/--tlskey are given together"), "give the directory or the three files, not both")
	}
	oneOf := func(names ...string) (string, error) {
		for _, n := range names {
			p := filepath.Join(t.Dir, n)
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
		}
		return "", errs.WithHint(errs.Inputf("--tlsdir %s holds neither %s nor %s", t.Dir, names[0], names[1]),
			"put the CA certificate, client certificate and key there as ca.pem, cert.pem and key.pem")
	}
	var err error
	if t.CACert, err = oneOf("ca.pem", "ca.crt"); err != nil {
		return t, err
	}
	if t.Cert, err = oneOf("cert.pem", "tls.crt"); err != nil {
		return t, err
	}
	if t.Key, err = oneOf("key.pem", "tls.key"); err != nil {
		return t, err
	}
	t.Dir = ""
	return t, nil
}

// ClientOpts checks the files and returns the BuildKit client options for
// addr. Problems a user can fix before dialling (a missing or unreadable
// file, a certificate without its key, an expired client certificate) are
// reported here, each naming its flag.
func (t TLS) ClientOpts(addr string, now time.Time) ([]client.ClientOpt, error) {
	if t.IsZero() {
		return nil, nil
	}
	t, err := t.resolve()
	if err != nil {
		return nil, err
	}
	if (t.Cert == "") != (t.Key == "") {
		return nil, errs.WithHint(errs.Usagef("--tlscert and --tlskey go together; only one is given"), "give the client certificate and its key")
	}
	serverName := t.ServerName
	if serverName == "" {
		if u, err := url.Parse(addr); err == nil {
			serverName = u.Hostname()
		}
	}
	var opts []client.ClientOpt
	if t.CACert != "" {
		if err := checkCA(t.CACert); err != nil {
			return nil, err
		}
		opts = append(opts, client.WithServerConfig(serverName, t.CACert))
	} else {
		opts = append(opts, client.WithServerConfigSystem(serverName))
	}
	if t.Cert != "" {
		if err := checkPair(t.Cert, t.Key, now); err != nil {
			return nil, err
		}
		opts = append(opts, client.WithCredentials(t.Cert, t.Key))
	}
	return opts, nil
}

// config is the crypto/tls configuration ClientOpts gives BuildKit's
// client, for looking into a failed handshake.
func (t TLS) config(addr string) (*tls.Config, error) {
	t, err := t.resolve()
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{ServerName: t.ServerName, NextProtos: []string{"h2"}}
	if cfg.ServerName == "" {
		if u, err := url.Parse(addr); err == nil {
			cfg.ServerName = u.Hostname()
		}
	}
	if t.CACert != "" {
		dt, err := os.ReadFile(t.CACert)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = x509.NewCertPool()
		cfg.RootCAs.AppendCertsFromPEM(dt)
	}
	if t.Cert != "" {
		pair, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

func checkCA(path string) error {
	dt, err := os.ReadFile(path)
	if err != nil {
		return errs.WithHint(errs.Inputf("--tlscacert: %v", unwrapPath(err)), "give the CA certificate that signed the builder's certificate")
	}
	if !x509.NewCertPool().AppendCertsFromPEM(dt) {
		return errs.WithHint(errs.Inputf("--tlscacert %s holds no PEM certificate", path), "give the CA certificate that signed the builder's certificate")
	}
	return nil
}

func checkPair(certFile, keyFile string, now time.Time) error {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return errs.WithHint(errs.Inputf("--tlscert %s / --tlskey %s: %v", certFile, keyFile, unwrapPath(err)),
			"give the client certificate and the private key it was made for, both PEM")
	}
	// LoadX509KeyPair fills Leaf since Go 1.23.
	if leaf := pair.Leaf; leaf != nil && now.After(leaf.NotAfter) {
		return errs.WithHint(fmt.Errorf("%w: the client certificate --tlscert %s expired on %s", errs.ErrBuilder, certFile, pair.Leaf.NotAfter.UTC().Format(time.RFC3339)),
			"issue a new one from the CA the builder trusts")
	}
	return nil
}

// unwrapPath drops the "open PATH:" prefix an *os.PathError repeats.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %v", pe.Path, pe.Err)
	}
	return err
}
