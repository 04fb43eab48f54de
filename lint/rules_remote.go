package lint

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/dfgitutil"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

// RuleUnpinnedRemoteInRun: rule 5.
var RuleUnpinnedRemoteInRun = Rule[func(cmd, why string) string]{
	RuleInfo: RuleInfo{
		Name:        "UnpinnedRemoteInRun",
		Severity:    SeverityWarning,
		Description: "A RUN fetches an unpinned remote (latest, master, HEAD, no version, no checksum), which the cache freezes silently",
		URL:         docURL("UnpinnedRemoteInRun"),
		Explain: "RUN is never invalidated by outside state. A download of 'latest' is cached as whatever it was on the day " +
			"the layer was built, differs between builders with different caches, and changes without notice when the cache " +
			"is lost. Pin a version and verify a checksum. The rule reads curl and wget downloads, git clone, pip installs " +
			"of Git URLs and of archives (a branch's main.zip), go install and go get, and corepack, npx, pnpx, bunx and " +
			"global installs (npm install -g, yarn global add) of @latest, @next or @canary.",
		Bad:  "FROM alpine\nRUN wget -qO- https://example.com/install.sh | sh\n",
		Good: "FROM alpine\nADD --checksum=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef https://example.com/tool-1.2.3.tar.gz /tmp/\n",
	},
	Format: func(cmd, why string) string { return fmt.Sprintf("%s: %s", cmd, why) },
}

// RuleAddUrlWithoutChecksum: rule 6.
var RuleAddUrlWithoutChecksum = Rule[func(src, why string) string]{
	RuleInfo: RuleInfo{
		Name:        "AddUrlWithoutChecksum",
		Severity:    SeverityWarning,
		Description: "ADD of a URL without --checksum, or of a git repository without a pinned commit",
		URL:         docURL("AddUrlWithoutChecksum"),
		Explain: "Without a checksum an ADD of a URL cannot be verified and its content may change between builds; a git " +
			"ADD of a branch follows the branch. Give --checksum=sha256:... for files and a full commit for git sources.",
		Bad:  "FROM alpine\nADD https://example.com/tool.tar.gz /tmp/\n",
		Good: "FROM alpine\nADD --checksum=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef https://example.com/tool.tar.gz /tmp/\n",
	},
	Format: func(src, why string) string { return fmt.Sprintf("ADD %s %s", src, why) },
}

var (
	floatingRef = regexp.MustCompile(`(?i)(^|[/=@#_.-])(latest|master|main|head|nightly|trunk|develop|edge)($|[/._-])`)
	hexRef      = regexp.MustCompile(`^[0-9a-f]{7,64}$`)
	digit       = regexp.MustCompile(`[0-9]`)
	// platformWord is an architecture or OS in a download URL, or a
	// variable that names one: it says which build, not which version.
	platformWord = regexp.MustCompile(`(?i)\$\{?(TARGET|BUILD)(ARCH|OS|PLATFORM|VARIANT)\}?|\$\{?(ARCH|OS|PLATFORM|DPKG_ARCH|UNAME_M)\}?|amd64|arm64|x86_64|x86-64|aarch64|i[36]86|armv[5-8]l?|armhf|s390x|ppc64le|riscv64|x64|x86|win(32|64)|linux64|macos64`)
)

var checksumTools = map[string]bool{"sha256sum": true, "sha512sum": true, "sha1sum": true, "shasum": true, "md5sum": true, "gpg": true, "cosign": true, "minisign": true, "b2sum": true}

func hasChecksum(sc *Script) bool {
	for _, c := range sc.Commands {
		if checksumTools[c.Name()] || c.Name() == "openssl" && c.Sub() == "dgst" {
			return true
		}
	}
	return false
}

// pipIndexFlags are the flags of pip and uv pip whose value is an index or
// a page of links to find packages in.
var pipIndexFlags = map[string]bool{"-i": true, "--index-url": true, "--extra-index-url": true, "--index": true,
	"--default-index": true, "-f": true, "--find-links": true}

// pipIndexFlag reports whether a is one of pipIndexFlags with its value
// (--extra-index-url=URL).
func pipIndexFlag(a string) bool {
	k, _, ok := strings.Cut(a, "=")
	return ok && pipIndexFlags[k]
}

func checkRemotes(p *pass) {
	for _, st := range p.df.Stages {
		for _, s := range st.Steps {
			if add, ok := s.Cmd.(*instructions.AddCommand); ok {
				p.checkAdd(s, add)
			}
			if s.Script != nil {
				p.checkRunRemote(s)
			}
		}
	}
}

func (p *pass) checkAdd(s *Step, add *instructions.AddCommand) {
	for _, src := range s.Sources {
		if !isURL(src) {
			continue
		}
		if g, isGit, err := dfgitutil.ParseGitRef(src); isGit || err == nil && !g.IndistinguishableFromLocal {
			// A git source, read as BuildKit reads it: "#ref:subdir" or
			// "?ref=...&checksum=..." (a commit pins it as --checksum does).
			if err != nil {
				continue // BuildKit refuses the source; the build says why
			}
			if add.Checksum == "" && g.Checksum == "" && !hexRef.MatchString(strings.ToLower(g.Ref)) {
				p.report(RuleAddUrlWithoutChecksum.Info(), s, RuleAddUrlWithoutChecksum.Format(src, "follows a branch or tag: pin a full commit (#<sha>, ?ref=<sha> or ?checksum=<sha>) or give --checksum"), nil)
			}
			continue
		}
		if add.Checksum == "" {
			p.report(RuleAddUrlWithoutChecksum.Info(), s, RuleAddUrlWithoutChecksum.Format(src, "has no --checksum: the download cannot be verified and may change between builds"), nil)
		}
	}
}

