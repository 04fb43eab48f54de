package build

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/configfile"
	"github.com/docker/cli/cli/config/credentials"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/auth/authprovider"
	"github.com/moby/buildkit/session/secrets/secretsprovider"
	"github.com/moby/buildkit/session/sshforward/sshprovider"
	"github.com/moby/buildkit/util/grpcerrors"
	"github.com/moby/buildkit/util/progress/progressui"
	"github.com/tonistiigi/fsutil"
	"google.golang.org/grpc/codes"

	"github.com/strata-build/strata/buildcontext"
	"github.com/strata-build/strata/builder"
	"github.com/strata-build/strata/cache/crawl"
	"github.com/strata-build/strata/errs"
	"github.com/strata-build/strata/frontend"
)

// Result is what a build produced.
type Result struct {
	// ExporterResponse is BuildKit's exporter response (containerimage.digest, image.name, ...).
	ExporterResponse map[string]string
	// Timings in seconds.
	Timings Timings
	// Warnings are the build warnings BuildKit reported (lint checks and others).
	Warnings []client.VertexWarning
	// Steps counts the Dockerfile steps BuildKit ran or found in its cache.
	Steps Steps
	// Pulled is what BuildKit pulled from registries.
	Pulled Pulled
	// Push describes the upload when strata pushed the image itself.
	Push *PushStats
	// AutoCache lists the cache sources strata chose from the index.
	AutoCache []AutoImport
	// CacheSource says what AutoCache was chosen from: the index, and the
	// target repositories' tags read for the build.
	CacheSource string
	// Pushed is the image strata pushed itself (a streamed push), as
	// pushed: nil when BuildKit pushed, or when it was not held.
	Pushed *crawl.Pushed
}

// Pulled counts the blobs BuildKit pulled from registries for the build:
// base image and cache layers, as BuildKit's progress reports downloads.
type Pulled struct {
	Bytes int64 `json:"bytes"`
	Blobs int   `json:"blobs"`
}

// Steps counts Dockerfile steps (BuildKit vertices named "[stage n/m] ...").
type Steps struct {
	Total  int `json:"total"`
	Cached int `json:"cached"`
}

// Timings are measured wall-clock durations of one build, in seconds.
type Timings struct {
	Total float64 `json:"total"`
	Solve float64 `json:"solve"`
}

// Run builds opt on c and returns BuildKit's response. Progress goes to out.
// With Push, layers stream to the registry while the build runs (see
// stream.go) unless Options.NoStream is set.
func Run(ctx context.Context, c *client.Client, opt Options, out io.Writer) (*Result, error) {
	start := time.Now()
	contextDir, dockerfile, err := opt.resolve()
	if err != nil {
		return nil, err
	}
	if err := opt.resolveEpoch(contextDir); err != nil {
		return nil, err
	}
	// Whether the builder pulls lazily matters to a streamed push and to
	// a build that imports cache (maybe one being chosen).
	pullsLazily := (opt.streamed() || len(opt.CacheFrom) > 0 || opt.Pending != nil) && builder.PullsLazily(ctx, c, opt.Snapshotter)
	// The choice resolves base images through the build's frontend, when
	// one starts before it is made; else itself.
	defer opt.Resolves.NoGateway()
	if opt.Pending != nil && !startsBeforeChoice(opt, out, pullsLazily) {
		opt.Resolves.NoGateway()
		choice, err := opt.Pending.wait(ctx)
		if err != nil {
			return nil, classify(ctx, err, opt.Push)
		}
		opt = choice.Apply(opt)
		opt.Pending = nil
	}
	// One walk of the context serves the secret check and, in a streamed
	// push, the sources recorded in the image's history. A context that
	// cannot be opened is left to the build to report.
	bc := opt.BuildContext
	if bc == nil || !sameDir(bc.Dir(), contextDir) {
		if bc, err = buildcontext.Open(contextDir, dockerfile); err != nil {
			bc = nil
		}
	}
	// The Dockerfile is parsed once for the build; one that does not parse
	// is left to the build to report, with its location.
	df, _ := opt.readDockerfile(dockerfile)
	if err := checkSecrets(opt, bc, df); err != nil {
		return nil, err
	}
	if ref := opt.defaultCacheExport(df); ref != "" {
		opt.CacheTo = []string{"type=registry,ref=" + ref + ",mode=max,ignore-error=true"}
		if opt.Progress != "quiet" && opt.Progress != "rawjson" {
			fmt.Fprintf(out, "strata: cache export to %s (mode=max: the target copies from other stages, whose steps no image's inline cache records; --cache-to type=inline for none)\n", ref)
		}
	}
	so, err := solveOptions(opt, contextDir, dockerfile)
	if err != nil {
		return nil, err
	}
	mode := progressui.DisplayMode(opt.Progress)
	if mode == "" {
		mode = progressui.AutoMode
	}
	display, err := progressui.NewDisplay(out, mode)
	if err != nil {
		return nil, errs.WithHint(errs.Usagef("--progress=%s: %v", opt.Progress, err), "use --progress=plain when output is not a terminal")
	}
	p := newProgress(display)
	lazyCtx, stopLazy := context.WithCancel(ctx)
	defer stopLazy()
	var lazy *lazyReads
	if len(so.CacheImports) > 0 && pullsLazily {
		lazy = watchLazyReads(lazyCtx, so.CacheImports, opt.InsecureRegistries, opt.platform())
	}
	var res *Result
	if opt.streamed() {
		res, err = runStreamed(ctx, c, opt, so, bc, contextDir, dockerfile, pullsLazily, p)
	} else {
		res, err = runSolve(ctx, c, so, opt, p)
	}
	if err != nil && lazy != nil && ctx.Err() == nil && p.reads.seen.Load() {
		if ferr := lazy.fault(ctx); ferr != nil {
			return nil, ferr
		}
	}
	if err != nil {
		if rerr := p.resolves.error(); rerr != nil && ctx.Err() == nil {
			return nil, rerr
		}
		return nil, classify(ctx, err, opt.Push)
	}
	res.Timings.Total = time.Since(start).Seconds()
	return res, nil
}

