package builder

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	toml "github.com/pelletier/go-toml/v2"

	"github.com/strata-build/strata/errs"
)

func TestCheckPlainHTTP(t *testing.T) {
	for _, h := range []string{"registry.internal:5000", "registry", "10.0.0.5", "[fd00::5]:5000", "0.0.0.0:5000"} {
		if err := CheckPlainHTTP([]string{h}); err != nil {
			t.Errorf("%s: %v", h, err)
		}
	}
	for _, h := range []string{"http://registry:5000", "registry:5000/team", `reg"istry`, "", "-registry", "registry:port"} {
		if err := CheckPlainHTTP([]string{h}); !errors.Is(err, errs.ErrUsage) {
			t.Errorf("%q: %v, want a usage error", h, err)
		}
	}
}

// The configuration strata writes for its own buildkitd: a [registry]
// table for each registry BuildKit would not reach over plain HTTP by
// itself, beside the stargz settings, and valid TOML.
func TestPlainHTTPConfig(t *testing.T) {
	l := &Local{Dir: t.TempDir(), PlainHTTP: []string{"registry.internal:5000", "127.0.0.1:5000", "localhost:5000", "[::1]:5000", "registry.internal:5000", "10.0.0.5"}}
	if got, want := l.plainHTTPNeeded(), []string{"10.0.0.5", "registry.internal:5000"}; !slices.Equal(got, want) {
		t.Fatalf("needed %v, want %v (loopback left out, once each)", got, want)
	}
	cfg := l.config(SnapshotterStargz)
	var parsed struct {
		Registry map[string]struct {
			HTTP     bool `toml:"http"`
			Insecure bool `toml:"insecure"`
		} `toml:"registry"`
		Worker struct {
			OCI struct {
				Stargz struct {
					NoBackgroundFetch bool `toml:"no_background_fetch"`
				} `toml:"stargzSnapshotter"`
			} `toml:"oci"`
		}
	}
	if err := toml.Unmarshal([]byte(cfg), &parsed); err != nil {
		t.Fatalf("%v\n%s", err, cfg)
	}
	if len(parsed.Registry) != 2 || !parsed.Registry["registry.internal:5000"].HTTP || !parsed.Registry["10.0.0.5"].Insecure || !parsed.Worker.OCI.Stargz.NoBackgroundFetch {
		t.Errorf("config %+v from\n%s", parsed, cfg)
	}
	if got := (&Local{}).config("overlayfs"); got != "" {
		t.Errorf("overlayfs and no registries: config %q, want none", got)
	}

	// The daemon records what it was started with; a build that needs
	// another registry finds it missing, one that needs fewer does not.
	if err := l.savePlainHTTP(l.plainHTTPNeeded()); err != nil {
		t.Fatal(err)
	}
	if m := l.missingPlainHTTP(); len(m) != 0 {
		t.Errorf("missing %v right after the start", m)
	}
	more := &Local{Dir: l.Dir, PlainHTTP: []string{"10.0.0.5", "other:5000"}}
	if m := more.missingPlainHTTP(); !slices.Equal(m, []string{"other:5000"}) {
		t.Errorf("missing %v, want [other:5000]", m)
	}
	// A config file of the caller's: strata adds nothing, restarts nothing.
	more.Args = []string{"--config", "/etc/buildkit/buildkitd.toml"}
	if m := more.missingPlainHTTP(); len(m) != 0 {
		t.Errorf("missing %v with the caller's --config", m)
	}
	if err := l.savePlainHTTP(nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(l.Dir, "plain-http")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("record of no registries: %v, want none", err)
	}
}

func TestPlainHTTPHint(t *testing.T) {
	e := &Endpoint{Source: "--builder=tcp://buildkit:1234"}
	if h := e.PlainHTTPHint([]string{"127.0.0.1:5000"}); h != "" {
		t.Errorf("loopback registry: %q", h)
	}
	if h := e.PlainHTTPHint([]string{"registry.internal:5000"}); !strings.Contains(h, `[registry."registry.internal:5000"] http = true`) {
		t.Errorf("hint %q", h)
	}
	if h := (&Endpoint{Local: true}).PlainHTTPHint([]string{"registry.internal:5000"}); h != "" {
		t.Errorf("strata's own builder: %q", h)
	}
}
