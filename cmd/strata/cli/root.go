// Package cli holds strata's cobra commands. Each command only wires flags to
// library calls; the work lives in lint, build, cache and frontend.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/strata-build/strata/errs"
)

// Streams are the standard streams a command reads and writes.
type Streams struct {
	In       io.Reader
	Out, Err io.Writer
}

// NewRootCmd returns the strata command tree. It holds no global state, so
// tests run it in-process.
func NewRootCmd(s Streams) *cobra.Command {
	root := &cobra.Command{
		Use:   "strata",
		Short: "Build Dockerfiles faster on BuildKit: cache-ordering lint, registry-wide cache selection, streamed push",
		Long: `strata makes CI builds of Dockerfiles faster.

  strata lint     finds what makes a Dockerfile rebuild too much, and fixes the common cases
  strata build    builds on BuildKit (a local buildkitd is started when none is configured)
  strata builder  shows or stops the local buildkitd that strata manages

Exit codes: 0 success, 1 build failed or lint findings, 2 usage or input error,
3 builder unavailable, 4 registry error, 130 interrupted.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       versionLine(),
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetIn(s.In)
	root.SetOut(s.Out)
	root.SetErr(s.Err)
	root.Args = cobra.NoArgs
	root.RunE = func(c *cobra.Command, _ []string) error { return c.Help() }
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		if hint := missingBuildxFlag(c, err); hint != "" {
			return errs.WithHint(errs.Usagef("%v", err), hint)
		}
		return usageError(c, err)
	})
	for _, add := range subcommands {
		root.AddCommand(add(s))
	}
	argsAreUsage(root)
	return root
}

// usageError marks err as a usage mistake and points at the command's help.
func usageError(c *cobra.Command, err error) error {
	return errs.WithHint(errs.Usagef("%v", err), fmt.Sprintf("see '%s --help'", c.CommandPath()))
}

// argsAreUsage makes every command's positional-argument errors usage errors
// (exit code 2), as flag errors are.
func argsAreUsage(c *cobra.Command) {
	if v := c.Args; v != nil {
		c.Args = func(c *cobra.Command, args []string) error {
			if err := v(c, args); err != nil {
				return usageError(c, err)
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		argsAreUsage(sub)
	}
}

// subcommands lists the constructors of strata's commands; each file adds its own.
var subcommands []func(Streams) *cobra.Command

func register(f func(Streams) *cobra.Command) struct{} {
	subcommands = append(subcommands, f)
	return struct{}{}
}

// Main runs strata with args and returns the process exit code. Errors are
// printed as one line naming the cause and the fix.
func Main(args []string, in io.Reader, out, errOut io.Writer) int {
	// Libraries strata uses (containerd's content store and content
	// service, the BuildKit client) log through logrus; their errors reach
	// strata as returned errors, and strata speaks through its own output.
	logrus.SetOutput(io.Discard)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := NewRootCmd(Streams{In: in, Out: out, Err: errOut})
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err != nil && ctx.Err() != nil && !errors.Is(err, errs.ErrInterrupted) {
		err = fmt.Errorf("%w: %v", errs.ErrInterrupted, err)
	}
	if err != nil && !errors.Is(err, errs.ErrFindings) {
		fmt.Fprintf(errOut, "strata: %s\n", errs.FirstLine(err.Error()))
	}
	return errs.Code(err)
}