// sameDir reports whether a and b name the same directory once symlinks
// are resolved.
func sameDir(a, b string) bool {
	ra, err1 := filepath.EvalSymlinks(a)
	rb, err2 := filepath.EvalSymlinks(b)
	return err1 == nil && err2 == nil && ra == rb
}

// runSolve runs one solve with BuildKit's own exporters (and push).
func runSolve(ctx context.Context, c *client.Client, so client.SolveOpt, opt Options, p *progress) (*Result, error) {
	solveStart := time.Now()
	resp, err := c.Build(ctx, so, frontend.Name, buildFunc(opt.Pending, so.LocalMounts, opt.Resolves, p.Show), p.Main())
	if err != nil {
		return p.result(nil, 0, err)
	}
	return p.result(resp.ExporterResponse, time.Since(solveStart), nil)
}

// result waits for the display to end and returns the build's result: the
// exporter's response, the solve's time and what the progress counted; or
// err, the build's error, else the display's.
func (p *progress) result(resp map[string]string, solve time.Duration, err error) (*Result, error) {
	warnings, steps, perr := p.wait()
	if err != nil {
		return nil, err
	}
	if perr != nil {
		return nil, perr
	}
	return &Result{
		ExporterResponse: resp,
		Warnings:         warnings,
		Steps:            steps,
		Pulled:           p.pulls.total(),
		Timings:          Timings{Solve: solve.Seconds()},
	}, nil
}

func solveOptions(opt Options, contextDir, dockerfile string) (client.SolveOpt, error) {
	var so client.SolveOpt
	ctxFS, err := fsutil.NewFS(contextDir)
	if err != nil {
		return so, errs.Inputf("context %s: %v", contextDir, err)
	}
	dfFS, err := fsutil.NewFS(filepath.Dir(dockerfile))
	if err != nil {
		return so, errs.Inputf("dockerfile directory %s: %v", filepath.Dir(dockerfile), err)
	}
	so.LocalMounts = map[string]fsutil.FS{"context": ctxFS, "dockerfile": dfFS}

	attrs := map[string]string{"filename": filepath.Base(dockerfile)}
	if opt.Target != "" {
		attrs["target"] = opt.Target
	}
	if len(opt.Platforms) > 0 {
		attrs["platform"] = strings.Join(opt.Platforms, ",")
	}
	if opt.NoCache {
		attrs["no-cache"] = ""
	}
	for k, v := range opt.BuildArgs {
		attrs["build-arg:"+k] = v
	}
	so.FrontendAttrs = attrs
	if err := addFrontendAttrs(&so, opt); err != nil {
		return so, err
	}

	so.Session, err = attachables(opt)
	if err != nil {
		return so, err
	}

	for _, cf := range opt.CacheFrom {
		typ, a, err := cacheImport(cf)
		if err != nil {
			return so, err
		}
		so.CacheImports = append(so.CacheImports, client.CacheOptionsEntry{Type: typ, Attrs: a})
	}
	for _, ct := range opt.CacheTo {
		typ, a, err := cacheExport(ct)
		if err != nil {
			return so, err
		}
		if typ != "" {
			so.CacheExports = append(so.CacheExports, client.CacheOptionsEntry{Type: typ, Attrs: a})
		}
	}

	if so.Exports, err = exports(opt.Outputs); err != nil {
		return so, errs.WithHint(errs.Usagef("--output: %v", err), outputHint)
	}
	// Every exporter takes the epoch for the times it writes, unless the
	// output names its own.
	for _, e := range so.Exports {
		if _, ok := e.Attrs[exporterEpoch]; !ok && opt.SourceDateEpoch != "" {
			e.Attrs[exporterEpoch] = opt.SourceDateEpoch
		}
	}
	if len(opt.Tags) > 0 {
		attrs := imageExportAttrs(opt)
		attrs["name"] = strings.Join(opt.Tags, ",")
		attrs["push"] = fmt.Sprint(opt.Push)
		so.Exports = append(so.Exports, client.ExportEntry{Type: client.ExporterImage, Attrs: attrs})
		// Every image strata exports carries inline cache metadata, so any
		// later build can use it as a cache source.
		so.CacheExports = append(so.CacheExports, client.CacheOptionsEntry{Type: "inline"})
	}
	return so, nil
}

