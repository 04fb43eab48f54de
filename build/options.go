// Package build runs a Dockerfile build on BuildKit from the client side: it
// prepares the session (context and Dockerfile mounts, registry credentials,
// secrets, SSH), runs strata's frontend in-process, shows progress and
// returns BuildKit's exporter response with strata's own measurements.
package build

import (
	"cmp"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/platforms"
	"github.com/moby/buildkit/session/sshforward"

	"github.com/strata-build/strata/buildcontext"
	"github.com/strata-build/strata/cache/plan"
	"github.com/strata-build/strata/dockerfile"
	"github.com/strata-build/strata/errs"
	"github.com/strata-build/strata/frontend"
)

// Options describe one build, with the meaning docker buildx gives its flags.
type Options struct {
	ContextDir string            // the build context directory
	Dockerfile string            // path of the Dockerfile; default <ContextDir>/Dockerfile
	Tags       []string          // image names to export (and push with Push)
	BuildArgs  map[string]string // --build-arg
	Target     string            // --target
	Platforms  []string          // --platform
	Secrets    []Secret          // --secret (ParseSecret)
	SSH        []SSH             // --ssh (ParseSSH)
	Outputs    []Output          // --output (ParseOutput)
	CacheFrom  []string          // --cache-from REF or type=registry,ref=REF
	Labels     map[string]string // --label, in the image's config
	Pull       bool              // --pull: resolve base images in their registries even when the builder has them
	AddHosts   []string          // --add-host, as HOST=IP (ParseAddHost)
	// NoCacheFilter are the stages --no-cache-filter builds without cache.
	NoCacheFilter []string
	Network       string   // --network: "" or default, none, host
	ShmSize       int64    // --shm-size in bytes; 0: BuildKit's default
	Ulimits       []string // --ulimit, TYPE=SOFT[:HARD] (checked by ParseUlimit)
	// BuildContexts are --build-context: named contexts a FROM or
	// COPY --from may use in place of an image or stage.
	BuildContexts []NamedContext
	// CacheTo are cache exports BuildKit writes after the build, as
	// docker buildx build --cache-to: type=registry,ref=REF[,mode=max],
	// type=local,dest=DIR, or any type the builder knows. type=inline is
	// what strata's images always carry.
	CacheTo []string
	Push    bool // push Tags to their registries
	// InsecureRegistries may be reached over plain HTTP by strata's own
	// push (loopback registries always may).
	InsecureRegistries []string
	// NoStream lets BuildKit push after the build instead of streaming
	// layers to the registry while the build runs.
	NoStream bool
	// SourceDateEpoch (seconds) fixes the image's creation and history
	// times where the image is written (BuildKit's exporter attribute
	// source-date-epoch, or strata's own converter in a streamed push); it
	// never reaches the Dockerfile frontend, so cache keys stay those of
	// docker buildx build. Empty means the SOURCE_DATE_EPOCH build arg when
	// the user gave one, else the context's last git commit time, or 0
	// outside git.
	SourceDateEpoch string
	// Reproducible also rewrites the timestamps inside new layers to
	// SourceDateEpoch (those later than it), so the same inputs give the
	// same layer and image digests on any builder. strata build sets it
	// unless told not to. In a streamed push strata rewrites each layer
	// once, as it compresses it; otherwise BuildKit's exporter does.
	Reproducible bool
	NoCache      bool   // --no-cache
	Progress     string // auto|plain|tty|quiet|rawjson
	// Compression of the layers the build creates: "" or "estargz" (gzip
	// that the stargz snapshotter can also pull lazily, file by file; any
	// other puller reads it as gzip), "gzip", "zstd" (faster to compress;
	// pulled by containerd 1.5+ and Docker 23+) or "uncompressed". Layers
	// taken from the base image or a cache keep theirs, but in a streamed
	// push on a builder that pulls lazily, gzip ones up to 32 MB in all are
	// rewritten as eStargz (see stream.Config.RewriteAll).
	Compression string
	// ForceCompression rewrites every layer taken from the base image or
	// a cache in Compression (BuildKit's force-compression=true): in a
	// streamed push, the gzip ones as eStargz on a builder that pulls
	// lazily, whatever their size.
	ForceCompression bool
	// CachedThrough is the Dockerfile line of the target stage's last step
	// the cache plan expects to hit (Choice.CachedThrough); a streamed
	// push solves no prefix for the steps up to it. 0: none.
	CachedThrough int
	// PlannedStage is the target stage as the cache plan read it
	// (Choice.Stage), with its COPY sources digests: a streamed push
	// records them from it instead of reading the Dockerfile and hashing
	// the context again. nil: it reads them itself.
	PlannedStage *plan.Stage
	// BuildContext is the context directory already opened (by the plan of
	// the automatic cache), so its walk and the digests of COPY sources
	// are shared; nil opens ContextDir.
	BuildContext *buildcontext.Context
	// Snapshotter is that of the builder's default worker, when the caller
	// has asked (builder.Connect does); empty: Run asks the builder when
	// it matters (whether the builder pulls lazily).
	Snapshotter string
	// Pending, when set, is the automatic cache choice still being made.
	// Run applies it (Choice.Apply) before the solve, or, where the solve
	// can start without it (see startsBeforeChoice), starts the solve and
	// lets the build take the chosen cache imports when it sends its own
	// solve: reading the Dockerfile and the context and resolving the base
	// images do not wait for the registry reads of the choice.
	Pending *PendingChoice
	// Resolves, when set, shares the base images' resolves of the build's
	// solves with the cache choice planned beside them (see
	// AutoCache.Resolves): the builder resolves each once.
	Resolves *frontend.Resolves
	// parsed is the Dockerfile parsed, once a build (see readDockerfile).
	parsed *dockerfile.File
}

