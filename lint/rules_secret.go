package lint

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/strata-build/strata/buildcontext"
)

// RuleSecretInContext: rule 9.
var RuleSecretInContext = Rule[func(list string, named bool) string]{
	RuleInfo: RuleInfo{
		Name:        "SecretInContext",
		Severity:    SeverityError,
		Description: "A private key, a credential, or a secret-looking file that git does not track reaches the image through a COPY",
		URL:         docURL("SecretInContext"),
		Explain: "A file copied into a layer stays in the image even if a later step deletes it. Exclude it in .dockerignore " +
			"and pass secrets with RUN --mount=type=secret. `strata build` fails on this finding before it builds anything, " +
			"so the rule reads the files, not only their names: a private key (`-----BEGIN ... PRIVATE KEY-----`), a " +
			"credential (an auth token in .npmrc, a password in .netrc, an AWS secret key, a `*_PASSWORD=`, `*_TOKEN=` or " +
			"`*_SECRET=` with a value in an env file, not a path to a key nor a `*_FILE=` setting) is reported wherever it " +
			"comes from; a public key (`*.pub`, " +
			"`-----BEGIN PUBLIC KEY-----`, `-----BEGIN PGP PUBLIC KEY BLOCK-----`, a certificate) never is; an env file " +
			"or key store without such content is reported only when git does not track it (it exists only where the " +
			"image is built), since a file committed to the repository is already public to whoever reads it; a committed " +
			"credential in a test fixture (under test/, testdata/, e2e/, fixtures/, cypress/, playwright/, or named test.env) " +
			"is a throwaway test service's and is not reported either, nor is a committed template (.env.example, " +
			"*.sample, *.dist) or a committed file that a build stage takes in and does not hand on (a turbo prune " +
			"stage whose later stages copy only its out/ folder). Without a " +
			"build context only the names are known, and the finding is a warning.",
		Bad:  "FROM alpine\nCOPY . /app\n# with an untracked .env, or deploy/id_rsa, in the context\n",
		Good: "# .dockerignore: .env\nFROM alpine\nCOPY . /app\nRUN --mount=type=secret,id=deploy_key ./deploy.sh\n",
	},
	// named: the COPY names the files itself, which an ignore file
	// would only make fail.
	Format: func(list string, named bool) string {
		if named {
			return fmt.Sprintf("this COPY puts %s into the image; do not copy it: mount it where a step needs it (RUN --mount=type=secret), or give it to the container at run time", list)
		}
		return fmt.Sprintf("this COPY puts %s into the image; exclude them in .dockerignore and use RUN --mount=type=secret", list)
	},
}

// secretKind says what a file name suggests.
type secretKind int

const (
	notSecretName secretKind = iota
	keyName                  // key material: secret only with a private key in it
	storeName                // a binary key store
	envName                  // an env file
	credName                 // a credential file
	rcName                   // a package-manager rc file that may hold a token
)

// secretExact, secretSuffix and notSecret sort file names by what they
// suggest; they are tested with string operations, as every copied file
// of every context goes through them.
var secretExact = map[string]secretKind{
	".env": envName, "id_rsa": keyName, "id_dsa": keyName, "id_ecdsa": keyName, "id_ed25519": keyName,
	".netrc": credName, ".git-credentials": credName, ".pypirc": credName, "credentials": credName,
	"credentials.json": credName, ".htpasswd": credName, ".npmrc": rcName, ".yarnrc.yml": rcName, ".yarnrc": rcName,
}

var secretSuffix = []struct {
	suffix string
	kind   secretKind
}{
	{".env", envName}, {".pem", keyName}, {".key", keyName}, {".asc", keyName}, {".gpg", keyName},
	{".p12", storeName}, {".pfx", storeName}, {".jks", storeName}, {".keystore", storeName},
}

var notSecretExact = map[string]bool{".env.example": true, ".env.sample": true, ".env.template": true, ".env.dist": true,
	".env.defaults": true, ".env.test": true, ".env.ci": true}

var notSecretSuffix = []string{".pub", ".crt", ".cer", ".env.example", ".env.sample", ".env.template"}

