package integration

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/strata-build/strata/integration/testenv"
)

const (
	tokenUser     = "ci"
	tokenPassword = "tok-s3cret-sentinel"
	readerUser    = "reader"
	readerPass    = "read-s3cret-sentinel"
)

// tokenBed is a distribution registry with token auth, its token server,
// and a docker config holding the credentials strata and BuildKit use.
type tokenBed struct {
	ts     *testenv.TokenServer
	reg    *testenv.Registry
	base   string // REG/base/busybox:latest, pulled through the token flow
	config string // DOCKER_CONFIG directory
}

func newTokenBed(t *testing.T, user, password string) *tokenBed {
	t.Helper()
	ts, err := testenv.StartTokenServer(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ts.Stop)
	ts.AddUser(tokenUser, tokenPassword, true)
	ts.AddUser(readerUser, readerPass, false)
	reg, err := testenv.StartRegistry(t.Context(), env.BinDir, t.TempDir(), testenv.WithTokenAuth(ts))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Stop)
	b := &tokenBed{ts: ts, reg: reg, base: reg.Host + "/base/busybox:latest", config: t.TempDir()}
	b.pushBase(t)
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	writeFiles(t, b.config, map[string]string{"config.json": fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, reg.Host, auth)})
	t.Setenv("DOCKER_CONFIG", b.config)
	return b
}

// pushBase pushes busybox with one more layer of random bytes: no builder
// holds that layer, so BuildKit must pull it through the token flow.
func (b *tokenBed) pushBase(t *testing.T) {
	t.Helper()
	auth := remote.WithAuth(&authn.Basic{Username: tokenUser, Password: tokenPassword})
	if _, err := testenv.PushBusybox(t.Context(), b.base, auth); err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(b.base, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r, auth)
	if err != nil {
		t.Fatal(err)
	}
	extra, err := random.Layer(4096, types.DockerLayer)
	if err != nil {
		t.Fatal(err)
	}
	if img, err = mutate.AppendLayers(img, extra); err != nil {
		t.Fatal(err)
	}
	if _, err := testenv.PushImage(t.Context(), b.base, img, auth); err != nil {
		t.Fatal(err)
	}
}

// image reads ref back with the pushing user's credentials.
func (b *tokenBed) image(t *testing.T, ref string) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r, remote.WithAuth(&authn.Basic{Username: tokenUser, Password: tokenPassword}))
	if err != nil {
		t.Fatalf("read %s back: %v", ref, err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatal(err)
	}
}

// exists reports whether ref resolves in the registry.
func (b *tokenBed) exists(t *testing.T, ref string) bool {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	_, err = remote.Head(r, remote.WithAuth(&authn.Basic{Username: tokenUser, Password: tokenPassword}))
	return err == nil
}

// secretsIn fails the test when a password or any token the server issued
// appears in what strata wrote.
func (b *tokenBed) secretsIn(t *testing.T, written map[string]string) {
	t.Helper()
	secrets := append([]string{tokenPassword, readerPass, base64.StdEncoding.EncodeToString([]byte(tokenUser + ":" + tokenPassword))}, b.ts.Tokens()...)
	if len(b.ts.Tokens()) == 0 {
		t.Fatal("the token server issued no token")
	}
	for what, text := range written {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("a credential or token appears in %s", what)
			}
		}
	}
}

// A build whose base image, cache sources, push and shared index all live
// in a registry with token auth: BuildKit pulls the base through the
// session, strata uploads, mounts across repositories with a token for
// both scopes and writes the manifest; the crawler and the shared index
// read and write there too. No credential or token is written anywhere.
func TestTokenAuthRegistry(t *testing.T) {
	b := newTokenBed(t, tokenUser, tokenPassword)
	t.Setenv("BUILDKIT_HOST", "")
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": fmt.Sprintf("FROM %s\nRUN echo token > /x\n", b.base)})
	index := b.reg.Host + "/strata/index:main"
	written := map[string]string{}
	build := func(repo string, flags ...string) map[string]json.RawMessage {
		t.Helper()
		meta := filepath.Join(t.TempDir(), "m.json")
		args := append([]string{"build", "--builder", env.Builder.Addr(), "--progress", "plain", "--index", index,
			"-t", b.reg.Host + "/" + repo + ":v1", "--push", "--metadata-file", meta}, flags...)
		code, stdout, stderr := strata(t, append(args, dir)...)
		if code != 0 {
			t.Fatalf("%s: exit %d\n%s", repo, code, tail(stderr, 20))
		}
		dt, _ := os.ReadFile(meta)
		written[repo+": output"], written[repo+": metadata"] = stdout+stderr, string(dt)
		b.image(t, b.reg.Host+"/"+repo+":v1")
		return readMetadata(t, meta)
	}
	build("team/app")
	var st struct {
		Push struct {
			Layers []struct{ Digest, MountedFrom string }
		}
	}
	if err := json.Unmarshal(build("team/branch")["strata"], &st); err != nil {
		t.Fatal(err)
	}
	mounted := 0
	for _, l := range st.Push.Layers {
		if l.MountedFrom == "team/app" {
			mounted++
		}
	}
	if len(st.Push.Layers) == 0 || mounted != len(st.Push.Layers) {
		t.Errorf("team/branch: %d of %d layers mounted from team/app, want all", mounted, len(st.Push.Layers))
	}

	// BuildKit's own push authenticates through the build session.
	build("team/unstreamed", "--stream=false")

	// The crawler reads the registry's catalog through the token flow.
	file := filepath.Join(t.TempDir(), "crawl.idx")
	if code, out, stderr := strata(t, "index", "refresh", "--registry", b.reg.Host, "--index-file", file, "--progress", "plain"); code != 0 {
		t.Fatalf("index refresh: exit %d\n%s%s", code, out, tail(stderr, 20))
	}
	code, out, _ := strata(t, "index", "ls", "--index-file", file)
	for _, repo := range []string{"base/busybox", "team/app", "team/branch", "team/unstreamed"} {
		if code != 0 || !strings.Contains(out, repo) {
			t.Errorf("the crawl did not index %s: exit %d\n%s", repo, code, out)
		}
	}
	written["crawl listing"] = out
	code, out, _ = strata(t, "index", "ls", "--index", index)
	if code != 0 || !strings.Contains(out, "team/app") || !strings.Contains(out, "team/branch") {
		t.Fatalf("shared index: exit %d\n%s", code, out)
	}
	dt, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	written["crawled index"], written["shared index listing"] = string(dt), out
	b.secretsIn(t, written)
}

