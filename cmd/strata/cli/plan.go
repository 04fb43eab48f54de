package cli

import (
	"github.com/spf13/cobra"

	"github.com/strata-build/strata/build"
	"github.com/strata-build/strata/cache/crawl"
	"github.com/strata-build/strata/cache/plan"
	"github.com/strata-build/strata/errs"
)

var _ = register(newPlanCmd)

func newPlanCmd(s Streams) *cobra.Command {
	var (
		f          indexFlags
		opt        plan.PlanOptions
		buildArgs  []string
		asJSON     bool
		imports    int
		candidates int
	)
	cmd := &cobra.Command{
		Use:   "plan [OPTIONS] [PATH]",
		Short: "Show which indexed images strata build would import cache from, and why",
		Long: `Plan the build of the Dockerfile in PATH (default ".") against the index: for
each stage the target needs, the indexed images that share the most leading
steps with it (after build args and variables are expanded, exactly as
BuildKit writes them into image history), how each step matched, the bytes
their layers hold, and which refs become cache imports.

A step matches "exact" when its text is the same and, for COPY and ADD, the
sources' content digest recorded in the image matches the context; "text"
when only the text is known to match; "changed" when the recorded content
differs. BuildKit decides every cache hit by its own keys: the plan only
chooses which images to offer it.`,
		Example: `  strata plan .
  strata plan -f docker/Dockerfile --target test --build-arg GO_VERSION=1.26 .
  strata plan --json --index registry.example.com/strata/index:main .`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			opt.ContextDir = "."
			if len(args) == 1 {
				opt.ContextDir = args[0]
			}
			if imports < 0 || candidates < 1 {
				return errs.Usagef("--imports must be 0 or more and --candidates 1 or more")
			}
			opt.BuildArgs = build.ParseKeyValues(buildArgs)
			opt.Candidates = candidates
			opt.Options = []crawl.Option{crawl.WithInsecureRegistries(f.insecure...)}
			st, err := f.store(s, opt.Options...)
			if err != nil {
				return err
			}
			if opt.Index, err = st.Load(c.Context()); err != nil {
				return err
			}
			plan, err := plan.PlanBuild(c.Context(), opt)
			if err != nil {
				return err
			}
			if asJSON {
				return plan.WriteJSON(s.Out, imports)
			}
			return plan.WriteText(s.Out, imports)
		},
	}
	f.add(cmd)
	fl := cmd.Flags()
	fl.StringVarP(&opt.Dockerfile, "file", "f", "", "name of the Dockerfile (default: PATH/Dockerfile)")
	fl.StringArrayVar(&buildArgs, "build-arg", nil, "set a build-time variable, KEY=VALUE or KEY to take it from the environment (repeatable)")
	fl.StringVar(&opt.Target, "target", "", "plan this stage and the stages it needs")
	fl.StringSliceVar(&opt.Platforms, "platform", nil, "target platforms, e.g. linux/amd64,linux/arm64 (default: this machine's)")
	fl.BoolVar(&asJSON, "json", false, "print the plan as JSON")
	fl.IntVar(&imports, "imports", 3, "how many cache imports to choose")
	fl.IntVar(&candidates, "candidates", 5, "candidates to show per stage")
	return cmd
}