// compressions are the values Options.Compression takes.
var compressions = []string{"estargz", "gzip", "zstd", "uncompressed"}

// Compressions are the values Options.Compression takes, the default first.
func Compressions() []string { return slices.Clone(compressions) }

// resolve fills defaults and checks the paths, returning the absolute context
// and Dockerfile paths.
func (o *Options) resolve() (contextDir, dockerfile string, err error) {
	contextDir = o.ContextDir
	if contextDir == "" {
		contextDir = "."
	}
	if strings.Contains(contextDir, "://") {
		return "", "", errs.WithHint(errs.Inputf("remote context %q is not supported", contextDir), "clone it and pass the local directory")
	}
	contextDir, err = filepath.Abs(contextDir)
	if err != nil {
		return "", "", errs.Inputf("context %s: %v", o.ContextDir, err)
	}
	st, err := os.Stat(contextDir)
	if err != nil {
		return "", "", errs.WithHint(errs.Inputf("context directory %s not found", contextDir), "pass the directory to build as PATH")
	}
	if !st.IsDir() {
		return "", "", errs.WithHint(errs.Inputf("context %s is not a directory", contextDir), "pass a directory as PATH and the file with -f")
	}
	dockerfile = o.Dockerfile
	if dockerfile == "" {
		dockerfile = filepath.Join(contextDir, "Dockerfile")
	}
	dockerfile, err = filepath.Abs(dockerfile)
	if err != nil {
		return "", "", errs.Inputf("dockerfile %s: %v", o.Dockerfile, err)
	}
	st, err = os.Stat(dockerfile)
	if err != nil {
		return "", "", errs.WithHint(errs.Inputf("Dockerfile not found at %s", dockerfile), "pass its path with -f, or run in the directory that has it")
	}
	if st.IsDir() {
		return "", "", errs.WithHint(errs.Inputf("%s is a directory, not a Dockerfile", dockerfile), "pass the file itself with -f")
	}
	if o.Push && len(o.Tags) == 0 {
		return "", "", errs.WithHint(errs.Usagef("--push needs an image name"), "add -t REGISTRY/REPO:TAG")
	}
	switch o.Progress {
	case "", "auto", "plain", "tty", "quiet", "rawjson":
	default:
		return "", "", errs.Usagef("--progress=%s is not one of auto, plain, tty, quiet, rawjson", o.Progress)
	}
	if err := o.check(); err != nil {
		return "", "", err
	}
	return contextDir, dockerfile, nil
}

// ParseKeyValues turns KEY=VALUE items into a map; a bare KEY takes its value
// from the environment, as docker buildx does for --build-arg.
func ParseKeyValues(items []string) map[string]string {
	m := make(map[string]string, len(items))
	for _, kv := range items {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			var set bool
			if v, set = os.LookupEnv(k); !set {
				continue
			}
		}
		m[k] = v
	}
	return m
}

func cacheImport(s string) (ref string, attrs map[string]string, err error) {
	return cacheOption("--cache-from", s)
}