func secretName(rel string) secretKind {
	base := path.Base(rel)
	if notSecretExact[base] {
		return notSecretName
	}
	for _, suf := range notSecretSuffix {
		if strings.HasSuffix(base, suf) {
			return notSecretName
		}
	}
	if strings.HasSuffix(rel, ".aws/credentials") || strings.HasSuffix(rel, ".docker/config.json") {
		return credName
	}
	if k, ok := secretExact[base]; ok {
		return k
	}
	if strings.HasPrefix(base, ".env.") {
		return envName
	}
	for _, s := range secretSuffix {
		if strings.HasSuffix(base, s.suffix) && len(base) > len(s.suffix) {
			return s.kind
		}
	}
	return notSecretName
}

var (
	privateKey   = regexp.MustCompile(`-----BEGIN ((RSA|DSA|EC|OPENSSH|ENCRYPTED|PGP) )?PRIVATE KEY( BLOCK)?-----`)
	publicKey    = regexp.MustCompile(`-----BEGIN ((RSA |PGP )?PUBLIC KEY( BLOCK)?|CERTIFICATE)-----|^(ssh|ecdsa-sha2)-[a-z0-9-]+ AAAA`)
	tokenPattern = regexp.MustCompile(`AKIA[0-9A-Z]{16}|ghp_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{40,}|xox[bpas]-[A-Za-z0-9-]{10,}|sk_live_[A-Za-z0-9]{16,}|glpat-[A-Za-z0-9_-]{20}`)
	// credentialLine is an assignment of a value to a name that says it is a secret.
	// (the value's spaces are [ \t]: an empty KEY= does not take the next line)
	credentialLine = regexp.MustCompile(`(?im)^[ \t]*(?:export[ \t]+)?([A-Za-z0-9_.]*(?:SECRET|PASSWORD|PASSWD|TOKEN|PRIVATE_KEY|API_KEY|APIKEY|ACCESS_KEY|AUTH_KEY|CLIENT_KEY)[A-Za-z0-9_.]*)[ \t]*[=:][ \t]*(.*)$`)
	rcToken        = regexp.MustCompile(`(?m)(_authToken|_auth|_password|npmAuthToken)\s*[=:]\s*["']?([^\s"'$][^\s"']*)`)
	credFile       = regexp.MustCompile(`(?im)aws_secret_access_key\s*=\s*\S|^\s*machine\s+\S+.*\bpassword\s+\S|password\s+\S|https?://[^:/\s]+:[^@\s]+@|"auths?"\s*:\s*\{?\s*"[^"]*"?\s*:?\s*\{?\s*"auth"\s*:\s*"[^"]+"|"private_key"\s*:\s*"|:\$(apr1|2[aby]|5|6)\$|^[^:\s]+:\{SHA\}`)
)

// publicNames are prefixes of variables that build tools put into the
// client bundle: they are public by design.
var publicNames = []string{"VITE_", "NEXT_PUBLIC_", "REACT_APP_", "PUBLIC_", "NUXT_PUBLIC_", "EXPO_PUBLIC_", "GATSBY_", "VUE_APP_"}

// credentialValue reports whether an assigned value is a real secret, not
// empty, a reference to another variable or a placeholder.
func credentialValue(name, v string) bool {
	for _, p := range publicNames {
		if strings.HasPrefix(strings.ToUpper(name), p) {
			return false
		}
	}
	if i := strings.Index(v, " #"); i >= 0 {
		v = v[:i]
	}
	v = strings.Trim(strings.TrimSpace(v), `"'`)
	l := strings.ToLower(v)
	if len(v) < 4 || strings.HasPrefix(v, "$") || strings.HasPrefix(v, "<") || strings.HasPrefix(v, "{{") || strings.HasPrefix(v, "%") {
		return false
	}
	// A path names where the secret is (CLIENT_KEY=/etc/tls/client.key,
	// the *_FILE convention), it is not the secret.
	if strings.HasPrefix(v, "/") || strings.HasPrefix(v, "./") || strings.HasPrefix(v, "~/") || strings.HasSuffix(strings.ToUpper(name), "_FILE") {
		return false
	}
	for _, ph := range []string{"changeme", "change_me", "change-me", "your", "xxx", "placeholder", "example", "secret", "password", "replace", "todo", "dummy", "insecure", "null", "none", "false", "true"} {
		if strings.Contains(l, ph) {
			return false
		}
	}
	switch l {
	case "test", "admin", "root", "pass", "dev", "local", "user", "guest":
		return false
	}
	return true
}

// urlPassword finds the password of user:password@host URLs.
var urlPassword = regexp.MustCompile(`[a-z][a-z0-9+.-]*://[^:/@\s"']+:([^@\s"'/]+)@`)

