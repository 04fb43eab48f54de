package build

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-build/strata/errs"
)

// --build-context, --label, --add-host and --pull become the frontend
// attributes and local mounts docker buildx v0.35 sends.
func TestBuildxFrontendAttrs(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM base\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	shared := filepath.Join(dir, "shared")
	if err := os.Mkdir(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	var contexts []NamedContext
	for _, v := range []string{"base=docker-image://r.example/base:1", "shared=" + shared, "context=" + shared,
		"docker.io/library/alpine:latest=https://example.com/alpine.tar", "src=https://github.com/moby/buildkit.git#v0.33.1"} {
		c, err := ParseBuildContext(v)
		if err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		contexts = append(contexts, c)
	}
	hosts, err := ParseAddHost("ci-host:10.1.2.3,[::1]")
	if err != nil {
		t.Fatal(err)
	}
	ulimit, err := ParseUlimit("nofile=1024:2048")
	if err != nil {
		t.Fatal(err)
	}
	shm, err := ParseShmSize("64m")
	if err != nil {
		t.Fatal(err)
	}
	opt := Options{ContextDir: dir, BuildContexts: contexts, Labels: ParseLabels([]string{"a=1", "b", "c=x=y"}), AddHosts: hosts, Pull: true,
		NoCacheFilter: []string{"deps", "build"}, Network: "host", ShmSize: shm, Ulimits: []string{ulimit}}
	if err := opt.check(); err != nil {
		t.Fatal(err)
	}
	so := testSolveOptions(t, opt)
	want := map[string]string{
		"context:base":              "docker-image://r.example/base:1",
		"context:shared":            "local:shared",
		"sharedkey:localdir:shared": "shared",
		"context:context":           "local:_context",
		"context:alpine":            "https://example.com/alpine.tar",
		"context:src":               "https://github.com/moby/buildkit.git#v0.33.1",
		"label:a":                   "1",
		"label:b":                   "",
		"label:c":                   "x=y",
		"add-hosts":                 "ci-host=10.1.2.3,ci-host=::1",
		"image-resolve-mode":        "pull",
		"frontend.caps":             "moby.buildkit.frontend.contexts+forward",
		"no-cache":                  "deps,build",
		"force-network-mode":        "host",
		"shm-size":                  "67108864",
		"ulimit":                    "nofile=1024:2048",
	}
	for k, v := range want {
		if got, ok := so.FrontendAttrs[k]; !ok || got != v {
			t.Errorf("attribute %s = %q (set: %v), want %q", k, got, ok, v)
		}
	}
	for _, m := range []string{"context", "dockerfile", "shared", "_context"} {
		if so.LocalMounts[m] == nil {
			t.Errorf("no local mount %s", m)
		}
	}
	if strings.Join(so.AllowedEntitlements, ",") != "network.host" {
		t.Errorf("entitlements %v, want network.host", so.AllowedEntitlements)
	}
	if len(so.LocalMounts) != 4 {
		t.Errorf("local mounts %v, want 4", len(so.LocalMounts))
	}

	opt.NoCache, opt.Network = true, "none"
	so = testSolveOptions(t, opt)
	if v, ok := so.FrontendAttrs["no-cache"]; !ok || v != "" || so.FrontendAttrs["force-network-mode"] != "none" || len(so.AllowedEntitlements) != 0 {
		t.Errorf("--no-cache with a filter: no-cache=%q (%v); --network none: %q, entitlements %v", v, ok, so.FrontendAttrs["force-network-mode"], so.AllowedEntitlements)
	}

	for _, tc := range []struct {
		contexts []string
		want     error
	}{
		{[]string{"shared=" + filepath.Join(dir, "missing")}, errs.ErrInput},
		{[]string{"shared=" + filepath.Join(dir, "Dockerfile")}, errs.ErrInput},
		{[]string{"shared=" + shared, "shared=docker-image://r.example/x"}, errs.ErrUsage},
	} {
		var cs []NamedContext
		for _, v := range tc.contexts {
			c, err := ParseBuildContext(v)
			if err != nil {
				t.Fatal(err)
			}
			cs = append(cs, c)
		}
		opt := Options{ContextDir: dir, BuildContexts: cs}
		if err := opt.check(); !errors.Is(err, tc.want) || !strings.Contains(err.Error(), "--build-context") {
			t.Errorf("%v: %v, want %v naming --build-context", tc.contexts, err, tc.want)
		}
	}
	for _, bad := range []string{"shared", "Shared=.", "x=", "img=oci-layout://./layout", "x=target:base"} {
		if _, err := ParseBuildContext(bad); err == nil {
			t.Errorf("--build-context %s parsed", bad)
		}
	}
	for _, bad := range []string{"nofile", "nofile=x", "nosuch=1:2", "nofile=2:1"} {
		if _, err := ParseUlimit(bad); err == nil {
			t.Errorf("--ulimit %s parsed", bad)
		}
	}
	for _, bad := range []string{"x", "-1", "0"} {
		if _, err := ParseShmSize(bad); err == nil {
			t.Errorf("--shm-size %s parsed", bad)
		}
	}
	if err := (&Options{ContextDir: dir, Network: "bridge"}).check(); !errors.Is(err, errs.ErrUsage) {
		t.Errorf("--network bridge: %v, want a usage error", err)
	}
	for _, bad := range []string{"ci-host", "ci-host:", ":10.0.0.1", "ci-host:host-gateway", "ci-host:not-an-ip"} {
		if _, err := ParseAddHost(bad); err == nil {
			t.Errorf("--add-host %s parsed", bad)
		}
	}
}