// cacheExport parses a --cache-to value as docker buildx does: a bare REF
// is type=registry,ref=REF. It returns "" for type=inline, which every
// image strata writes carries already.
func cacheExport(s string) (string, map[string]string, error) {
	typ, attrs, err := cacheOption("--cache-to", s)
	if err != nil || typ == "inline" {
		return "", nil, err
	}
	switch {
	case typ == "registry" && attrs["ref"] == "":
		return "", nil, errs.WithHint(errs.Usagef("--cache-to %q: type=registry needs ref=", s), "name the cache image: --cache-to type=registry,ref=REGISTRY/REPO:buildcache,mode=max")
	case typ == "local" && attrs["dest"] == "":
		return "", nil, errs.WithHint(errs.Usagef("--cache-to %q: type=local needs dest=", s), "name a directory: --cache-to type=local,dest=DIR")
	}
	if m, ok := attrs["mode"]; ok && m != "min" && m != "max" {
		return "", nil, errs.WithHint(errs.Usagef("--cache-to %q: mode=%s is neither min nor max", s, m), "use mode=max to export every stage's steps, mode=min (the default) for the image's own")
	}
	return typ, attrs, nil
}

// DefaultCacheExportTag is the tag of the target repository where a push
// with no --cache-to writes BuildKit's registry cache (mode=max) when the
// target copies from other stages; a later build reads it from there.
const DefaultCacheExportTag = "buildcache"

// defaultCacheExport is where a push writes its registry cache when the
// user names no --cache-to: the first tag's repository, tag
// DefaultCacheExportTag, for a target that needs stages outside its FROM
// chain (their steps are in no image's inline cache); "" otherwise.
func (o *Options) defaultCacheExport(df *dockerfile.File) string {
	if !o.Push || len(o.CacheTo) > 0 || len(o.Tags) == 0 || !copiesFromStages(*o, df) {
		return ""
	}
	repos := targetRepos(o.Tags[:1])
	if len(repos) == 0 {
		return ""
	}
	return repos[0].Tag(DefaultCacheExportTag).String()
}

// cacheOption parses a cache import or export in docker buildx's syntax:
// REF, or comma-separated KEY=VALUE fields with type= (registry when
// missing).
func cacheOption(flag, s string) (typ string, attrs map[string]string, err error) {
	if !strings.Contains(s, "=") {
		return "registry", map[string]string{"ref": s}, nil
	}
	attrs = map[string]string{}
	for _, f := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return "", nil, errs.Usagef("%s %q: %q is not KEY=VALUE", flag, s, f)
		}
		if k == "type" {
			typ = v
			continue
		}
		attrs[k] = v
	}
	if typ == "" {
		typ = "registry"
	}
	return typ, attrs, nil
}

// Validate checks the options without contacting a builder, so that bad
// input is reported before a daemon is started. Run checks them again.
func (o *Options) Validate() error {
	_, dockerfile, err := o.resolve()
	if err != nil || o.Target == "" {
		return err
	}
	// A Dockerfile that does not parse is left to the build, which
	// reports where.
	if df, err := o.readDockerfile(dockerfile); err == nil {
		return df.CheckTarget(o.Target)
	}
	return nil
}

// check finds what no builder could build: an unknown compression, a
// secret with no id, two SSH agents under one id, an output that cannot
// be written, a cache source that does not parse.
func (o *Options) check() error {
	if o.Compression != "" && !slices.Contains(compressions, o.Compression) {
		return errs.WithHint(errs.Usagef("--compression=%s is not a layer compression strata knows", o.Compression), "use "+strings.Join(compressions, ", "))
	}
	if o.ForceCompression && o.streamed() && cmp.Or(o.Compression, "estargz") != "estargz" {
		return errs.WithHint(errs.Usagef("--force-compression with --compression=%s: a streamed push rewrites reused layers as eStargz only", o.Compression),
			"drop --compression, or add --stream=false to let BuildKit recompress them")
	}
	switch o.Network {
	case "", "default", "none", "host":
	default:
		return errs.WithHint(errs.Usagef("--network=%s is not a network mode of BuildKit", o.Network), "use default, none or host")
	}
	for _, p := range o.Platforms {
		if _, err := platforms.Parse(p); err != nil {
			return platformError(p, err)
		}
	}
	if err := checkEpoch("--source-date-epoch", o.SourceDateEpoch); err != nil {
		return err
	}
	if err := checkEpoch("--build-arg "+epochArg, o.BuildArgs[epochArg]); err != nil {
		return err
	}
	if _, ok := o.BuildArgs[epochArg]; !ok && o.SourceDateEpoch == "" {
		if err := checkEpoch("the environment's "+epochArg, os.Getenv(epochArg)); err != nil {
			return err
		}
	}
	for _, s := range o.Secrets {
		if s.ID == "" {
			return errs.WithHint(errs.Usagef("--secret: secret missing ID"), secretHint)
		}
	}
	ids := map[string]bool{}
	for _, s := range o.SSH {
		id := cmp.Or(s.ID, sshforward.DefaultID)
		if ids[id] {
			return errs.Usagef("--ssh: duplicate agent ID %q", id)
		}
		ids[id] = true
	}
	if _, err := exports(o.Outputs); err != nil {
		return errs.WithHint(errs.Usagef("--output: %v", err), outputHint)
	}
	if err := checkContexts(o.BuildContexts); err != nil {
		return err
	}
	for _, cf := range o.CacheFrom {
		if _, _, err := cacheImport(cf); err != nil {
			return err
		}
	}
	for _, ct := range o.CacheTo {
		if _, _, err := cacheExport(ct); err != nil {
			return err
		}
	}
	return nil
}

