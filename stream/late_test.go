package stream

import (
	"context"
	"errors"
	"testing"

	"github.com/moby/buildkit/client"
)

// Settling a choice made late adds its imports after the solve's own and
// drops the prefixes of the steps it caches, as a choice made before the
// push would have left them.
func TestSettle(t *testing.T) {
	own := client.CacheOptionsEntry{Type: "registry", Attrs: map[string]string{"ref": "r.example/own:cache"}}
	chosen := client.CacheOptionsEntry{Type: "registry", Attrs: map[string]string{"ref": "r.example/app@sha256:1"}}
	prefixes := []Prefix{{Line: 2}, {Line: 4}, {Line: 6}}
	cfg := Config{Prefixes: prefixes, Late: func(context.Context) (Chosen, error) {
		return Chosen{Imports: []client.CacheOptionsEntry{chosen}, CachedThrough: 4}, nil
	}}
	so, got, err := settle(context.Background(), client.SolveOpt{CacheImports: []client.CacheOptionsEntry{own}}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got.Late != nil {
		t.Error("the settled config still waits for the choice")
	}
	if len(so.CacheImports) != 2 || so.CacheImports[0].Attrs["ref"] != "r.example/own:cache" || so.CacheImports[1].Attrs["ref"] != "r.example/app@sha256:1" {
		t.Errorf("cache imports %v", so.CacheImports)
	}
	if len(got.Prefixes) != 1 || got.Prefixes[0].Line != 6 {
		t.Errorf("prefixes %v, want the one after line 4", got.Prefixes)
	}
	if len(prefixes) != 3 || prefixes[1].Line != 4 {
		t.Errorf("the caller's prefixes changed: %v", prefixes)
	}

	failed := errors.New("interrupted")
	cfg.Late = func(context.Context) (Chosen, error) { return Chosen{}, failed }
	if _, _, err := settle(context.Background(), client.SolveOpt{}, cfg); !errors.Is(err, failed) {
		t.Errorf("a choice that failed settled: %v", err)
	}
}
