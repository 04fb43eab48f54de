package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/strata-build/strata/cache"
	"github.com/strata-build/strata/cache/crawl"
	"github.com/strata-build/strata/cache/store"
	"github.com/strata-build/strata/errs"
)

var _ = register(newIndexCmd)

// indexFlags select the index store and how to reach registries.
type indexFlags struct {
	ref      string
	file     string
	insecure []string
}

func (f *indexFlags) add(c *cobra.Command) {
	c.Flags().StringVar(&f.ref, "index", "", "keep the index in the registry at this tag, shared by every runner (e.g. registry.example.com/strata/index:main)")
	c.Flags().StringVar(&f.file, "index-file", "", "index file (default $"+store.IndexFileEnv+", else ~/.cache/strata/index/default.idx)")
	c.Flags().StringArrayVar(&f.insecure, "insecure-registry", nil, "allow plain HTTP to this registry host (localhost, 127.0.0.1 and ::1 always are) (repeatable)")
}

func (f *indexFlags) store(s Streams, opts ...crawl.Option) (store.Store, error) {
	return store.OpenStore(f.ref, f.file, func(msg string) { fmt.Fprintf(s.Err, "warning: %s\n", msg) }, opts...)
}

func newIndexCmd(s Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "index",
		Short: "Keep the index of registry images that strata plan and build choose cache sources from",
		Long: `The index records, for every image in your registries, its platform, layers
and normalised history. 'strata plan' and 'strata build' find the images that
share the most leading steps with a Dockerfile and offer them to BuildKit as
cache sources. It lives in a local file, or with --index in the registry
itself, where every CI runner shares it.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return c.Help() },
	}
	cmd.AddCommand(newIndexRefreshCmd(s), newIndexAddCmd(s), newIndexLsCmd(s))
	return cmd
}

func newIndexRefreshCmd(s Streams) *cobra.Command {
	var (
		f        indexFlags
		ro       crawl.RefreshOptions
		jobs     int
		progress string
	)
	cmd := &cobra.Command{
		Use:   "refresh --registry HOST [--repo PATTERN]...",
		Short: "Crawl a registry into the index (only what changed since the last refresh)",
		Long: `Crawl a registry: its catalog (or the repositories named with --repo), every
tag, every platform of image indexes, and each image's config. Images whose
manifest digest is already indexed are not fetched again; tags that are gone
drop out. Images that cannot be read are skipped with a warning.

Credentials come from the docker config (~/.docker/config.json and its
credential helpers). Plain HTTP is used only for localhost, 127.0.0.1 and ::1,
and for hosts named with --insecure-registry.`,
		Example: `  strata index refresh --registry registry.example.com
  strata index refresh --registry registry.example.com --repo 'team/*' --repo base/golang
  strata index refresh --registry registry.example.com --index registry.example.com/strata/index:main`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if ro.Registry == "" {
				return errs.WithHint(errs.Usagef("--registry is required"), "name the registry host to crawl, e.g. --registry registry.example.com")
			}
			if jobs < 1 || jobs > 256 {
				return errs.Usagef("--jobs %d: want 1 to 256", jobs)
			}
			mode, err := progressMode(progress, s.Err)
			if err != nil {
				return err
			}
			ctx := c.Context()
			opts := []crawl.Option{crawl.WithInsecureRegistries(f.insecure...), crawl.WithJobs(jobs)}
			if mode != "quiet" {
				opts = append(opts, crawl.WithLogger(slog.New(newWarnHandler(s.Err, mode))))
			}
			st, err := f.store(s, opts...)
			if err != nil {
				return err
			}
			x, err := st.Load(ctx)
			if err != nil {
				return err
			}
			before := x.Snapshot()
			ch := make(chan crawl.Progress, 16)
			stop := showProgress(ctx, s.Err, mode, ch)
			res, err := crawl.Refresh(ctx, x, ro, append(opts, crawl.WithProgress(ch))...)
			if err != nil {
				stop(nil)
				return err
			}
			stop(&crawl.Progress{Repos: res.Repos, ReposDone: res.Repos, Tags: res.Tags, TagsDone: res.Tags,
				Fetched: res.Fetched, Reused: res.Reused, Skipped: res.Skipped})
			merged, err := st.Update(ctx, x.ChangedSince(before))
			if err != nil {
				return err
			}
			if mode != "quiet" {
				fmt.Fprintf(s.Out, "%s: %d repositories, %d tags: %d fetched, %d unchanged, %d removed, %d skipped; %s holds %d images\n",
					ro.Registry, res.Repos, res.Tags, res.Fetched, res.Reused, res.Removed, res.Skipped, st, merged.Len())
			}
			return nil
		},
	}
	f.add(cmd)
	fl := cmd.Flags()
	fl.StringVar(&ro.Registry, "registry", "", "registry host[:port] to crawl")
	fl.StringArrayVar(&ro.Repos, "repo", nil, "repository name or pattern (path.Match, e.g. 'team/*'); default every repository in the catalog (repeatable)")
	fl.IntVar(&jobs, "jobs", 8, "requests in flight at once")
	fl.StringVar(&progress, "progress", "auto", "progress output: auto (a status line on a terminal, else none), plain, tty or quiet")
	return cmd
}

func newIndexAddCmd(s Streams) *cobra.Command {
	var f indexFlags
	cmd := &cobra.Command{
		Use:   "add REF...",
		Short: "Add images to the index (strata build does this after each push)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, refs []string) error {
			opts := []crawl.Option{crawl.WithInsecureRegistries(f.insecure...)}
			st, err := f.store(s, opts...)
			if err != nil {
				return err
			}
			return store.AddImages(c.Context(), st, refs, opts...)
		},
	}
	f.add(cmd)
	return cmd
}

func newIndexLsCmd(s Streams) *cobra.Command {
	var (
		f      indexFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List the images in the index",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			st, err := f.store(s, crawl.WithInsecureRegistries(f.insecure...))
			if err != nil {
				return err
			}
			x, err := st.Load(c.Context())
			if err != nil {
				return err
			}
			imgs := x.Images()
			sort.Slice(imgs, func(i, j int) bool { return imgs[i].ID() < imgs[j].ID() })
			if asJSON {
				enc := json.NewEncoder(s.Out)
				enc.SetIndent("", "  ")
				return enc.Encode(imgs)
			}
			tw := tabwriter.NewWriter(s.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "REF\tPLATFORM\tLAYERS\tSIZE\tINLINE CACHE\tPUSHED")
			for _, m := range imgs {
				var size int64
				for _, l := range m.Layers {
					size += l.Size
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%v\t%s\n", m.Ref, m.Platform, len(m.Layers), cache.HumanBytes(size), m.InlineCache, m.Pushed.Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	f.add(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the entries as JSON")
	return cmd
}

// progressMode resolves --progress: auto is tty on a terminal, else quiet
// for progress (warnings still print).
func progressMode(mode string, w io.Writer) (string, error) {
	switch mode {
	case "plain", "tty", "quiet":
		return mode, nil
	case "", "auto":
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			return "tty", nil
		}
		return "auto", nil
	}
	return "", errs.Usagef("--progress=%s is not one of auto, plain, tty, quiet", mode)
}

// showProgress prints crawl progress until stop is called: one rewritten
// status line on a terminal, a line every two seconds for plain; stop
// prints the final counts when given them.
func showProgress(ctx context.Context, w io.Writer, mode string, ch <-chan crawl.Progress) (stop func(final *crawl.Progress)) {
	done := make(chan *crawl.Progress, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var printed time.Time
		line := func(p crawl.Progress) string {
			return fmt.Sprintf("repositories %d/%d  tags %d/%d  fetched %d  unchanged %d  skipped %d",
				p.ReposDone, p.Repos, p.TagsDone, p.Tags, p.Fetched, p.Reused, p.Skipped)
		}
		for {
			select {
			case p := <-ch:
				switch {
				case mode == "tty" && time.Since(printed) > 100*time.Millisecond:
					fmt.Fprintf(w, "\r\033[K%s", line(p))
					printed = time.Now()
				case mode == "plain" && time.Since(printed) > 2*time.Second:
					fmt.Fprintln(w, line(p))
					printed = time.Now()
				}
			case final := <-done:
				if final == nil {
					if mode == "tty" {
						fmt.Fprint(w, "\r\033[K")
					}
					return
				}
				switch mode {
				case "tty":
					fmt.Fprintf(w, "\r\033[K%s\n", line(*final))
				case "plain":
					fmt.Fprintln(w, line(*final))
				}
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return func(final *crawl.Progress) { done <- final; wg.Wait() }
}

// warnHandler prints warnings as "warning: MESSAGE" lines; on a terminal
// it first clears the progress line.
type warnHandler struct {
	w   io.Writer
	tty bool
	mu  *sync.Mutex
}

func newWarnHandler(w io.Writer, mode string) warnHandler {
	return warnHandler{w: w, tty: mode == "tty", mu: &sync.Mutex{}}
}

func (h warnHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (h warnHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	prefix := ""
	if h.tty {
		prefix = "\r\033[K"
	}
	_, err := fmt.Fprintf(h.w, "%swarning: %s\n", prefix, strings.TrimSpace(r.Message))
	return err
}
func (h warnHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h warnHandler) WithGroup(string) slog.Handler      { return h }