// exporterEpoch is BuildKit's exporter attribute for SOURCE_DATE_EPOCH.
const exporterEpoch = "source-date-epoch"

// imageExportAttrs are the attributes every image export of a build shares;
// layers exported with the same attributes have the same digests. The
// epoch goes to the exporter, which sets the image's times with it and
// leaves every cache key alone.
func imageExportAttrs(opt Options) map[string]string {
	attrs := map[string]string{}
	if opt.SourceDateEpoch != "" {
		attrs[exporterEpoch] = opt.SourceDateEpoch
		if opt.Reproducible {
			attrs["rewrite-timestamp"] = "true"
		}
	}
	attrs["compression"] = cmp.Or(opt.Compression, "estargz")
	if opt.ForceCompression {
		attrs["force-compression"] = "true"
	}
	switch attrs["compression"] {
	case "zstd":
		attrs["oci-mediatypes"] = "true" // zstd layers have only OCI media types
	case "estargz":
		// The stargz snapshotter finds an eStargz layer's table of
		// contents by the annotation BuildKit writes only into OCI
		// manifests.
		attrs["oci-mediatypes"] = "true"
	}
	return attrs
}

// loadDockerConfig reads the docker config from DOCKER_CONFIG, else
// ~/.docker, on every call (the docker CLI's own lookup is fixed at the first
// call in a process), and picks the platform's credential helper when the file
// names none.
func loadDockerConfig() (*configfile.ConfigFile, error) {
	dir := os.Getenv(config.EnvOverrideConfigDir)
	if dir == "" {
		dir = config.Dir()
	}
	cf, err := config.Load(dir)
	if err != nil {
		return nil, errs.WithHint(errs.Inputf("docker config: %v", err), "fix or move the file; strata reads registry credentials from it")
	}
	if !cf.ContainsAuth() {
		cf.CredentialsStore = credentials.DetectDefaultStore(cf.CredentialsStore)
	}
	return cf, nil
}

func attachables(opt Options) ([]session.Attachable, error) {
	dockerConfig, err := loadDockerConfig()
	if err != nil {
		return nil, err
	}
	as := []session.Attachable{authprovider.NewDockerAuthProvider(authprovider.DockerAuthProviderConfig{
		AuthConfigProvider: authprovider.LoadAuthConfig(dockerConfig),
	})}
	if len(opt.Secrets) > 0 {
		sources := make([]secretsprovider.Source, len(opt.Secrets))
		for i, s := range opt.Secrets {
			sources[i] = secretsprovider.Source{ID: s.ID, FilePath: s.Src, Env: s.Env}
		}
		store, err := secretsprovider.NewStore(sources)
		if err != nil {
			return nil, errs.WithHint(errs.Inputf("--secret: %v", err), secretHint)
		}
		as = append(as, secretsprovider.NewSecretProvider(store))
	}
	if len(opt.SSH) > 0 {
		configs := make([]sshprovider.AgentConfig, len(opt.SSH))
		for i, s := range opt.SSH {
			configs[i] = sshprovider.AgentConfig{ID: s.ID, Paths: slices.Clone(s.Paths)}
		}
		sp, err := sshprovider.NewSSHAgentProvider(configs)
		if err != nil {
			return nil, errs.WithHint(errs.Inputf("--ssh: %v", err), "start an ssh-agent (SSH_AUTH_SOCK) or name a key file: --ssh default=~/.ssh/id_ed25519")
		}
		as = append(as, sp)
	}
	return as, nil
}

