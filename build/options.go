// Package build runs a Dockerfile build on BuildKit from the client side: it
// prepares the session (context and Dockerfile mounts, registry credentials,
// secrets, SSH), runs strata's frontend in-process, shows progress and
// returns BuildKit's exporter response with strata's own measurements.
package build

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/strata-build/strata/errs"
)

// Options describe one build, with the meaning docker buildx gives its flags.
type Options struct {
	ContextDir string            // the build context directory
	Dockerfile string            // path of the Dockerfile; default <ContextDir>/Dockerfile
	Tags       []string          // image names to export (and push with Push)
	BuildArgs  map[string]string // --build-arg
	Target     string            // --target
	Platforms  []string          // --platform
	Secrets    []string          // --secret id=ID[,src=PATH|,env=VAR]
	SSH        []string          // --ssh default|ID[=SOCKET|KEY,...]
	Outputs    []string          // --output type=TYPE[,k=v...] (buildctl syntax)
	CacheFrom  []string          // --cache-from REF or type=registry,ref=REF
	Push       bool              // push Tags to their registries
	NoCache    bool              // --no-cache
	Progress   string            // auto|plain|tty|quiet|rawjson
}

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
	if !strings.Contains(s, "=") {
		return "registry", map[string]string{"ref": s}, nil
	}
	attrs = map[string]string{}
	typ := ""
	for _, f := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return "", nil, errs.Usagef("--cache-from %q: %q is not KEY=VALUE", s, f)
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
// input is reported before a daemon is started.
func (o *Options) Validate() error {
	_, _, err := o.resolve()
	return err
}
