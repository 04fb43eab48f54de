package cli

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/strata-build/strata/build"
	"github.com/strata-build/strata/errs"
	"github.com/strata-build/strata/lint"
)

var _ = register(newLintCmd)

type lintOptions struct {
	format     string
	contextDir string
	failLevel  string
	config     string
	fix, diff  bool
	noBuildKit bool
	listRules  bool
	buildArgs  []string
}

func newLintCmd(s Streams) *cobra.Command {
	o := &lintOptions{}
	cmd := &cobra.Command{
		Use:   "lint [flags] [PATH...]",
		Short: "Find what makes a Dockerfile rebuild too much, and run BuildKit's checks",
		Long: `Lint Dockerfiles for cache-ordering mistakes, with BuildKit's own build checks in the same pass.

PATH is a Dockerfile, a directory (searched for Dockerfile, Dockerfile.*, Dockerfile-*,
*.Dockerfile and Containerfile in any case, templates such as Dockerfile.j2 left out, a
symlink to one found once), or - for standard input; the default is the current directory.

The build context is --context; else the one a compose file, docker-bake file,
GitHub workflow or Makefile of the repository gives the Dockerfile; else the nearest folder, from
the Dockerfile's own up to the repository root, in which its COPY and ADD sources
exist (when they exist in none, being build outputs, the nearest such folder with a
.dockerignore). Each Dockerfile's context, and why, is printed with its findings.
The build arguments such a file passes with that context set
the ARGs they name, under those of --build-arg, as they would in the build.
Standard input has no context unless --context is given, nor has a Dockerfile whose
COPY sources exist in no such folder and that has no .dockerignore: the rules then
read the Dockerfile alone and report nothing that depends on the context's files at
error level.

Exit codes: 0 nothing at or above --fail-level, 1 findings at or above it,
2 usage error or a Dockerfile that does not parse (the others are still linted).`,
		RunE: func(c *cobra.Command, args []string) error { return runLint(s, o, args) },
	}
	f := cmd.Flags()
	f.StringVar(&o.format, "format", "text", "output format: "+strings.Join(lint.Formats(), "|"))
	f.StringVar(&o.contextDir, "context", "", "build context directory (default: discovered for each Dockerfile)")
	f.StringVar(&o.failLevel, "fail-level", "", "lowest severity that fails the run: error|warning|info|none (default from config, else warning)")
	f.StringVar(&o.config, "config", "", "config file (default: "+lint.ConfigName+" in the working directory or a parent)")
	f.StringArrayVar(&o.buildArgs, "build-arg", nil, "build argument KEY=VALUE (KEY alone: from the environment), as the build is given it")
	f.BoolVar(&o.fix, "fix", false, "rewrite Dockerfiles (and append .dockerignore entries) for the fixable findings")
	f.BoolVar(&o.diff, "diff", false, "print the fixes as a unified diff instead of writing them")
	f.BoolVar(&o.noBuildKit, "no-buildkit-checks", false, "do not run BuildKit's own build checks")
	f.BoolVar(&o.listRules, "list-rules", false, "list the rules with their default severity and exit")
	return cmd
}

func runLint(s Streams, o *lintOptions, args []string) error {
	if o.listRules {
		for _, r := range append(lint.Rules(), lint.BuildKitRules()...) {
			fix := ""
			if r.Fixable {
				fix = " (fixable)"
			}
			fmt.Fprintf(s.Out, "%-38s %-8s %s%s\n", r.Name, r.Severity, r.Description, fix)
		}
		return nil
	}
	if !slices.Contains(lint.Formats(), o.format) {
		return errs.Usagef("unknown --format %q (want %s)", o.format, strings.Join(lint.Formats(), ", "))
	}
	cfg, err := loadLintConfig(o)
	if err != nil {
		return err
	}
	if o.contextDir != "" {
		if fi, err := os.Stat(o.contextDir); err != nil || !fi.IsDir() {
			return errs.Inputf("--context %s is not a readable directory", o.contextDir)
		}
	}
	files, err := lint.FindDockerfiles(args...)
	if err != nil {
		return err
	}
	var results []*lint.Result
	failed := 0
	disc := lint.NewDiscoverer()
	var fixes, shown lint.Rewrites // written; shown as a diff
	for _, file := range files {
		res, err := lintOne(s, o, cfg, disc, file)
		if err != nil {
			failed++
			fmt.Fprintf(s.Err, "%s\n", err)
			if o.format != "text" {
				results = append(results, lint.ErrorResult(file, err))
			}
			continue
		}
		results = append(results, res)
		if !o.fix && !o.diff {
			continue
		}
		// Every Dockerfile of the run says what its build needs of a
		// shared ignore file before any fix adds to it.
		fixes.Need(res)
		shown.Need(res)
		if o.diff || file == lint.Stdin {
			shown.Add(res.Rewrite())
		} else {
			fixes.Add(res.Rewrite())
		}
	}
	for _, m := range append(fixes.Kept(), shown.Kept()...) {
		fmt.Fprintf(s.Err, "strata: %s\n", m)
	}
	fmt.Fprint(s.Out, shown.Diff())
	if len(fixes.List()) > 0 {
		if err := fixes.Write(); err != nil {
			return err
		}
		// Lint the fixed Dockerfiles again, against their contexts as
		// the fixes left them, for what remains.
		disc = lint.NewDiscoverer()
		fixed := map[string]int{}
		for _, rw := range fixes.List() {
			fixed[rw.Dockerfile.Path] = len(rw.Applied)
		}
		for i, r := range results {
			n, ok := fixed[r.File]
			if !ok {
				continue
			}
			fmt.Fprintf(s.Err, "%s: fixed %d finding(s)\n", r.File, n)
			if results[i], err = lintOne(s, o, cfg, disc, r.File); err != nil {
				return err
			}
		}
	}
	if !o.diff {
		if err := lint.Write(s.Out, o.format, results, lint.WriteOptions{Color: o.format == "text" && lintColor(s.Out)}); err != nil {
			return err
		}
	}
	if failed > 0 {
		return errs.Inputf("%d of %d Dockerfiles could not be linted", failed, len(files))
	}
	for _, r := range results {
		if lint.Failed(r.Findings, cfg.FailLevel) {
			return errs.ErrFindings
		}
	}
	return nil
}

func loadLintConfig(o *lintOptions) (*lint.Config, error) {
	cfg, err := lint.ResolveConfig(o.config, ".")
	if err != nil {
		return nil, err
	}
	if o.failLevel != "" {
		lvl, err := lint.ParseSeverity(o.failLevel)
		if err != nil {
			return nil, errs.Usagef("--fail-level: %v", err)
		}
		cfg.FailLevel = lvl
	}
	if o.noBuildKit {
		off := false
		cfg.BuildKitChecks = &off
	}
	return cfg, nil
}

// lintOne lints one Dockerfile.
func lintOne(s Streams, o *lintOptions, cfg *lint.Config, disc *lint.Discoverer, file string) (*lint.Result, error) {
	dt, err := lint.ReadDockerfile(file, s.In)
	if err != nil {
		return nil, err
	}
	opts := lint.Options{Config: cfg, ContextDir: o.contextDir, BuildArgs: build.ParseKeyValues(o.buildArgs)}
	if o.contextDir != "" {
		opts.ContextReason = "--context"
	}
	// Dockerfiles that share a context share one walk of it.
	if opts, err = disc.OptionsFor(file, opts, true); err != nil {
		return nil, err
	}
	return lint.Lint(file, dt, opts)
}

func lintColor(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && os.Getenv("NO_COLOR") == "" && term.IsTerminal(int(f.Fd()))
}