// How to write --secret and --output, for errors about them.
const (
	secretHint = "use id=ID,src=PATH or id=ID,env=VAR"
	outputHint = "use type=local,dest=DIR or type=image,name=REF[,push=true]"
)

// classify maps a solve error to strata's error kinds.
func classify(ctx context.Context, err error, push bool) error {
	if ctx.Err() != nil || errors.Is(err, context.Canceled) {
		return fmt.Errorf("%w: build cancelled", errs.ErrInterrupted)
	}
	msg := err.Error()
	lower := strings.ToLower(msg)
	if errors.Is(err, errs.ErrRegistry) {
		var h *errs.Hint
		if errors.As(err, &h) {
			return err // it says what to do already
		}
		return errs.WithHint(err, registryHint(lower))
	}
	for _, kind := range []error{errs.ErrUsage, errs.ErrInput, errs.ErrBuilder, errs.ErrInterrupted} {
		if errors.Is(err, kind) {
			return err
		}
	}
	switch {
	case grpcerrors.Code(err) == codes.Unavailable && !strings.Contains(lower, "failed to push"),
		strings.Contains(lower, "connection refused") && strings.Contains(lower, "buildkit"),
		strings.Contains(lower, "error reading from server: eof"),
		strings.Contains(lower, "transport is closing"):
		return errs.WithHint(fmt.Errorf("%w: the builder was lost: %s", errs.ErrBuilder, errs.FirstLine(msg)),
			"check the buildkitd log; 'strata builder status' shows the local one")
	case push && strings.Contains(lower, "failed to push"),
		strings.Contains(lower, "unauthorized"), strings.Contains(lower, "authorization failed"),
		strings.Contains(lower, "insufficient_scope"), strings.Contains(lower, "denied"):
		// BuildKit's own push (and pulls of base images) report registry
		// errors as text.
		return errs.WithHint(fmt.Errorf("%w: %s", errs.ErrRegistry, errs.FirstLine(msg)), registryHint(lower))
	case strings.Contains(lower, "failed to do request"):
		// A registry the builder cannot reach: a base image's (BuildKit
		// resolves every FROM before the first step) or a cache export's.
		return errs.WithHint(fmt.Errorf("%w: %s", errs.ErrRegistry, errs.FirstLine(msg)), registryHint(lower))
	case strings.Contains(lower, "entitlement") && strings.Contains(lower, "not allowed"):
		return errs.WithHint(fmt.Errorf("%w: %s", errs.ErrBuildFailed, errs.FirstLine(msg)),
			"start the builder's buildkitd with --allow-insecure-entitlement network.host (strata's own allows it: 'strata builder stop' restarts an older one with it)")
	case strings.Contains(lower, "failed to calculate checksum") && strings.Contains(lower, "not found"):
		// A COPY/ADD source missing from the context as BuildKit sees it.
		return errs.WithHint(fmt.Errorf("%w: %s", errs.ErrBuildFailed, errs.FirstLine(msg)),
			"COPY and ADD read only the build context: check the path and .dockerignore; '..' and symlinks cannot reach outside the context")
	}
	return fmt.Errorf("%w: %s", errs.ErrBuildFailed, errs.FirstLine(msg))
}

// registryHint picks the advice for a registry error from its words (not
// its numbers: digests in the message could contain any).
func registryHint(lower string) string {
	has := func(words ...string) bool {
		for _, w := range words {
			if strings.Contains(lower, w) {
				return true
			}
		}
		return false
	}
	switch {
	case has("insufficient_scope"):
		// A token the registry gave, without the right to push: the
		// credentials work, their rights do not reach this repository.
		return "the credentials in the docker config may not push to this repository: grant the account push there, or check the image name"
	case has("unauthorized", "authentication required", "authorization failed"):
		return "log in with 'docker login REGISTRY' (strata reads the docker config and its credential helpers)"
	case has("forbidden", "denied"):
		return "the credentials may not push to this repository; check the image name and the account's rights"
	case has("connection refused", "no such host", "i/o timeout", "network is unreachable"):
		return "check the registry address (in --tag, --cache-to or FROM) and that the registry is running and reachable from the builder"
	case has("unavailable", "too many requests", "toomanyrequests", "internal server error", "bad gateway", "gateway timeout", "connection reset"):
		return "the registry kept failing after retries; try again later or check the registry's health"
	default:
		return "check the image name and the registry's state"
	}
}