// failsWith checks a failed command: exit code, one line naming want.
func failsWith(t *testing.T, code int, stderr string, wantCode int, want ...string) {
	t.Helper()
	if code != wantCode || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Errorf("exit %d, stderr %q; want exit %d and one line", code, stderr, wantCode)
	}
	for _, w := range want {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr %q does not say %q", stderr, w)
		}
	}
}

// Each failure of a token-auth registry is one line with the cause and
// what to do, exit 4, and moves no tag and writes no shared index.
func TestTokenAuthErrors(t *testing.T) {
	t.Setenv("BUILDKIT_HOST", "")
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": fmt.Sprintf("FROM %s\nRUN echo refused > /x\n", env.Busybox)})
	push := func(t *testing.T, b *tokenBed, repo string, flags ...string) (int, string) {
		t.Helper()
		ref := b.reg.Host + "/" + repo + ":v1"
		args := append([]string{"build", "--builder", env.Builder.Addr(), "--progress", "quiet", "--index-file", filepath.Join(t.TempDir(), "i.idx"),
			"-t", ref, "--push"}, flags...)
		code, _, stderr := strata(t, append(args, dir)...)
		if b.exists(t, ref) {
			t.Errorf("%s exists after a failed push", ref)
		}
		return code, stderr
	}

	t.Run("token without the push scope", func(t *testing.T) {
		b := newTokenBed(t, readerUser, readerPass)
		code, stderr := push(t, b, "team/ro")
		failsWith(t, code, stderr, 4, "gave a token without the scope repository:team/ro:", "grant the account push on the repository")
		// BuildKit's own push, through the session.
		code, stderr = push(t, b, "team/ro-unstreamed", "--stream=false")
		failsWith(t, code, stderr, 4, "insufficient_scope", "may not push to this repository: grant the account push there")
		index := b.reg.Host + "/strata/index:main"
		code, _, stderr = strata(t, "index", "refresh", "--registry", b.reg.Host, "--repo", "base/busybox", "--index", index, "--progress", "quiet")
		failsWith(t, code, stderr, 4)
		if b.exists(t, index) {
			t.Errorf("the shared index was written without the push scope")
		}
	})
	t.Run("401 after a token refresh", func(t *testing.T) {
		b := newTokenBed(t, tokenUser, tokenPassword)
		b.ts.Forge()
		code, stderr := push(t, b, "team/forged")
		failsWith(t, code, stderr, 4, "refused a fresh token from its own token service (invalid_token)", "check the registry's auth configuration")
	})
	t.Run("token server down", func(t *testing.T) {
		b := newTokenBed(t, tokenUser, tokenPassword)
		b.ts.Stop()
		code, stderr := push(t, b, "team/down")
		failsWith(t, code, stderr, 4, "the token service localhost:", "does not answer", "check that it runs")
	})
	t.Run("no catalog", func(t *testing.T) {
		b := newTokenBed(t, tokenUser, tokenPassword)
		b.ts.DenyCatalog()
		file := filepath.Join(t.TempDir(), "i.idx")
		for _, repo := range [][]string{nil, {"--repo", "base/*"}} {
			args := append([]string{"index", "refresh", "--registry", b.reg.Host, "--index-file", file, "--progress", "quiet"}, repo...)
			code, _, stderr := strata(t, args...)
			failsWith(t, code, stderr, 4, "name repositories with --repo")
		}
		if code, out, stderr := strata(t, "index", "refresh", "--registry", b.reg.Host, "--repo", "base/busybox", "--index-file", file); code != 0 {
			t.Fatalf("--repo base/busybox: exit %d\n%s%s", code, out, stderr)
		}
	})
}
