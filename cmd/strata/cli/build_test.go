package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/strata-build/strata/errs"
)

func runMain(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Main(args, strings.NewReader(""), &out, &errOut)
	return code, errOut.String()
}

// Bad input is reported as one line that names the cause and the fix, with a
// documented exit code, before any builder is contacted.
func TestBuildBadInput(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("STRATA_BUILDER_DIR", filepath.Join(t.TempDir(), "never-started"))
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	t.Setenv("BUILDX_CONFIG", "")
	t.Setenv("BUILDX_BUILDER", "")
	tlsDir := t.TempDir()
	cases := []struct {
		name string
		args []string
		env  string
		code int
		want string
	}{
		{"missing context", []string{"build", filepath.Join(dir, "nope")}, "", errs.ExitUsage, "context directory"},
		{"missing Dockerfile", []string{"build", "-f", filepath.Join(dir, "Nope.Dockerfile"), dir}, "", errs.ExitUsage, "Dockerfile not found"},
		{"Dockerfile is a directory", []string{"build", "-f", dir, dir}, "", errs.ExitUsage, "is a directory"},
		{"unknown flag", []string{"build", "--frobnicate", dir}, "", errs.ExitUsage, "unknown flag: --frobnicate"},
		{"push without tag", []string{"build", "--push", dir}, "", errs.ExitUsage, "--push needs an image name"},
		{"epoch not a number", []string{"build", "--source-date-epoch", "yesterday", dir}, "", errs.ExitUsage, "--source-date-epoch=yesterday is not a number of seconds since 1970"},
		{"epoch build arg not a number", []string{"build", "--build-arg", "SOURCE_DATE_EPOCH=-5", dir}, "", errs.ExitUsage, "--build-arg SOURCE_DATE_EPOCH=-5 is not a number"},
		{"bad progress", []string{"build", "--progress", "loud", dir}, "", errs.ExitUsage, "--progress=loud"},
		{"two contexts", []string{"build", dir, dir}, "", errs.ExitUsage, "accepts at most 1 arg"},
		{"secret not key=value", []string{"build", "--secret", "token", dir}, "", errs.ExitUsage, `--secret "token": invalid field 'token' must be a key=value pair: see 'strata build --help'`},
		{"secret of an unknown type", []string{"build", "--secret", "id=a,type=ssh", dir}, "", errs.ExitUsage, `unsupported secret type "ssh"`},
		{"secret without id", []string{"build", "--secret", "src=" + dir, dir}, "", errs.ExitUsage, "--secret: secret missing ID"},
		{"output without type", []string{"build", "--output", "dest=out,tar=false", dir}, "", errs.ExitUsage, `--output "dest=out,tar=false": type is required for output`},
		{"output without dest", []string{"build", "--output", "type=local", dir}, "", errs.ExitUsage, "--output: dest is required for local exporter"},
		{"output to a file", []string{"build", "-o", "type=local,dest=" + filepath.Join(dir, "Dockerfile"), dir}, "", errs.ExitUsage, "is a file"},
		{"two ssh agents under one id", []string{"build", "--ssh", "default", "--ssh", "default=/run/agent.sock", dir}, "", errs.ExitUsage, `duplicate agent ID "default"`},
		{"unreachable BUILDKIT_HOST", []string{"build", dir}, "unix://" + filepath.Join(dir, "no.sock"), errs.ExitBuilder, "BUILDKIT_HOST=unix://"},
		{"unreachable --builder", []string{"build", "--builder", "tcp://127.0.0.1:1", dir}, "", errs.ExitBuilder, "--builder=tcp://127.0.0.1:1 does not answer"},
		{"unknown command", []string{"frobnicate"}, "", errs.ExitUsage, "unknown command"},
		{"empty Dockerfile on stdin", []string{"build", "-f", "-", dir}, "", errs.ExitUsage, "standard input holds no Dockerfile"},
		{"buildx's --load", []string{"build", "--load", dir}, "", errs.ExitUsage, "--output type=docker,dest=image.tar"},
		{"provenance asked for", []string{"build", "--provenance=mode=max", dir}, "", errs.ExitUsage, "strata writes no attestations"},
		{"sbom asked for", []string{"build", "--sbom", "true", dir}, "", errs.ExitUsage, "--sbom=false"},
		{"unknown platform", []string{"build", "--platform", "linux/nope/x/y", dir}, "", errs.ExitUsage, "--platform linux/nope/x/y"},
		{"unknown target", []string{"build", "--target", "test", dir}, "", errs.ExitUsage, `target stage "test" not found`},
		{"metadata file in no directory", []string{"build", "--metadata-file", filepath.Join(dir, "no", "m.json"), dir}, "", errs.ExitUsage, "does not exist"},
		{"iidfile without an image", []string{"build", "--iidfile", filepath.Join(dir, "iid"), dir}, "", errs.ExitUsage, "--iidfile needs an image"},
		{"quiet and plain", []string{"build", "-q", "--progress", "plain", dir}, "", errs.ExitUsage, "--quiet and --progress=plain"},
		{"bad ulimit", []string{"build", "--ulimit", "nofile", dir}, "", errs.ExitUsage, `--ulimit "nofile"`},
		{"bad network", []string{"build", "--network", "bridge", dir}, "", errs.ExitUsage, "--network=bridge"},
		{"bad build context", []string{"build", "--build-context", "x=" + filepath.Join(dir, "nope"), dir}, "", errs.ExitUsage, "--build-context x"},
		{"TLS without a builder", []string{"build", "--tlscacert", filepath.Join(dir, "ca.pem"), dir}, "", errs.ExitUsage, "TLS flags are given but no builder"},
		{"empty --tlsdir", []string{"build", "--builder", "tcp://127.0.0.1:1", "--tlsdir", tlsDir, dir}, "", errs.ExitUsage, "holds neither ca.pem nor ca.crt"},
		{"missing --tlscacert", []string{"builder", "status", "--builder", "tcp://127.0.0.1:1", "--tlscacert", filepath.Join(tlsDir, "ca.pem")}, "", errs.ExitUsage, "--tlscacert: " + filepath.Join(tlsDir, "ca.pem") + ": no such file"},
		{"unknown buildx builder", []string{"build", "--builder", "fleet", dir}, "", errs.ExitBuilder, "nor a buildx builder in"},
		{"unreachable builder in status", []string{"builder", "status", "--builder", "tcp://127.0.0.1:1"}, "", errs.ExitBuilder, "--builder=tcp://127.0.0.1:1 does not answer"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("BUILDKIT_HOST", tc.env)
			code, stderr := runMain(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tc.code, stderr)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr %q does not name %q", stderr, tc.want)
			}
			if n := strings.Count(strings.TrimSpace(stderr), "\n"); n != 0 {
				t.Errorf("want one error line, got %d:\n%s", n+1, stderr)
			}
			if !strings.HasPrefix(stderr, "strata: ") {
				t.Errorf("stderr %q does not start with 'strata: '", stderr)
			}
		})
	}
}

