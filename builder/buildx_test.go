package builder_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-build/strata/builder"
	"github.com/strata-build/strata/errs"
)

// Records as buildx v0.35.0 writes them ('docker buildx create' then
// $DOCKER_CONFIG/buildx/instances/<name>); the integration tests have the
// real buildx write them.
var buildxStore = map[string]string{
	"fleet": `{"Name":"fleet","Driver":"remote","Nodes":[{"Name":"fleet0","Endpoint":"tcp://bk.example:1234","Platforms":null,` +
		`"DriverOpts":{"cacert":"/certs/ca.pem","cert":"/certs/cert.pem","key":"/certs/key.pem","servername":"bk"},"Flags":null,"Files":null}],"Dynamic":false}`,
	"local": `{"Name":"local","Driver":"docker-container","Nodes":[{"Name":"local0","Endpoint":"default","Platforms":null,"DriverOpts":null,"Flags":null,"Files":null}],"Dynamic":false}`,
	"other": `{"Name":"other","Driver":"docker-container","Nodes":[{"Name":"other0","Endpoint":"ci","Platforms":null,"DriverOpts":null,"Flags":null,"Files":null}],"Dynamic":false}`,
	"kube": `{"Name":"kube","Driver":"kubernetes","Nodes":[{"Name":"kube0","Endpoint":"kubernetes:///kube?deploymentName=kube0","Platforms":null,` +
		`"DriverOpts":{"namespace":"ci"},"Flags":null,"Files":null}],"Dynamic":false}`,
}

func TestLookupBuildx(t *testing.T) {
	cfg := t.TempDir()
	inst := filepath.Join(cfg, "buildx", "instances")
	if err := os.MkdirAll(inst, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, rec := range buildxStore {
		if err := os.WriteFile(filepath.Join(inst, name), []byte(rec), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("BUILDX_CONFIG", "")
	t.Setenv("DOCKER_CONFIG", cfg)

	bx, err := builder.LookupBuildx("Fleet")
	if err != nil {
		t.Fatal(err)
	}
	want := builder.TLS{CACert: "/certs/ca.pem", Cert: "/certs/cert.pem", Key: "/certs/key.pem", ServerName: "bk"}
	if bx.Addr != "tcp://bk.example:1234" || bx.TLS != want || bx.Driver != "remote" {
		t.Errorf("remote builder: %+v", bx)
	}
	for name, addr := range map[string]string{
		"local": "docker-container://buildx_buildkit_local0",
		"other": "docker-container://buildx_buildkit_other0?context=ci",
	} {
		bx, err := builder.LookupBuildx(name)
		if err != nil || bx.Addr != addr {
			t.Errorf("%s: %+v, %v; want %s", name, bx, err, addr)
		}
	}
	for name, want := range map[string]string{
		"kube":    "kube-pod://POD?namespace=ci ('kubectl get pods -n ci -l app=kube0'",
		"missing": "buildx knows: fleet, kube, local, other",
	} {
		_, err := builder.LookupBuildx(name)
		if errs.Code(err) != errs.ExitBuilder || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want exit 3 and %q", name, err, want)
		}
	}
}
