package cli

import (
	"context"

	"github.com/moby/buildkit/client"
	"github.com/spf13/cobra"

	"github.com/strata-build/strata/builder"
)

// builderFlags are --builder and the TLS flags that go with it, with
// buildctl's names and meaning, on every command that talks to a builder.
type builderFlags struct {
	addr string
	tls  builder.TLS
}

func (b *builderFlags) add(cmd *cobra.Command, defaultHelp string) {
	f := cmd.Flags()
	f.StringVar(&b.addr, "builder", "", "BuildKit address (unix:///run/buildkit/buildkitd.sock, tcp://host:1234, docker-container://NAME, kube-pod://POD) or the name of a docker buildx builder "+defaultHelp)
	f.StringVar(&b.tls.CACert, "tlscacert", "", "CA certificate that signed the builder's certificate (env "+builder.EnvTLSCACert+")")
	f.StringVar(&b.tls.Cert, "tlscert", "", "client certificate for a builder that requires mutual TLS (env "+builder.EnvTLSCert+")")
	f.StringVar(&b.tls.Key, "tlskey", "", "key of --tlscert (env "+builder.EnvTLSKey+")")
	f.StringVar(&b.tls.ServerName, "tlsservername", "", "name the builder's certificate must carry (default: the host of --builder; env "+builder.EnvTLSServerName+")")
	f.StringVar(&b.tls.Dir, "tlsdir", "", "directory holding ca.pem, cert.pem and key.pem (or ca.crt, tls.crt, tls.key) in place of the three flags (env "+builder.EnvTLSDir+")")
}

// connect resolves the builder and returns a client for it; opts apply
// to strata's own builder.
func (b *builderFlags) connect(ctx context.Context, opts ...builder.Option) (*client.Client, *builder.Endpoint, error) {
	return builder.Connect(ctx, b.addr, b.tls, opts...)
}

// given reports whether a builder is named on the command line.
func (b *builderFlags) given() bool {
	return b.addr != "" || !b.tls.IsZero()
}
