package build

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/buildkit/client"

	"github.com/strata-build/strata/errs"
)

// The frontend gets the attributes docker buildx build sends: the epoch
// goes to the exporters only, unless the user passes the build arg.
func TestEpochReachesExportersNotTheFrontend(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nWORKDIR /app\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	for _, tc := range []struct {
		name      string
		opt       Options
		wantArg   string // build-arg:SOURCE_DATE_EPOCH the frontend gets; "" for none
		wantEpoch string // source-date-epoch of every export
		env       string // the SOURCE_DATE_EPOCH environment variable
	}{
		{name: "default outside git", opt: Options{Tags: []string{"r/a:1"}, Reproducible: true}, wantEpoch: "0"},
		{name: "flag", opt: Options{Tags: []string{"r/a:1"}, SourceDateEpoch: "1700000000", Outputs: []Output{{Type: "local", Dest: t.TempDir()}}}, wantEpoch: "1700000000"},
		{name: "user build arg", opt: Options{Tags: []string{"r/a:1"}, BuildArgs: map[string]string{"SOURCE_DATE_EPOCH": "42"}}, wantArg: "42", wantEpoch: "42"},
		{name: "flag wins over build arg", opt: Options{Tags: []string{"r/a:1"}, SourceDateEpoch: "7", BuildArgs: map[string]string{"SOURCE_DATE_EPOCH": "42"}}, wantArg: "42", wantEpoch: "7"},
		// As docker buildx build would take it, but where the image is
		// written only: no cache key depends on it.
		{name: "environment", env: "1600000000", opt: Options{Tags: []string{"r/a:1"}}, wantEpoch: "1600000000"},
		{name: "build arg wins over environment", env: "1600000000", opt: Options{Tags: []string{"r/a:1"}, BuildArgs: map[string]string{"SOURCE_DATE_EPOCH": "42"}}, wantArg: "42", wantEpoch: "42"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("SOURCE_DATE_EPOCH", tc.env)
			opt := tc.opt
			opt.ContextDir = dir
			ctxDir, df, err := opt.resolve()
			if err != nil {
				t.Fatal(err)
			}
			if err := opt.resolveEpoch(ctxDir); err != nil {
				t.Fatal(err)
			}
			so, err := solveOptions(opt, ctxDir, df)
			if err != nil {
				t.Fatal(err)
			}
			if got := so.FrontendAttrs["build-arg:SOURCE_DATE_EPOCH"]; got != tc.wantArg {
				t.Errorf("frontend build-arg:SOURCE_DATE_EPOCH = %q, want %q", got, tc.wantArg)
			}
			if len(so.Exports) == 0 {
				t.Fatal("no exports")
			}
			for _, e := range so.Exports {
				if got := e.Attrs["source-date-epoch"]; got != tc.wantEpoch {
					t.Errorf("export %s: source-date-epoch = %q, want %q", e.Type, got, tc.wantEpoch)
				}
			}
			if got := so.Exports[len(so.Exports)-1].Attrs["rewrite-timestamp"]; (got == "true") != opt.Reproducible {
				t.Errorf("image export rewrite-timestamp = %q with Reproducible %v", got, opt.Reproducible)
			}
		})
	}
}

func TestEpochFromGitAndBadEpochs(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"init", "-q"}, {"add", "f"}, {"commit", "-q", "-m", "c"}} {
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@example.com"}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_COMMITTER_DATE=@1712345678 +0000", "GIT_AUTHOR_DATE=@1712345678 +0000")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	t.Setenv("SOURCE_DATE_EPOCH", "")
	var opt Options
	if err := opt.resolveEpoch(dir); err != nil || opt.SourceDateEpoch != "1712345678" {
		t.Errorf("epoch in a checkout = %q, %v; want the commit time", opt.SourceDateEpoch, err)
	}
	// CI checks out shallow clones.
	shallow := filepath.Join(t.TempDir(), "shallow")
	if out, err := exec.Command("git", "clone", "-q", "--depth", "1", "file://"+dir, shallow).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
	opt = Options{}
	if err := opt.resolveEpoch(shallow); err != nil || opt.SourceDateEpoch != "1712345678" {
		t.Errorf("epoch in a shallow clone = %q, %v; want the commit time", opt.SourceDateEpoch, err)
	}
	opt = Options{}
	if err := opt.resolveEpoch(t.TempDir()); err != nil || opt.SourceDateEpoch != "0" {
		t.Errorf("epoch outside git = %q, %v; want 0", opt.SourceDateEpoch, err)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "1600000000")
	opt = Options{}
	if err := opt.resolveEpoch(dir); err != nil || opt.SourceDateEpoch != "1600000000" {
		t.Errorf("epoch in a checkout with SOURCE_DATE_EPOCH set = %q, %v; want the environment's", opt.SourceDateEpoch, err)
	}
	for _, tc := range []struct {
		opt Options
		env string
	}{
		{opt: Options{SourceDateEpoch: "yesterday"}},
		{opt: Options{BuildArgs: map[string]string{"SOURCE_DATE_EPOCH": "-5"}}},
		{opt: Options{}, env: "1.5"},
	} {
		t.Setenv("SOURCE_DATE_EPOCH", tc.env)
		opt := tc.opt
		err := opt.resolveEpoch(dir)
		if !errors.Is(err, errs.ErrUsage) || !strings.Contains(err.Error(), "not a number of seconds") {
			t.Errorf("resolveEpoch(%+v) with SOURCE_DATE_EPOCH=%q = %v, want a usage error", opt, tc.env, err)
		}
	}
}

