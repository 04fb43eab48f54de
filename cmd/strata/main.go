// Command strata lints Dockerfiles for cache ordering and builds them on BuildKit.
package main

import (
	"os"

	"github.com/strata-build/strata/cmd/strata/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
