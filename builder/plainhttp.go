package builder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	controlapi "github.com/moby/buildkit/api/services/control"
	"github.com/moby/buildkit/client"

	"github.com/strata-build/strata/errs"
	"github.com/strata-build/strata/regnet"
)

// registryHost is a registry as buildkitd.toml names it: a host name or
// address, with a port or not.
var registryHost = regexp.MustCompile(`^([A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?$`)

// CheckPlainHTTP returns a usage error for a registry that is not a host
// or host:port (a scheme, a path, a quote).
func CheckPlainHTTP(hosts []string) error {
	for _, h := range hosts {
		if !registryHost.MatchString(h) {
			return errs.WithHint(errs.Usagef("--insecure-registry %q is not a registry host", h), "give HOST or HOST:PORT, e.g. registry.internal:5000")
		}
	}
	return nil
}

// plainHTTPNeeded are the hosts of l.PlainHTTP that BuildKit would not
// reach over plain HTTP by itself: all but loopback ones.
func (l *Local) plainHTTPNeeded() []string {
	var out []string
	for _, h := range l.PlainHTTP {
		if registryHost.MatchString(h) && !regnet.PlainHTTP(h, nil) && !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	slices.Sort(out)
	return out
}

func (l *Local) plainHTTPFile() string { return filepath.Join(l.Dir, "plain-http") }

// startedPlainHTTP are the registries the running daemon was started to
// reach over plain HTTP.
func (l *Local) startedPlainHTTP() []string {
	dt, err := os.ReadFile(l.plainHTTPFile())
	if err != nil {
		return nil
	}
	return strings.Fields(string(dt))
}

// savePlainHTTP records the registries the daemon was started with.
func (l *Local) savePlainHTTP(hosts []string) error {
	if len(hosts) == 0 {
		if err := os.Remove(l.plainHTTPFile()); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	return os.WriteFile(l.plainHTTPFile(), []byte(strings.Join(hosts, "\n")+"\n"), 0o600)
}

// missingPlainHTTP are the registries the build needs over plain HTTP
// that the running daemon was not started with.
// None when the buildkitd flags name a config file of the caller's.
func (l *Local) missingPlainHTTP() []string {
	if _, ok := flagValue(l.Args, "--config"); ok {
		return nil
	}
	started := l.startedPlainHTTP()
	var out []string
	for _, h := range l.plainHTTPNeeded() {
		if !slices.Contains(started, h) {
			out = append(out, h)
		}
	}
	return out
}

// Option changes how Resolve and Connect reach strata's own daemon.
type Option func(*Local)

// WithPlainHTTP names registries (HOST or HOST:PORT) that BuildKit's own
// pulls and pushes reach over plain HTTP on strata's own daemon (see
// Local.PlainHTTP); other builders keep their own settings.
func WithPlainHTTP(hosts ...string) Option {
	return func(l *Local) { l.PlainHTTP = append(l.PlainHTTP, hosts...) }
}

// config is the buildkitd.toml strata writes for its own daemon: the
// stargz snapshotter's settings when it uses it, and a [registry] table
// for each registry it reaches over plain HTTP. "" when there is nothing
// to set.
func (l *Local) config(snapshotter string) string {
	var b strings.Builder
	if snapshotter == SnapshotterStargz {
		b.WriteString(stargzConfig)
	}
	for _, h := range l.plainHTTPNeeded() {
		fmt.Fprintf(&b, "[registry.%q]\n  http = true\n  insecure = true\n", h)
	}
	return b.String()
}

// restartForPlainHTTP stops the running daemon so that Start brings it
// back reaching the missing registries over plain HTTP too; a daemon that
// is building is left alone, with an error saying what to do.
func (l *Local) restartForPlainHTTP(ctx context.Context, missing []string) error {
	n, err := l.activeBuilds(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		return errs.WithHint(fmt.Errorf("%w: strata's buildkitd must restart to reach %s over plain HTTP, and %d build(s) are running on it", errs.ErrBuilder, strings.Join(missing, ", "), n),
			"run this build again once they end, or add the registry to the buildkitd.toml of a builder of your own")
	}
	l.PlainHTTP = append(l.PlainHTTP, l.startedPlainHTTP()...)
	return l.Stop(10 * time.Second)
}

// activeBuilds counts the builds running on the daemon.
func (l *Local) activeBuilds(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, ProbeTimeout)
	defer cancel()
	c, err := client.New(ctx, l.Addr())
	if err != nil {
		return 0, fmt.Errorf("%w: %v", errs.ErrBuilder, err)
	}
	defer c.Close()
	stream, err := c.ControlClient().ListenBuildHistory(ctx, &controlapi.BuildHistoryRequest{ActiveOnly: true, EarlyExit: true})
	if err != nil {
		return 0, fmt.Errorf("%w: asking buildkitd for its running builds: %v", errs.ErrBuilder, err)
	}
	n := 0
	for {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return 0, fmt.Errorf("%w: asking buildkitd for its running builds: %v", errs.ErrBuilder, err)
		}
		if ev.Type == controlapi.BuildHistoryEventType_STARTED {
			n++
		}
	}
}

// PlainHTTPHint says, for a builder strata does not start, that BuildKit's
// own pulls and pushes reach the registries of hosts over HTTPS unless the
// builder's buildkitd.toml says otherwise; empty for strata's own builder
// and for loopback registries, which BuildKit reaches over plain HTTP.
func (e *Endpoint) PlainHTTPHint(hosts []string) string {
	if e.Local {
		return ""
	}
	need := (&Local{PlainHTTP: hosts}).plainHTTPNeeded()
	if len(need) == 0 {
		return ""
	}
	return fmt.Sprintf("--insecure-registry reaches strata's own requests; %s pulls and pushes %s over HTTPS unless its buildkitd.toml has [registry.%q] http = true (docker buildx create --config FILE)",
		e.Source, strings.Join(need, ", "), need[0])
}