// secretContent reports what a file's content shows: a secret (yes), no
// secret that its kind could hold (no), or nothing either way (unknown).
func secretContent(kind secretKind, head []byte) (secret, public bool) {
	if privateKey.Match(head) || tokenPattern.Match(head) {
		return true, false
	}
	switch kind {
	case keyName:
		return false, publicKey.Match(head) || bytes.Contains(head, []byte("PUBLIC KEY"))
	case envName:
		for _, m := range credentialLine.FindAllSubmatch(head, -1) {
			if credentialValue(string(m[1]), string(m[2])) {
				return true, false
			}
		}
		for _, m := range urlPassword.FindAllSubmatch(head, -1) {
			if credentialValue("", string(m[1])) {
				return true, false
			}
		}
	case rcName:
		return rcToken.Match(head), !rcToken.Match(head)
	case credName:
		return credFile.Match(head), false
	}
	return false, false
}

// secretFile says whether a copied file holds a secret, and why: by
// content when the file can be read, else by name and by whether git
// tracks it (a committed file is public to whoever reads the repository).
func (p *pass) secretFile(e buildcontext.Entry) (string, bool) {
	kind := secretName(e.Path)
	if kind == notSecretName {
		return "", false
	}
	if head, ok := p.head(e); ok {
		secret, public := secretContent(kind, head)
		switch {
		case secret && testFixture(e.Path) && p.tracked(e.Path):
			// The committed credentials of test fixtures (a test.env,
			// testdata/server.key) are those of throwaway test services,
			// public by design. A credential committed anywhere else is
			// reported: the image reaches people the repository may not.
			return "", false
		case secret:
			return e.Path, true
		case public:
			return "", false
		}
		if kind == credName || kind == rcName {
			return "", false
		}
	} else if p.ctx != nil && (kind == rcName || kind == credName) {
		return "", false
	}
	if repo := p.gitRepo(); repo != nil {
		if tracked, ok := repo.Tracked(filepath.Join(p.ctx.Dir(), filepath.FromSlash(e.Path))); ok {
			if tracked {
				return "", false
			}
			return e.Path + " (not tracked by git)", true
		}
	}
	if kind == rcName {
		return "", false
	}
	return e.Path, true
}

// tracked reports whether git tracks the context file rel.
func (p *pass) tracked(rel string) bool {
	repo := p.gitRepo()
	if repo == nil || p.ctx == nil {
		return false
	}
	tracked, ok := repo.Tracked(filepath.Join(p.ctx.Dir(), filepath.FromSlash(rel)))
	return ok && tracked
}

// testDirs are folders that hold test fixtures: their committed
// credentials are those of throwaway test services.
var testDirs = map[string]bool{"test": true, "tests": true, "testdata": true, "e2e": true, "playwright": true, "cypress": true,
	"fixtures": true, "__tests__": true, "spec": true, "integration-tests": true}

// testFixture reports whether rel lies in a test folder, or is named as a
// test env file (test.env, .env.e2e).
func testFixture(rel string) bool {
	for _, seg := range strings.Split(path.Dir(rel), "/") {
		if testDirs[strings.ToLower(seg)] {
			return true
		}
	}
	base := strings.ToLower(path.Base(rel))
	return strings.HasPrefix(base, "test.") || strings.HasPrefix(base, "e2e.") || strings.HasSuffix(base, ".test.env") ||
		strings.HasSuffix(base, ".e2e") || strings.HasSuffix(base, ".testing")
}

// head returns the first 64 KiB of a context file.
func (p *pass) head(e buildcontext.Entry) ([]byte, bool) {
	if p.ctx == nil || !e.Mode.IsRegular() {
		return nil, false
	}
	f, err := os.Open(filepath.Join(p.ctx.Dir(), filepath.FromSlash(e.Path)))
	if err != nil {
		return nil, false
	}
	defer f.Close()
	head, err := io.ReadAll(io.LimitReader(f, 64<<10))
	return head, err == nil
}

