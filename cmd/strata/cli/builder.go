package cli

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/strata-build/strata/builder"
	"github.com/strata-build/strata/errs"
)

var _ = register(newBuilderCmd)

func newBuilderCmd(s Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "builder",
		Short: "Show, start or stop strata's local buildkitd",
		Long: `strata starts its own buildkitd when no --builder or BUILDKIT_HOST is given.
Its state (root, socket, pid file, log) lives under ~/.cache/strata/buildkitd,
or STRATA_BUILDER_DIR when set. It uses BuildKit's own choice of snapshotter
(overlayfs, else native); STRATA_BUILDER_SNAPSHOTTER names another, from the
next start on. STRATA_BUILDER_SNAPSHOTTER=stargz turns on lazy pulls of eStargz
layers where FUSE and overlayfs work, at a cost to the cache: BuildKit keeps no
cache record of a step that runs over lazily pulled layers (see
docs/lazy-pulls.md).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmd.Help()
		},
	}
	local := builder.DefaultLocal
	cmd.AddCommand(newBuilderStatusCmd(s, local))
	cmd.AddCommand(&cobra.Command{
		Use:   "start",
		Short: "Start the local buildkitd if it is not running, and print its address",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := local()
			if err != nil {
				return err
			}
			addr, err := l.Ensure(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintln(s.Out, addr)
			// Lazy pulls asked for and not had: say why (off by default
			// needs no word; strata builder status gives it).
			if st, err := l.Status(cmd.Context()); err == nil && l.Snapshotter == builder.SnapshotterStargz && st.NotStargz != "" {
				fmt.Fprintf(s.Err, "strata: lazy pulls are off: %s\n", st.NotStargz)
			}
			return nil
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "stop",
		Short: "Stop the local buildkitd (its cache stays on disk)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := local()
			if err != nil {
				return err
			}
			if l.PID() == 0 {
				fmt.Fprintln(s.Out, "not running")
				return nil
			}
			if err := l.Stop(30 * time.Second); err != nil {
				return fmt.Errorf("%w: stopping buildkitd: %v", errs.ErrBuilder, err)
			}
			fmt.Fprintln(s.Out, "stopped")
			return nil
		},
	})
	return cmd
}

func newBuilderStatusCmd(s Streams, local func() (*builder.Local, error)) *cobra.Command {
	var bf builderFlags
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show whether the local buildkitd runs, and its address, pid and workers",
		Long: `Show whether strata's local buildkitd runs, and its address, pid and workers.
With --builder (an address or a docker buildx builder name, and the TLS flags
it needs), show that builder instead: it exits 3 with the cause when the
builder does not answer, so it checks a fleet's address and certificates.`,
		Example: `  strata builder status
  strata builder status --builder tcp://buildkitd.internal:1234 --tlsdir /etc/buildkit/certs`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if bf.given() {
				e, err := builder.Resolve(cmd.Context(), bf.addr, bf.tls)
				if err != nil {
					return err
				}
				st := e.Probed
				printFields(s.Out, "state", "running", "address", st.Addr, "version", st.Version,
					"workers", strings.Join(st.Workers, ", "), "snapshotter", st.Snapshotter,
					"lazy pulls", lazyPulls(st.Snapshotter, e.LazyPullHint()))
				return nil
			}
			l, err := local()
			if err != nil {
				return err
			}
			st, err := l.Status(cmd.Context())
			if err != nil {
				printFields(s.Out, "state", "stopped", "dir", l.Dir)
				return nil
			}
			printFields(s.Out, "state", "running", "address", st.Addr, "pid", strconv.Itoa(st.PID), "version", st.Version,
				"workers", strings.Join(st.Workers, ", "), "snapshotter", st.Snapshotter,
				"lazy pulls", lazyPulls(st.Snapshotter, st.NotStargz), "cache", st.Emptied,
				"plain HTTP", strings.Join(st.PlainHTTP, ", "), "log", l.LogFile())
			return nil
		},
	}
	bf.add(cmd, "(default: strata's local buildkitd)")
	return cmd
}

// lazyPulls is the status line about lazy pulls: on with the stargz
// snapshotter, else off and why.
func lazyPulls(snapshotter, whyNot string) string {
	switch {
	case snapshotter == builder.SnapshotterStargz:
		return "on: eStargz layers are pulled only as far as steps read them"
	case whyNot != "":
		return "off: " + whyNot
	}
	return ""
}

// printFields writes name, value pairs as aligned "name: value" lines,
// leaving out empty values.
func printFields(w io.Writer, kv ...string) {
	width := 0
	for i := 0; i < len(kv); i += 2 {
		width = max(width, len(kv[i]))
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			fmt.Fprintf(w, "%-*s %s\n", width+1, kv[i]+":", kv[i+1])
		}
	}
}
