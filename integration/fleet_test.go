package integration

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/strata-build/strata/integration/testenv"
)

var (
	tlsOnce    sync.Once
	tlsBuilder testenv.MutualTLS
	tlsErr     error
)

// mtlsBuilder is a buildkitd of the test bed that accepts only mutual TLS
// on a loopback port, started once for the tests that need it.
func mtlsBuilder(t *testing.T) *testenv.MutualTLS {
	t.Helper()
	tlsOnce.Do(func() {
		_, tlsErr = env.StartBuildkitd(t.Context(), "bk-mtls", testenv.WithMutualTLS(&tlsBuilder))
	})
	if tlsErr != nil {
		t.Fatal(tlsErr)
	}
	return &tlsBuilder
}

// fleetContext writes a small Dockerfile on the test bed's base image.
func fleetContext(t *testing.T, line string) string {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": fmt.Sprintf("FROM %s\nRUN echo %s > /fleet\n", env.Busybox, line)})
	return dir
}

// tagMissing fails the test when ref exists in the registry: a build that
// failed must move no tag.
func tagMissing(t *testing.T, ref string) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Head(r); err == nil {
		t.Errorf("%s exists after a failed build", ref)
	}
}

func TestBuildOverMutualTLS(t *testing.T) {
	m := mtlsBuilder(t)
	dir := fleetContext(t, "mtls")
	ref := env.Registry.Host + "/fleet/mtls:v1"
	meta := filepath.Join(t.TempDir(), "m.json")
	code, _, stderr := strata(t, "build", "--builder", m.Addr, "--tlscacert", m.CA.CertFile, "--tlscert", m.ClientCert, "--tlskey", m.ClientKey,
		"--progress", "plain", "-t", ref, "--push", "--metadata-file", meta, dir)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, tail(stderr, 20))
	}
	verifyImage(t, ref, metadataString(t, readMetadata(t, meta), "containerimage.digest"))

	// CI passes the builder and its certificates in the environment.
	t.Setenv("BUILDKIT_HOST", m.Addr)
	t.Setenv("BUILDKIT_TLS_DIR", m.Dir)
	ref2 := env.Registry.Host + "/fleet/mtls:env"
	if code, _, stderr := strata(t, "build", "--progress", "plain", "-t", ref2, "--push", dir); code != 0 {
		t.Fatalf("from the environment: exit %d\n%s", code, tail(stderr, 20))
	}
	verifyImage(t, ref2, "")
	code, stdout, _ := strata(t, "builder", "status", "--builder", m.Addr)
	if code != 0 || !regexp.MustCompile(`(?m)^state: +running$`).MatchString(stdout) || !regexp.MustCompile(`(?m)^version: +v0\.33\.1$`).MatchString(stdout) {
		t.Fatalf("builder status: exit %d\n%s", code, stdout)
	}
	// The status names the snapshotter and, unless it is stargz, how to turn lazy pulls on.
	sn := regexp.MustCompile(`(?m)^snapshotter: +(\S+)$`).FindStringSubmatch(stdout)
	switch {
	case sn == nil:
		t.Errorf("builder status names no snapshotter:\n%s", stdout)
	case sn[1] == "stargz" && !strings.Contains(stdout, "lazy pulls:  on"):
		t.Errorf("builder status of a stargz builder does not say lazy pulls are on:\n%s", stdout)
	case sn[1] != "stargz" && !strings.Contains(stdout, "lazy pulls:  off: --builder="+m.Addr+" uses the "+sn[1]+" snapshotter"):
		t.Errorf("builder status does not say how to turn lazy pulls on:\n%s", stdout)
	}
	// Flags replace the environment; the certificate also names localhost.
	if code, stdout, stderr := strata(t, "builder", "status", "--builder", m.Addr, "--tlscacert", m.CA.CertFile,
		"--tlscert", m.ClientCert, "--tlskey", m.ClientKey, "--tlsservername", "localhost"); code != 0 {
		t.Fatalf("--tlsservername localhost: exit %d\n%s%s", code, stdout, stderr)
	}
}

// A TLS-only builder reached without certificates, with the wrong CA or
// with an expired client certificate fails at once with one line naming
// the flag to set (exit 3), and the build moves no tag.
func TestMutualTLSErrors(t *testing.T) {
	m := mtlsBuilder(t)
	t.Setenv("BUILDKIT_HOST", "")
	dir := fleetContext(t, "refused")
	certs := t.TempDir()
	other, err := testenv.NewCA(certs, "other")
	if err != nil {
		t.Fatal(err)
	}
	expCert, expKey, err := m.CA.Issue(certs, "expired", testenv.CertOptions{NotAfter: time.Now().Add(-time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		flags []string
		want  string
	}{
		{"no certificates", nil, "accepts only TLS connections: set --tlscacert, --tlscert and --tlskey"},
		{"no client certificate", []string{"--tlscacert", m.CA.CertFile}, "asks for a client certificate: set --tlscert and --tlskey"},
		{"wrong CA", []string{"--tlscacert", other.CertFile, "--tlscert", m.ClientCert, "--tlskey", m.ClientKey}, "not signed by the CA in --tlscacert"},
		{"expired client certificate", []string{"--tlscacert", m.CA.CertFile, "--tlscert", expCert, "--tlskey", expKey}, "expired on"},
		{"wrong server name", []string{"--tlsdir", m.Dir, "--tlsservername", "buildkitd.example"}, "set --tlsservername"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ref := env.Registry.Host + "/fleet/refused:" + strings.ReplaceAll(tc.name, " ", "-")
			args := append([]string{"build", "--builder", m.Addr}, tc.flags...)
			start := time.Now()
			code, _, stderr := strata(t, append(args, "--progress", "plain", "-t", ref, "--push", dir)...)
			if code != 3 || !strings.Contains(stderr, tc.want) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
				t.Fatalf("exit %d, stderr %q; want exit 3 and one line with %q", code, stderr, tc.want)
			}
			if took := time.Since(start); took > 15*time.Second {
				t.Errorf("took %s to fail", took)
			}
			tagMissing(t, ref)
		})
	}
}

// A docker buildx builder made with the remote driver and the certificates
// as driver options is reached by its name.
func TestBuildxBuilderName(t *testing.T) {
	m := mtlsBuilder(t)
	t.Setenv("BUILDKIT_HOST", "")
	cfg := newBuildx(t, "plain-remote")
	run(t, buildx(t, cfg, "create", "--name", "fleet", "--driver", "remote",
		"--driver-opt", fmt.Sprintf("cacert=%s,cert=%s,key=%s", m.CA.CertFile, m.ClientCert, m.ClientKey), m.Addr))
	t.Setenv("DOCKER_CONFIG", cfg)
	dir := fleetContext(t, "buildx")
	ref := env.Registry.Host + "/fleet/buildx:v1"
	if code, _, stderr := strata(t, "build", "--builder", "fleet", "--progress", "plain", "-t", ref, "--push", dir); code != 0 {
		t.Fatalf("exit %d\n%s", code, tail(stderr, 20))
	}
	verifyImage(t, ref, "")

	t.Setenv("BUILDX_BUILDER", "plain-remote")
	code, _, stderr := strata(t, "build", "--progress", "plain", dir)
	if code != 0 {
		t.Fatalf("BUILDX_BUILDER: exit %d\n%s", code, tail(stderr, 20))
	}
	code, _, stderr = strata(t, "build", "--builder", "nosuch", dir)
	if code != 3 || !strings.Contains(stderr, "buildx knows: fleet, plain-remote") {
		t.Fatalf("unknown builder: exit %d, %q", code, stderr)
	}
}
