package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/strata-build/strata/frontend"
)

var _ = register(newVersionCmd)

func newVersionCmd(s Streams) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Show strata's version, the commit it was built from, and the BuildKit it speaks",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			_, err := fmt.Fprintln(s.Out, versionLine())
			return err
		},
	}
}

// versionLine is one line, as `docker buildx version` prints: strata's
// version (set at link time, else the module's), the commit it was built
// from ("-dirty" when the tree had changes), and the BuildKit client
// library and Go it was built with.
func versionLine() string {
	version, commit, buildkit := frontend.Version, "", "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		if version == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			version = bi.Main.Version
		}
		dirty := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if len(commit) > 12 {
			commit = commit[:12]
		}
		if commit != "" && dirty {
			commit += "-dirty"
		}
		for _, d := range bi.Deps {
			if d.Path == "github.com/moby/buildkit" {
				buildkit = d.Version
			}
		}
	}
	line := "strata " + version
	if commit != "" {
		line += " " + commit
	}
	return fmt.Sprintf("%s (BuildKit %s, %s %s/%s)", line, buildkit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