// platformError is the usage error of a --platform value that does not
// parse.
func platformError(p string, err error) error {
	return errs.WithHint(errs.Usagef("--platform %s: %v", p, err), "name platforms as OS/ARCH[/VARIANT], e.g. linux/amd64,linux/arm64")
}

// streamed reports whether layers are uploaded by strata while the build
// runs: a push of one image (or of one per platform and an index), with no
// other outputs.
func (o *Options) streamed() bool {
	return o.Push && !o.NoStream && len(o.Outputs) == 0
}

// epochArg is the build arg that BuildKit's Dockerfile frontend reads as
// SOURCE_DATE_EPOCH: it stamps every WORKDIR with it, which changes the
// cache key of the first WORKDIR and of every step after it.
const epochArg = "SOURCE_DATE_EPOCH"

// resolveEpoch sets SourceDateEpoch when it is empty: to the user's
// SOURCE_DATE_EPOCH build arg, else to the SOURCE_DATE_EPOCH environment
// variable (which docker buildx build would turn into the build arg), else
// to the commit time of the context's git checkout, else 0. The build arg
// is passed to the frontend only when the user gave it as one: the
// environment's value is applied where the image is written, and leaves
// every cache key alone.
func (o *Options) resolveEpoch(contextDir string) error {
	epoch, flag := o.SourceDateEpoch, "--source-date-epoch"
	if epoch == "" {
		if v, ok := o.BuildArgs[epochArg]; ok {
			epoch, flag = v, "--build-arg "+epochArg
		} else if v := os.Getenv(epochArg); v != "" {
			epoch, flag = v, "the environment's "+epochArg
		} else {
			epoch = gitCommitTime(contextDir)
		}
	}
	if err := checkEpoch(flag, epoch); err != nil {
		return err
	}
	o.SourceDateEpoch = epoch
	return nil
}

// checkEpoch checks a SOURCE_DATE_EPOCH given with flag: "" (not given) or
// a number of seconds since 1970.
func checkEpoch(flag, epoch string) error {
	if n, err := strconv.ParseInt(epoch, 10, 64); epoch != "" && (err != nil || n < 0) {
		return errs.WithHint(errs.Usagef("%s=%s is not a number of seconds since 1970", flag, epoch), "pass e.g. $(git log -1 --format=%ct)")
	}
	return nil
}

// ResolveEpoch sets SourceDateEpoch as Run would (see resolveEpoch), so
// that the git command the default runs can run beside other work before
// the build; Run then only checks it. An Options whose context does not
// resolve is left to Run to report.
func (o *Options) ResolveEpoch() error {
	contextDir, _, err := o.resolve()
	if err != nil {
		return nil
	}
	return o.resolveEpoch(contextDir)
}

// epoch is SourceDateEpoch as a time, or nil before resolveEpoch.
func (o *Options) epoch() *time.Time { return parseEpoch(o.SourceDateEpoch) }

// parseEpoch is SOURCE_DATE_EPOCH as a time, or nil when it is not set.
func parseEpoch(s string) *time.Time {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return nil
	}
	t := time.Unix(n, 0).UTC()
	return &t
}

// gitCommitTime is the commit time of HEAD of the git checkout holding dir,
// or "0" when dir is not in one (or git is not installed).
func gitCommitTime(dir string) string {
	cmd := exec.Command("git", "-C", dir, "log", "-1", "--format=%ct")
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1")
	out, err := cmd.Output()
	if err != nil {
		return "0"
	}
	if s := strings.TrimSpace(string(out)); s != "" {
		return s
	}
	return "0"
}

// platform is the one platform built, or "" for the builder's own (or when
// several are built).
func (o *Options) platform() string {
	if len(o.Platforms) == 1 {
		return o.Platforms[0]
	}
	return ""
}