func (p *pass) checkRunRemote(s *Step) {
	sc := s.Script
	verified := hasChecksum(sc)
	report := func(c *ShellCommand, why string) {
		p.report(RuleUnpinnedRemoteInRun.Info(), s, RuleUnpinnedRemoteInRun.Format(short(c), why), nil)
	}
	for i, c := range sc.Commands {
		switch n := c.Name(); {
		case n == "curl" || n == "wget":
			u := firstURL(c)
			if u == "" {
				continue
			}
			if isShell(c.PipedTo) {
				report(c, "a remote script piped into "+c.PipedTo+" runs whatever the server returns the day the layer is built; download a pinned version and verify its checksum")
				continue
			}
			if !verified && unpinnedURL(u) {
				report(c, "downloads "+u+" with no version pinned and no checksum verified; the cache keeps whatever it got first")
			}
		case n == "git" && c.Sub() == "clone":
			if !gitPinned(c, append(sc.Commands[i+1:], laterCommands(s)...), s.Scope) {
				report(c, "clones a moving branch; check out a commit (git checkout <sha>) or a tag")
			}
		case isPip(c):
			for i, a := range c.Args {
				if i > 0 && pipIndexFlags[c.Args[i-1]] || pipIndexFlag(a) {
					continue // an index to install from, not something installed
				}
				if strings.HasPrefix(a, "git+") && (!strings.Contains(a[4:], "@") || floatingRef.MatchString(a[strings.LastIndex(a, "@")+1:])) {
					report(c, "installs "+a+" without a pinned commit or tag (@<sha>)")
				} else if l := strings.ToLower(a); (strings.HasPrefix(l, "https://") || strings.HasPrefix(l, "http://")) && !strings.Contains(a, "#sha256=") && unpinnedURL(a) {
					report(c, "installs "+a+", an archive of a moving branch or of no version; pin a release (and its #sha256=)")
				}
			}
		case n == "corepack" && (c.Sub() == "prepare" || c.Sub() == "install"), n == "npx" || n == "pnpx" || n == "bunx",
			(n == "npm" || n == "pnpm" || n == "bun") && c.Has("-g", "--global"), n == "yarn" && c.Sub() == "global":
			for _, a := range c.Positional() {
				if strings.HasSuffix(a, "@latest") || strings.HasSuffix(a, "@next") || strings.HasSuffix(a, "@canary") {
					report(c, "uses "+a+", whatever that is the day the layer is built; pin a version")
				}
			}
		case n == "go" && c.Sub() == "install", n == "go" && c.Sub() == "get":
			for _, a := range c.Args[2:] {
				if strings.HasSuffix(a, "@latest") || strings.HasSuffix(a, "@master") || strings.HasSuffix(a, "@main") || strings.HasSuffix(a, "@HEAD") {
					report(c, "installs "+a+"; pin a version")
				}
			}
		}
	}
}

func short(c *ShellCommand) string {
	s := strings.Join(c.Args, " ")
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}

func isShell(name string) bool {
	switch name {
	case "sh", "bash", "ash", "dash", "zsh", "python", "python3", "perl", "ruby", "node":
		return true
	}
	return false
}

func firstURL(c *ShellCommand) string {
	for _, a := range c.Args[1:] {
		l := strings.ToLower(a)
		if strings.HasPrefix(l, "http://") || strings.HasPrefix(l, "https://") {
			return a
		}
	}
	return ""
}

// unpinnedURL reports a URL that names a floating version or none at all.
func unpinnedURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	p := platformWord.ReplaceAllString(u.Path+"?"+u.RawQuery, "")
	if floatingRef.MatchString(u.Path) {
		return true
	}
	return !digit.MatchString(p) && !strings.Contains(p, "$")
}

// argDefault is the value in scope of a word that is one variable ($X,
// ${X}), "" when it is more, or unset.
func argDefault(word string, scope *Scope) string {
	name := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(word, "$"), "{"), "}")
	if scope == nil || name == "" || strings.ContainsAny(name, "${}:-/") {
		return ""
	}
	v, _ := scope.Get(name)
	return v
}

// laterCommands are the commands of the RUN steps after s in its stage: a
// clone is often checked out at a ref in a RUN of its own, after a WORKDIR
// into it.
func laterCommands(s *Step) []*ShellCommand {
	var out []*ShellCommand
	for _, next := range s.Stage.Steps[s.Index+1:] {
		if next.Script != nil {
			out = append(out, next.Script.Commands...)
		}
	}
	return out
}

func gitPinned(c *ShellCommand, after []*ShellCommand, scope *Scope) bool {
	for i, a := range c.Args {
		if (a == "-b" || a == "--branch") && i+1 < len(c.Args) {
			ref := c.Args[i+1]
			if strings.Contains(ref, "$") {
				// --branch $BRANCH: pinned unless its default is a
				// moving branch (ARG BRANCH=main).
				v := argDefault(ref, scope)
				if v == "" || !floatingRef.MatchString(v) {
					return true
				}
				continue
			}
			if digit.MatchString(ref) && !floatingRef.MatchString(ref) {
				return true
			}
		}
		if strings.HasPrefix(a, "--branch=") && digit.MatchString(a) {
			return true
		}
	}
	for _, n := range after {
		if n.Name() == "git" && n.Has("checkout", "reset", "switch", "fetch") {
			for _, a := range n.Args[1:] {
				if hexRef.MatchString(a) || strings.Contains(a, "$") || digit.MatchString(a) && !strings.HasPrefix(a, "-") {
					return true
				}
			}
		}
	}
	return false
}
