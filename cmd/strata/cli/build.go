package cli

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/strata-build/strata/build"
	"github.com/strata-build/strata/builder"
	"github.com/strata-build/strata/cache/crawl"
	"github.com/strata-build/strata/errs"
	"github.com/strata-build/strata/frontend"
)

var _ = register(newBuildCmd)

// buildCmd is strata build's flags and what it does with them.
type buildCmd struct {
	opt          build.Options
	buildArgs    []string
	secrets      []string
	ssh          []string
	outputs      []string
	labels       []string
	addHosts     []string
	contexts     []string
	noCacheFor   []string
	ulimits      []string
	shmSize      string
	quiet        bool
	provenance   string
	sbom         string
	metadataFile string
	iidFile      string
	bf           builderFlags
	index        indexFlags
	autoCache    int
	noAutoCache  bool
	stream       bool
}

func newBuildCmd(s Streams) *cobra.Command {
	b := &buildCmd{}
	cmd := &cobra.Command{
		Use:   "build [OPTIONS] PATH",
		Short: "Build a Dockerfile on BuildKit",
		Long: `Build the Dockerfile in PATH (the build context) on BuildKit.

The builder is --builder, else BUILDKIT_HOST, else BUILDX_BUILDER, else
strata's own buildkitd, started on first use with its state under
~/.cache/strata/buildkitd and reused afterwards ('strata builder status|stop'
manages it). --builder takes a BuildKit address or the name of a docker buildx
builder (remote or docker-container driver). A builder on tcp:// that requires
mutual TLS takes --tlscacert, --tlscert and --tlskey (or --tlsdir), or the
BUILDKIT_TLS_CA_CERT, BUILDKIT_TLS_CERT and BUILDKIT_TLS_KEY variables (or
BUILDKIT_TLS_DIR); a buildx remote builder brings its own. Registry credentials come
from the docker config (~/.docker/config.json and its credential helpers).
Images strata exports carry inline cache metadata, so they serve as cache
sources for later builds. A push of a target that copies from other stages
also writes BuildKit's registry cache (mode=max) to REPO:buildcache, which
covers those stages (--cache-to names another place; --cache-to type=inline
writes none); a build with no index imports the cache exports of its target
repository.`,
		Example: `  strata build -t registry.example.com/app:v1 --push .
  strata build -f docker/Dockerfile --target test --build-arg GO_VERSION=1.26 .
  strata build --output type=local,dest=out .
  strata build --builder tcp://buildkitd.internal:1234 --tlsdir /etc/buildkit/certs -t registry.example.com/app:v1 --push .
  strata build --builder fleet -t registry.example.com/app:v1 --push .
  strata build --cache-to type=registry,ref=registry.example.com/app:buildcache,mode=max -t registry.example.com/app:v1 --push .`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return b.run(cmd, s, args) },
	}
	b.addFlags(cmd)
	return cmd
}