// --force-compression reaches BuildKit's exporters as force-compression;
// a streamed push, which rewrites reused layers as eStargz only, refuses it
// with another compression.
func TestForceCompression(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	opt := Options{ContextDir: dir, Tags: []string{"r/a:1"}, Push: true, NoStream: true, ForceCompression: true, Compression: "zstd"}
	if err := opt.check(); err != nil {
		t.Fatalf("BuildKit's push: %v", err)
	}
	so := testSolveOptions(t, opt)
	if got := so.Exports[len(so.Exports)-1].Attrs; got["force-compression"] != "true" || got["compression"] != "zstd" {
		t.Errorf("image export attributes %v, want compression=zstd force-compression=true", got)
	}
	opt.NoStream = false
	err := opt.check()
	if errs.Code(err) != errs.Code(errs.Usagef("x")) || !strings.Contains(err.Error(), "--force-compression") {
		t.Errorf("streamed push with zstd: %v, want a usage error naming --force-compression", err)
	}
	opt.Compression = ""
	if err := opt.check(); err != nil {
		t.Errorf("streamed push with eStargz: %v", err)
	}
}

// --cache-to means what it means to docker buildx build; type=inline is
// what every image strata writes carries, once.
func TestCacheTo(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	opt := Options{ContextDir: dir, Tags: []string{"r.example/a:1"}, CacheTo: []string{
		"r.example/a:buildcache",
		"type=registry,ref=r.example/a:cache,mode=max",
		"type=inline",
		"type=local,dest=" + filepath.Join(dir, "cache"),
	}}
	so := testSolveOptions(t, opt)
	var got []string
	for _, e := range so.CacheExports {
		got = append(got, e.Type+" "+e.Attrs["ref"]+e.Attrs["dest"]+" "+e.Attrs["mode"])
	}
	want := []string{"registry r.example/a:buildcache ", "registry r.example/a:cache max", "local " + filepath.Join(dir, "cache") + " ", "inline  "}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("cache exports\n%q\nwant\n%q", got, want)
	}

	for _, bad := range []string{"type=registry,mode=max", "type=local", "type=registry,ref=r.example/a:c,mode=all", "type=registry,ref"} {
		opt := Options{ContextDir: dir, CacheTo: []string{bad}}
		err := opt.check()
		if err == nil || !errors.Is(err, errs.ErrUsage) || !strings.Contains(err.Error(), "--cache-to") {
			t.Errorf("--cache-to %s: %v, want a usage error naming --cache-to", bad, err)
		}
	}
}

// What no builder could build is one usage or input line before a builder
// is reached: an unknown platform, a target stage the Dockerfile lacks, a
// metadata or image ID file that cannot be written.
func TestValidateBeforeBuilding(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch AS base\nFROM base AS Test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opt  Options
		want error // nil: valid
		text string
	}{
		{"platform", Options{Platforms: []string{"linux/amd64", "bogus"}}, errs.ErrUsage, "--platform bogus"},
		{"platforms", Options{Platforms: []string{"linux/amd64", "linux/arm64/v8"}}, nil, ""},
		{"target", Options{Target: "nosuch"}, errs.ErrUsage, `target stage "nosuch" not found`},
		{"target names listed", Options{Target: "nosuch"}, errs.ErrUsage, "base, test"},
		{"target in another case", Options{Target: "TEST"}, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opt := tc.opt
			opt.ContextDir = dir
			err := opt.Validate()
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
				t.Errorf("got %v, want %v saying %q", err, tc.want, tc.text)
			}
		})
	}
	for path, ok := range map[string]bool{"": true, filepath.Join(dir, "m.json"): true, dir: false, filepath.Join(dir, "no", "m.json"): false} {
		if err := CheckOutputFile("--metadata-file", path); (err == nil) != ok || (err != nil && !errors.Is(err, errs.ErrInput)) {
			t.Errorf("CheckOutputFile(%q) = %v", path, err)
		}
	}
}

// testSolveOptions is the solve opt would send: its paths resolved, then
// solveOptions.
func testSolveOptions(t *testing.T, opt Options) client.SolveOpt {
	t.Helper()
	ctxDir, df, err := opt.resolve()
	if err != nil {
		t.Fatal(err)
	}
	so, err := solveOptions(opt, ctxDir, df)
	if err != nil {
		t.Fatal(err)
	}
	return so
}
