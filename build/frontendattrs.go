package build

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/distribution/reference"
	units "github.com/docker/go-units"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/frontend/dockerfile/dfgitutil"
	"github.com/moby/buildkit/util/entitlements"
	"github.com/tonistiigi/fsutil"

	"github.com/strata-build/strata/errs"
)

// The flags of docker buildx build that become attributes of BuildKit's
// Dockerfile frontend, set as buildx sets them, so that the solve is the
// one buildx sends.

// NamedContext is one --build-context: Name as the Dockerfile uses it
// (FROM NAME, COPY --from=NAME), Value a local directory, a
// docker-image://REF, or a Git or HTTP(S) URL.
type NamedContext struct{ Name, Value string }

// ParseBuildContext parses a --build-context NAME=VALUE as docker buildx
// does: the name is an image name in its short form ("alpine" for
// docker.io/library/alpine:latest).
func ParseBuildContext(s string) (NamedContext, error) {
	k, v, ok := strings.Cut(s, "=")
	if !ok || v == "" {
		return NamedContext{}, errors.New("want NAME=VALUE (a directory, docker-image://REF or a Git or HTTP URL)")
	}
	named, err := reference.ParseNormalizedNamed(k)
	if err != nil {
		return NamedContext{}, fmt.Errorf("context name %q: %v", k, err)
	}
	if strings.HasPrefix(v, "oci-layout://") {
		return NamedContext{}, errors.New("oci-layout:// contexts are not supported: push the image to a registry and use docker-image://REF")
	}
	if strings.HasPrefix(v, "target:") {
		return NamedContext{}, errors.New("target: contexts are for docker buildx bake")
	}
	return NamedContext{Name: strings.TrimSuffix(reference.FamiliarString(named), ":latest"), Value: v}, nil
}

// remote reports whether the context is read by the builder, not sent
// from this machine.
func (c NamedContext) remote() bool {
	if strings.HasPrefix(c.Value, "docker-image://") || strings.HasPrefix(c.Value, "https://") || strings.HasPrefix(c.Value, "http://") {
		return true
	}
	_, git, _ := dfgitutil.ParseGitRef(c.Value)
	return git
}

// ParseLabels parses --label values as docker buildx does: KEY=VALUE, or
// KEY for an empty value.
func ParseLabels(items []string) map[string]string {
	m := make(map[string]string, len(items))
	for _, kv := range items {
		k, v, _ := strings.Cut(kv, "=")
		if k != "" {
			m[k] = v
		}
	}
	return m
}

// ParseUlimit checks an --ulimit TYPE=SOFT[:HARD] (nofile=1024:2048) as
// docker does, and returns it as BuildKit takes it.
func ParseUlimit(s string) (string, error) {
	u, err := units.ParseUlimit(s)
	if err != nil {
		return "", err
	}
	return u.String(), nil
}

// ParseShmSize parses an --shm-size (64m, 1g, or bytes).
func ParseShmSize(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	n, err := units.RAMInBytes(s)
	if err != nil {
		return 0, err
	}
	if n <= 0 {
		return 0, fmt.Errorf("%s is not a size", s)
	}
	return n, nil
}

// ParseAddHost parses an --add-host HOST:IP (or HOST=IP; IP may be a
// comma-separated list, IPv6 in brackets) into BuildKit's HOST=IP entries.
func ParseAddHost(s string) ([]string, error) {
	host, ips, ok := strings.Cut(s, "=")
	if !ok {
		host, ips, ok = strings.Cut(s, ":")
	}
	if !ok || host == "" || ips == "" {
		return nil, errors.New("want HOST:IP")
	}
	var out []string
	for ip := range strings.SplitSeq(ips, ",") {
		if len(ip) > 2 && ip[0] == '[' && ip[len(ip)-1] == ']' {
			ip = ip[1 : len(ip)-1]
		}
		if net.ParseIP(ip) == nil {
			return nil, fmt.Errorf("%q is not an IP address (host-gateway is Docker's, not BuildKit's)", ip)
		}
		out = append(out, host+"="+ip)
	}
	return out, nil
}

// checkContexts finds the local named contexts that are not directories.
func checkContexts(contexts []NamedContext) error {
	seen := map[string]bool{}
	for _, c := range contexts {
		if seen[c.Name] {
			return errs.Usagef("--build-context: %s given twice", c.Name)
		}
		seen[c.Name] = true
		if c.remote() {
			continue
		}
		st, err := os.Stat(c.Value)
		if err != nil {
			return errs.WithHint(errs.Inputf("--build-context %s: %v", c.Name, err), "name a directory, docker-image://REF or a Git or HTTP URL")
		}
		if !st.IsDir() {
			return errs.WithHint(errs.Inputf("--build-context %s: %s is not a directory", c.Name, c.Value), "name a directory, docker-image://REF or a Git or HTTP URL")
		}
	}
	return nil
}

// addFrontendAttrs sets the attributes and local mounts of --label,
// --pull, --add-host and --build-context on so.
func addFrontendAttrs(so *client.SolveOpt, opt Options) error {
	for k, v := range opt.Labels {
		so.FrontendAttrs["label:"+k] = v
	}
	if opt.Pull {
		so.FrontendAttrs["image-resolve-mode"] = "pull"
	}
	if len(opt.AddHosts) > 0 {
		so.FrontendAttrs["add-hosts"] = strings.Join(opt.AddHosts, ",")
	}
	if len(opt.NoCacheFilter) > 0 && !opt.NoCache {
		so.FrontendAttrs["no-cache"] = strings.Join(opt.NoCacheFilter, ",")
	}
	switch opt.Network {
	case "host":
		so.FrontendAttrs["force-network-mode"] = "host"
		so.AllowedEntitlements = append(so.AllowedEntitlements, entitlements.EntitlementNetworkHost.String())
	case "none":
		so.FrontendAttrs["force-network-mode"] = "none"
	}
	if opt.ShmSize > 0 {
		so.FrontendAttrs["shm-size"] = strconv.FormatInt(opt.ShmSize, 10)
	}
	if len(opt.Ulimits) > 0 {
		so.FrontendAttrs["ulimit"] = strings.Join(opt.Ulimits, ",")
	}
	if len(opt.BuildContexts) > 0 {
		// A frontend a "# syntax=" line names takes the contexts too.
		so.FrontendAttrs["frontend.caps"] = "moby.buildkit.frontend.contexts+forward"
	}
	for _, c := range opt.BuildContexts {
		if c.remote() {
			so.FrontendAttrs["context:"+c.Name] = c.Value
			continue
		}
		local := c.Name
		if local == "context" || local == "dockerfile" {
			local = "_" + local // the names of the build's own mounts
		}
		fs, err := fsutil.NewFS(c.Value)
		if err != nil {
			return errs.Inputf("--build-context %s: %v", c.Name, err)
		}
		so.LocalMounts[local] = fs
		so.FrontendAttrs["context:"+c.Name] = "local:" + local
		abs, err := filepath.Abs(c.Value)
		if err != nil {
			abs = c.Value
		}
		so.FrontendAttrs["sharedkey:localdir:"+c.Name] = filepath.Base(abs)
	}
	return nil
}