// addFlags defines strata build's flags, with docker buildx build's names
// and meanings.
func (b *buildCmd) addFlags(cmd *cobra.Command) {
	opt := &b.opt
	f := cmd.Flags()
	f.StringVarP(&opt.Dockerfile, "file", "f", "", "name of the Dockerfile (default: PATH/Dockerfile; - reads it from standard input)")
	f.StringArrayVarP(&opt.Tags, "tag", "t", nil, `image name and optionally a tag, "name:tag" (repeatable)`)
	f.StringArrayVar(&b.buildArgs, "build-arg", nil, "set a build-time variable, KEY=VALUE or KEY to take it from the environment (repeatable)")
	f.StringVar(&opt.Target, "target", "", "build this stage")
	f.StringSliceVar(&opt.Platforms, "platform", nil, "target platforms, e.g. linux/amd64,linux/arm64")
	f.StringArrayVar(&b.secrets, "secret", nil, "secret to expose to the build: id=ID[,src=PATH|,env=VAR] (repeatable)")
	f.StringArrayVar(&b.ssh, "ssh", nil, "SSH agent socket or keys to expose: default|ID[=SOCKET|KEY[,KEY]] (repeatable)")
	f.StringArrayVarP(&b.outputs, "output", "o", nil, "extra output: type=local,dest=DIR | type=tar,dest=FILE | type=oci,dest=FILE | type=image,name=REF[,push=true]")
	f.StringArrayVar(&b.contexts, "build-context", nil, "additional build context, NAME=VALUE: a directory, docker-image://REF or a Git or HTTP URL, used where the Dockerfile names NAME in FROM or COPY --from (repeatable)")
	f.StringArrayVar(&b.labels, "label", nil, "set a label in the image's config, KEY=VALUE (repeatable)")
	f.BoolVar(&opt.Pull, "pull", false, "look up every base image in its registry, even when the builder has it")
	f.StringArrayVar(&b.addHosts, "add-host", nil, "add a host to /etc/hosts of RUN steps, HOST:IP (repeatable)")
	f.StringArrayVar(&opt.CacheFrom, "cache-from", nil, "extra cache source: REF or type=registry,ref=REF (repeatable)")
	f.StringArrayVar(&opt.CacheTo, "cache-to", nil, "cache export written after the build: type=registry,ref=REF[,mode=max] or type=local,dest=DIR (default with --push, for a target that copies from other stages: type=registry,ref=REPO:buildcache,mode=max in the first tag's repository; type=inline: none but the inline cache every image carries) (repeatable)")
	f.BoolVar(&opt.Push, "push", false, "push the image to the registry of each --tag")
	f.BoolVar(&opt.NoCache, "no-cache", false, "do not use cache when building the image")
	f.StringArrayVar(&b.noCacheFor, "no-cache-filter", nil, "build these stages without cache (repeatable, or comma-separated)")
	f.StringVar(&opt.Network, "network", "", "network of RUN steps: default, none, or host (the builder must allow the network.host entitlement)")
	f.StringVar(&b.shmSize, "shm-size", "", "size of /dev/shm in RUN steps, e.g. 128m")
	f.StringArrayVar(&b.ulimits, "ulimit", nil, "ulimit of RUN steps, TYPE=SOFT[:HARD], e.g. nofile=1024:2048 (repeatable)")
	f.BoolVarP(&b.quiet, "quiet", "q", false, "no progress output; print only the image ID")
	f.StringVar(&b.provenance, "provenance", "", "false: no provenance attestation, which strata never writes (any other value is refused)")
	f.StringVar(&b.sbom, "sbom", "", "false: no SBOM attestation, which strata never writes (any other value is refused)")
	f.BoolVar(&b.stream, "stream", true, "with --push, upload each layer while the rest of the build runs (false: BuildKit pushes after the build)")
	f.BoolVar(&opt.Reproducible, "reproducible", true, "rewrite file timestamps in new layers to the source date epoch, so the same inputs give the same digests on any builder (false: keep the build's times)")
	f.StringVar(&opt.Compression, "compression", "", "compression of the layers the build creates: estargz (default; gzip that a stargz-snapshotter builder pulls lazily), gzip, zstd (faster; needs containerd 1.5+ or Docker 23+ to pull) or uncompressed")
	f.BoolVar(&opt.ForceCompression, "force-compression", false, "also rewrite the layers taken from the base image or a cache in --compression (with --push on a builder that pulls lazily: every gzip one as eStargz, not only the first 32 MB; each is uploaded once more)")
	f.StringVar(&opt.SourceDateEpoch, "source-date-epoch", "", "the image's creation time in seconds, set where the image is written so no cache key depends on it (default: a SOURCE_DATE_EPOCH build arg, else the SOURCE_DATE_EPOCH environment variable, else the context's last git commit time, 0 outside git)")
	f.StringVar(&opt.Progress, "progress", "auto", "progress output: auto, plain, tty, quiet or rawjson")
	f.StringVar(&b.metadataFile, "metadata-file", "", "write the build result metadata (image digest, timings) as JSON to this file")
	f.StringVar(&b.iidFile, "iidfile", "", "write the image ID (the digest of its config) to this file")
	f.IntVar(&b.autoCache, "auto-cache", 3, "import cache from at most N images of the index that share the most steps with this build")
	f.BoolVar(&b.noAutoCache, "no-auto-cache", false, "do not choose cache sources from the index (--cache-from still applies; pushed images are still added to it)")
	b.index.add(cmd)
	b.bf.add(cmd, "(default: BUILDKIT_HOST, else BUILDX_BUILDER, else strata's local buildkitd)")
	_ = cmd.RegisterFlagCompletionFunc("compression", cobra.FixedCompletions(build.Compressions(), cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("progress", cobra.FixedCompletions([]string{"auto", "plain", "tty", "quiet", "rawjson"}, cobra.ShellCompDirectiveNoFileComp))
}

// run builds, and pushes with --push: the builder reached while the
// automatic cache is chosen, build.Run (which may start the solve before
// the choice is made), then the index and the metadata file updated.
func (b *buildCmd) run(cmd *cobra.Command, s Streams, args []string) error {
	if b.opt.Dockerfile == "-" {
		// As docker buildx build -f -: the Dockerfile from standard
		// input, the context from PATH.
		dir, err := os.MkdirTemp("", "strata-stdin-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if b.opt.Dockerfile, err = stdinDockerfile(s.In, dir); err != nil {
			return err
		}
	}
	opt, err := b.options(cmd, args)
	if err != nil {
		return err
	}
	if b.iidFile != "" {
		if !opt.ExportsImage() {
			return usageError(cmd, errors.New("--iidfile needs an image: pass -t or --output type=image|oci|docker"))
		}
		// Not the last build's ID if this one fails, as docker buildx.
		_ = os.Remove(b.iidFile)
	}
	ctx := cmd.Context()
	ac, err := autoCacheFor(s, &b.index, b.autoCache, b.noAutoCache, opt.Progress)
	if err != nil {
		return err
	}
	// The cache sources are chosen from the registry and the index while
	// the builder is reached (or started), and while the build reads the
	// Dockerfile and the context: none waits for the other. What the
	// choice says is held until the builder answers, so that a builder
	// that cannot be reached is the one line printed.
	opt = opt.OpenContext() // one walk of the context for the choice and the build
	chooseCtx, stopChoosing := context.WithCancel(ctx)
	held := holdMessages(ac)
	chosen := make(chan build.Choice, 1)
	// The choice resolves the base images through the build's frontend,
	// once it has started: the builder resolves each once, for both.
	if ac != nil {
		opt.Resolves = frontend.NewResolves()
		ac.Resolves = opt.Resolves
	}
	chooseOpt := opt // opt changes below; the choice reads its own copy
	go func() { chosen <- ac.Choose(chooseCtx, chooseOpt) }()
	pending := build.Pending(chosen)
	// However the build ends, the choice has ended (and said what it
	// says) before strata returns.
	defer func() {
		stopChoosing()
		pending.Wait()
	}()
	// The default SOURCE_DATE_EPOCH (the last commit's time, from git) is
	// read beside them too.
	epochOpt, epochErr := opt, make(chan error, 1)
	go func() { epochErr <- epochOpt.ResolveEpoch() }()
	c, e, err := b.bf.connect(ctx, builder.WithPlainHTTP(opt.InsecureRegistries...))
	if err != nil {
		return err
	}
	defer c.Close()
	if opt.Progress != "quiet" && opt.Progress != "rawjson" {
		if h := e.PlainHTTPHint(opt.InsecureRegistries); h != "" {
			fmt.Fprintf(s.Err, "strata: %s\n", h)
		}
	}
	held.release()
	if err := <-epochErr; err != nil {
		return err
	}
	opt.SourceDateEpoch = epochOpt.SourceDateEpoch
	if e.Probed != nil {
		opt.Snapshotter = e.Probed.Snapshotter
	}
	opt.Pending = pending
	res, err := build.Run(ctx, c, opt, s.Err)
	if err != nil {
		return err
	}
	choice := pending.Wait()
	res.AutoCache, res.CacheSource = choice.Imports, choice.Source
	if opt.Push {
		ac.Record(ctx, opt.Tags, res.Pushed)
	}
	if b.metadataFile != "" {
		if err := build.WriteMetadata(b.metadataFile, res); err != nil {
			return err
		}
	}
	if b.iidFile != "" {
		if err := build.WriteImageID(b.iidFile, res); err != nil {
			return err
		}
	}
	switch d := res.ExporterResponse["containerimage.digest"]; {
	case b.quiet:
		// The image ID, as docker buildx build -q prints it.
		if id := cmp.Or(res.ExporterResponse["containerimage.config.digest"], d); id != "" {
			fmt.Fprintln(s.Out, id)
		}
	case d != "" && opt.Progress != "quiet":
		fmt.Fprintln(s.Out, d)
	}
	return nil
}

// options are the build's options from the flags and PATH, checked.
func (b *buildCmd) options(cmd *cobra.Command, args []string) (build.Options, error) {
	opt := b.opt
	opt.NoStream = !b.stream
	opt.ContextDir = "."
	if len(args) == 1 {
		opt.ContextDir = args[0]
	}
	if opt.ContextDir == "-" {
		return opt, errs.WithHint(errs.Usagef("a context from standard input is not supported"), "pass a directory as PATH")
	}
	opt.BuildArgs = build.ParseKeyValues(b.buildArgs)
	if len(b.labels) > 0 {
		opt.Labels = build.ParseLabels(b.labels)
	}
	opt.InsecureRegistries = b.index.insecure
	if err := builder.CheckPlainHTTP(opt.InsecureRegistries); err != nil {
		return opt, err
	}
	var err error
	if opt.Secrets, err = parseEach(cmd, "secret", b.secrets, build.ParseSecret); err != nil {
		return opt, err
	}
	parseSSH := func(v string) (build.SSH, error) { return build.ParseSSH(v), nil }
	if opt.SSH, err = parseEach(cmd, "ssh", b.ssh, parseSSH); err != nil {
		return opt, err
	}
	if opt.Outputs, err = parseEach(cmd, "output", b.outputs, build.ParseOutput); err != nil {
		return opt, err
	}
	if opt.BuildContexts, err = parseEach(cmd, "build-context", b.contexts, build.ParseBuildContext); err != nil {
		return opt, err
	}
	for flag, v := range map[string]string{"provenance": b.provenance, "sbom": b.sbom} {
		if off, err := strconv.ParseBool(v); v != "" && (err != nil || off) {
			return opt, errs.WithHint(errs.Usagef("--%s=%s: strata writes no attestations", flag, v),
				"its images are single manifests (an index only with several --platform); drop the flag, or pass --"+flag+"=false")
		}
	}
	if b.quiet {
		if cmd.Flags().Changed("progress") && opt.Progress != "quiet" {
			return opt, usageError(cmd, fmt.Errorf("--quiet and --progress=%s: choose one", opt.Progress))
		}
		opt.Progress = "quiet"
	}
	for _, v := range b.noCacheFor {
		for stage := range strings.SplitSeq(v, ",") {
			if stage = strings.TrimSpace(stage); stage != "" {
				opt.NoCacheFilter = append(opt.NoCacheFilter, stage)
			}
		}
	}
	if opt.ShmSize, err = build.ParseShmSize(b.shmSize); err != nil {
		return opt, usageError(cmd, fmt.Errorf("--shm-size %q: %w", b.shmSize, err))
	}
	if opt.Ulimits, err = parseEach(cmd, "ulimit", b.ulimits, build.ParseUlimit); err != nil {
		return opt, err
	}
	hosts, err := parseEach(cmd, "add-host", b.addHosts, build.ParseAddHost)
	if err != nil {
		return opt, err
	}
	opt.AddHosts = slices.Concat(hosts...)
	for flag, path := range map[string]string{"--metadata-file": b.metadataFile, "--iidfile": b.iidFile} {
		if err := build.CheckOutputFile(flag, path); err != nil {
			return opt, err
		}
	}
	err = opt.Validate() // before opt is returned: it keeps the Dockerfile it parsed
	return opt, err
}

// parseEach parses the values of a repeatable flag, skipping empty ones as
// docker buildx does; a value that does not parse is a usage error.
func parseEach[T any](cmd *cobra.Command, flag string, values []string, parse func(string) (T, error)) ([]T, error) {
	var out []T
	for _, v := range values {
		if v == "" {
			continue
		}
		t, err := parse(v)
		if err != nil {
			return nil, usageError(cmd, fmt.Errorf("--%s %q: %w", flag, v, err))
		}
		out = append(out, t)
	}
	return out, nil
}

// autoCacheFor opens the index store: for automatic cache selection (at
// most n images; none with off) and to record the images the build pushes.
func autoCacheFor(s Streams, f *indexFlags, n int, off bool, progress string) (*build.AutoCache, error) {
	if n < 0 {
		return nil, errs.Usagef("--auto-cache=%d: want 0 or more", n)
	}
	if off {
		n = 0 // choose nothing; pushed images are still recorded
	}
	opts := []crawl.Option{crawl.WithInsecureRegistries(f.insecure...)}
	warn := func(msg string) { fmt.Fprintf(s.Err, "strata: warning: %s\n", msg) }
	st, err := f.store(s, opts...)
	if err != nil {
		if errors.Is(err, errs.ErrUsage) {
			return nil, err
		}
		warn(fmt.Sprintf("cache index: %v; building without automatic cache", err))
		return nil, nil
	}
	ac := &build.AutoCache{Store: st, Max: n, Options: opts, Warn: warn}
	if f.ref == "" {
		// No shared index: the target repository itself tells what
		// earlier builds pushed, whoever built them.
		ac.TargetTags = build.TargetTagsDefault
	}
	if progress != "quiet" && progress != "rawjson" {
		ac.Note = func(msg string) { fmt.Fprintf(s.Err, "strata: %s\n", msg) }
	}
	return ac, nil
}

// heldMessages are an AutoCache's notes and warnings, kept in order until
// release prints them as the AutoCache would have.
type heldMessages struct {
	mu       sync.Mutex
	pending  []func()
	released bool
}

// holdMessages holds ac's notes and warnings from now until release. It
// sets ac's Note and Warn before the choice starts; release changes
// nothing the choice reads.
func holdMessages(ac *build.AutoCache) *heldMessages {
	h := &heldMessages{}
	if ac == nil {
		return h
	}
	hold := func(f func(string)) func(string) {
		if f == nil {
			return nil
		}
		return func(msg string) {
			h.mu.Lock()
			defer h.mu.Unlock()
			if h.released {
				f(msg)
				return
			}
			h.pending = append(h.pending, func() { f(msg) })
		}
	}
	ac.Note, ac.Warn = hold(ac.Note), hold(ac.Warn)
	return h
}

// release prints what was held and lets later messages through.
func (h *heldMessages) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, f := range h.pending {
		f()
	}
	h.pending, h.released = nil, true
}

// buildxOnly are flags of docker buildx build that strata does not have,
// with what to do instead.
var buildxOnly = map[string]string{
	"load":          "strata talks to no docker engine: write the image with --output type=docker,dest=image.tar and run 'docker load -i image.tar'",
	"attest":        "strata writes no attestations: drop the flag",
	"annotation":    "strata does not write manifest annotations: set --label for the image's config",
	"allow":         "strata asks for network.host itself with --network host; drop --allow",
	"call":          "for the Dockerfile checks, run 'strata lint' (BuildKit's checks included)",
	"check":         "for the Dockerfile checks, run 'strata lint' (BuildKit's checks included)",
	"cgroup-parent": "not supported by strata: drop the flag",
}

// missingBuildxFlag is the hint for an unknown flag that docker buildx
// build has and strata build does not; "" for any other error.
func missingBuildxFlag(c *cobra.Command, err error) string {
	if c.Name() != "build" {
		return ""
	}
	name, ok := strings.CutPrefix(err.Error(), "unknown flag: --")
	if !ok {
		return ""
	}
	return buildxOnly[name]
}

// maxStdinDockerfile bounds a Dockerfile read from standard input.
const maxStdinDockerfile = 16 << 20

// stdinDockerfile writes the Dockerfile read from in to dir/Dockerfile.
func stdinDockerfile(in io.Reader, dir string) (string, error) {
	if in == nil {
		in = os.Stdin
	}
	dt, err := io.ReadAll(io.LimitReader(in, maxStdinDockerfile+1))
	if err != nil {
		return "", errs.Inputf("-f -: reading the Dockerfile from standard input: %v", err)
	}
	if len(dt) > maxStdinDockerfile {
		return "", errs.Inputf("-f -: the Dockerfile on standard input is over %d MiB", maxStdinDockerfile>>20)
	}
	if len(bytes.TrimSpace(dt)) == 0 {
		return "", errs.WithHint(errs.Inputf("-f -: standard input holds no Dockerfile"), "pipe one in: strata build -f - . < Dockerfile")
	}
	path := filepath.Join(dir, "Dockerfile")
	return path, os.WriteFile(path, dt, 0o600)
}
