// Command strata-frontend is strata's BuildKit frontend image entrypoint: the
// same frontend.Build that `strata build` runs in-process, served to BuildKit
// over the gateway API. Name the image in a Dockerfile's "# syntax=" line or
// pass it as BUILDKIT_SYNTAX.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/moby/buildkit/frontend/gateway/grpcclient"
	_ "github.com/moby/buildkit/util/grpcutil/encoding/proto"

	"github.com/strata-build/strata/frontend"
)

func main() {
	version := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *version {
		fmt.Println("strata-frontend", frontend.Version)
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := grpcclient.RunFromEnvironment(ctx, frontend.Build); err != nil {
		fmt.Fprintf(os.Stderr, "strata-frontend: %v\n", err)
		os.Exit(1)
	}
}