// A SOURCE_DATE_EPOCH in the environment that is not a number is one usage
// line before a builder is reached, as the build arg's is.
func TestBuildEpochFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BUILDKIT_HOST", "unix:///nonexistent/buildkitd.sock")
	t.Setenv("STRATA_BUILDER_DIR", filepath.Join(t.TempDir(), "never-started"))
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	t.Setenv("SOURCE_DATE_EPOCH", "2024-01-01")
	code, stderr := runMain(t, "build", dir)
	if code != errs.ExitUsage || !strings.Contains(stderr, "the environment's SOURCE_DATE_EPOCH=2024-01-01 is not a number of seconds since 1970") {
		t.Errorf("exit %d, stderr %q; want a usage error naming the environment's SOURCE_DATE_EPOCH", code, stderr)
	}
	// A flag or build arg wins, as over docker buildx build's use of it.
	code, stderr = runMain(t, "build", "--source-date-epoch", "5", dir)
	if code == errs.ExitUsage {
		t.Errorf("with --source-date-epoch: exit %d, stderr %q", code, stderr)
	}
}

// Shell completion offers the values --compression and --progress take.
func TestBuildFlagCompletion(t *testing.T) {
	for flag, want := range map[string]string{"--compression": "estargz\ngzip\nzstd\nuncompressed\n", "--progress": "auto\nplain\ntty\nquiet\nrawjson\n"} {
		var out, errOut bytes.Buffer
		Main([]string{"__complete", "build", flag, ""}, strings.NewReader(""), &out, &errOut)
		if got, _, _ := strings.Cut(out.String(), ":"); got != want {
			t.Errorf("completing %s gave %q, want %q", flag, got, want)
		}
	}
}

// `strata version` and `strata --version` print the same line: strata's
// version, and the BuildKit and Go it was built with.
func TestVersion(t *testing.T) {
	var lines []string
	for _, args := range [][]string{{"version"}, {"--version"}} {
		var out, errOut bytes.Buffer
		if code := Main(args, strings.NewReader(""), &out, &errOut); code != 0 {
			t.Fatalf("strata %s: exit %d: %s", args[0], code, errOut.String())
		}
		lines = append(lines, out.String())
	}
	re := regexp.MustCompile(`^strata \S+( [0-9a-f]{12}(-dirty)?)? \(BuildKit (v\d+\.\d+\.\d+\S*|unknown), go\S+ \w+/\w+\)\n$`)
	if !re.MatchString(lines[0]) || lines[1] != lines[0] {
		t.Errorf("version printed %q and %q", lines[0], lines[1])
	}
	var out, errOut bytes.Buffer
	if code := Main([]string{"version", "extra"}, strings.NewReader(""), &out, &errOut); code != errs.ExitUsage {
		t.Errorf("strata version extra: exit %d, want %d", code, errs.ExitUsage)
	}
}