func (p *pass) checkSecrets(s *Step, cs *copySet) {
	var hits []string
	named := true // every file reported is a source the COPY names
	for _, e := range cs.entries {
		hit, ok := p.secretFile(e)
		if ok && p.tracked(e.Path) && (templateName(e.Path) || p.staysInBuildStage(s, cs, e)) {
			// A committed template (.env.example), or a committed file
			// that a build stage uses and does not hand on: nothing the
			// repository does not already show reaches the image.
			continue
		}
		if ok {
			hits = append(hits, hit)
			named = named && slices.Contains(cs.sources, e.Path)
		}
	}
	if len(hits) == 0 {
		return
	}
	p.report(RuleSecretInContext.Info(), s, RuleSecretInContext.Format(list(hits), named), nil)
	if p.ctx == nil {
		// Only the names are known: neither the content nor whether git
		// tracks the file can be checked, so this cannot fail a build.
		f := &p.findings[len(p.findings)-1]
		f.Severity = SeverityWarning
		f.Message += " (only the name was checked: lint with the build context to read the file)"
	}
}

// templateName reports a file named as a template to copy and fill in
// (.env.example, settings.sample.env, config.env.dist): a committed one
// holds placeholders or the defaults of a local setup.
func templateName(rel string) bool {
	base := strings.ToLower(path.Base(rel))
	for _, w := range []string{"example", "sample", "template", "tmpl", "dist", "default", "defaults"} {
		if strings.HasSuffix(base, "."+w) || strings.HasPrefix(base, w+".") || strings.Contains(base, "."+w+".") || strings.Contains(base, "-"+w+".") {
			return true
		}
	}
	return false
}

// staysInBuildStage reports whether the context file e, copied by s into
// a stage whose files do not reach the image, stays there: no stage is
// built on that stage, and no COPY --from of it takes the path the file
// lands at (a turbo prune stage hands on only its out/ folder). When the
// path is not known (a glob, a relative destination with no WORKDIR), it
// does not.
func (p *pass) staysInBuildStage(s *Step, cs *copySet, e buildcontext.Entry) bool {
	st := s.Stage
	if p.reachesImage(st) {
		return false
	}
	at, ok := p.landsAt(s, cs, e)
	if !ok {
		return false
	}
	for _, other := range p.df.Stages {
		if other.Parent == st {
			return false
		}
		for _, t := range other.Steps {
			if t.From == "" || !(strings.EqualFold(t.From, st.Name) && st.Name != "" || t.From == fmt.Sprint(st.Index)) {
				continue
			}
			for _, src := range t.Sources {
				if strings.ContainsAny(src, "*?[$") {
					return false
				}
				src = path.Clean("/" + src)
				if src == "/" || at == src || strings.HasPrefix(at, src+"/") {
					return false
				}
			}
		}
	}
	return true
}

// landsAt is the absolute path at which COPY s puts the context file e.
func (p *pass) landsAt(s *Step, cs *copySet, e buildcontext.Entry) (string, bool) {
	dest := s.Dest
	if strings.ContainsAny(dest, "$") {
		return "", false
	}
	if !path.IsAbs(dest) {
		wd, ok := p.workdirAt(s)
		if !ok {
			return "", false
		}
		dest = path.Join(wd, dest)
	}
	dirDest := strings.HasSuffix(s.Dest, "/") || s.Dest == "." || len(cs.sources) > 1
	for _, src := range cs.sources {
		switch {
		case strings.ContainsAny(src, "*?["):
			return "", false
		case src == "." || src == "":
			return path.Join(dest, e.Path), true
		case e.Path == src && dirDest:
			return path.Join(dest, path.Base(src)), true
		case e.Path == src:
			return dest, true
		case strings.HasPrefix(e.Path, src+"/"):
			return path.Join(dest, strings.TrimPrefix(e.Path, src+"/")), true
		}
	}
	return "", false
}

// workdirAt is the working directory at step s, from the WORKDIRs of its
// stage and of the stages it is built on; false when none sets it (the
// base image's is not known).
func (p *pass) workdirAt(s *Step) (string, bool) {
	var chain []*Stage
	for st := s.Stage; st != nil; st = st.Parent {
		chain = append([]*Stage{st}, chain...)
	}
	wd, set := "/", false
	for _, st := range chain {
		for _, t := range st.Steps {
			if st == s.Stage && t.Index >= s.Index {
				break
			}
			w, ok := t.Cmd.(*instructions.WorkdirCommand)
			if !ok {
				continue
			}
			d, _, err := expand(p.df.lex, w.Path, t.Scope)
			if err != nil || d == "" {
				return "", false
			}
			if path.IsAbs(d) {
				wd = path.Clean(d)
			} else {
				wd = path.Join(wd, d)
			}
			set = true
		}
	}
	return wd, set
}
