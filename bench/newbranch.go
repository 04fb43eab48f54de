package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/crane"

	"github.com/strata-build/strata/integration/testenv"
)

// The new-branch scenario: a registry of many repositories, where the best
// cache for a build lives on another repository's branch tag.
const (
	branchRepos = 40 // repositories in the registry
	branchTags  = 5  // tags in each
)

// branchVariants are the lockfiles of the images in the registry: the
// first is the one the new build shares (it is pushed once, to one
// repository's feature branch); the build's own repository has an older
// one at :latest; the rest fill the other repositories.
var branchVariants = []string{
	"left-pad 1.3.0\nlodash 4.17.21\nexpress 4.19.2\n", // the new build's
	"left-pad 1.3.0\nlodash 4.17.15\n",                 // its own :latest, before the upgrade
	"react 18.2.0\nreact-dom 18.2.0\n",
	"django 5.0.1\npsycopg 3.1.18\n",
	"serde 1.0.197\ntokio 1.36.0\n",
}

// newBranchScenario: a fresh runner builds a branch whose dependencies
// match an image pushed from another repository's feature branch, while
// its own repository's :latest predates the dependency change. Each
// contender builds and pushes the branch on a fresh builder.
func newBranchScenario(ctx context.Context, b *bed, cfg config, link string, proxy *testenv.Proxy) ([]Result, error) {
	imgs, err := b.branchRegistry(ctx, cfg)
	if err != nil {
		return nil, err
	}
	host := func(ref string) string { return proxy.Host + strings.TrimPrefix(ref, b.env.Registry.Host) }
	index := filepath.Join(b.dir, "branch-"+slug(link)+".idx")
	if _, err := os.Stat(index); err != nil {
		out, err := exec.CommandContext(ctx, filepath.Join(b.env.BinDir, "strata"), "index", "refresh", "--registry", proxy.Host,
			"--repo", "branch/*", "--index-file", index, "--progress", "quiet").CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("indexing the registry: %v\n%s", err, out)
		}
	}
	ctxDir := filepath.Join(b.dir, "branch-app")
	if err := writeApp(ctxDir, proxy.Host+"/busybox:latest", cfg, branchVariants[0], "main on the branch\n"); err != nil {
		return nil, err
	}
	bin := b.env.BinDir
	buildctl := func(addr, repo string, extra ...string) (string, []string) {
		return filepath.Join(bin, "buildctl"), append([]string{"--addr", addr, "build", "--progress", "rawjson", "--frontend", "dockerfile.v0",
			"--local", "context=" + ctxDir, "--local", "dockerfile=" + ctxDir, "--output", "type=image,name=" + repo + ":branch,push=true",
			"--export-cache", "type=inline"}, extra...)
	}
	contenders := []branchContender{
		{"BuildKit, inline cache from REPO:latest", func(addr, repo, _ string) (string, []string) {
			return buildctl(addr, repo, "--import-cache", "type=registry,ref="+repo+":latest")
		}},
		{fmt.Sprintf("BuildKit, all %d images as cache sources", len(imgs)+1), func(addr, repo, _ string) (string, []string) {
			args := []string{"--import-cache", "type=registry,ref=" + repo + ":latest"}
			for _, r := range imgs {
				args = append(args, "--import-cache", "type=registry,ref="+host(r))
			}
			return buildctl(addr, repo, args...)
		}},
		{"strata build --push (no cache flag)", func(addr, repo, index string) (string, []string) {
			return filepath.Join(bin, "strata"), []string{"build", "--builder", addr, "--progress", "rawjson", "--index-file", index,
				"-t", repo + ":branch", "--push", ctxDir}
		}},
		// No command: strata's own builder, started from an empty
		// directory (see bed.measureRunner). The registry's layers are
		// gzip, as plain BuildKit pushes them: they cannot be pulled lazily.
		{"strata build --push (no cache flag), own builder", func(_, repo, index string) (string, []string) {
			return "", []string{"build", "--progress", "rawjson", "--index-file", index, "-t", repo + ":branch", "--push", ctxDir}
		}},
	}
	contenders = selected(b, "new-branch/"+link, contenders, func(c branchContender) string { return c.name })
	if len(contenders) == 0 {
		return nil, nil
	}
	runs := make([][]Run, len(contenders))
	for i := range cfg.Runs {
		for c, ct := range contenders {
			// The build's own repository, with its :latest from before the
			// dependency change, and a copy of the index as the registry
			// had it (earlier runs' pushes left out).
			repo := fmt.Sprintf("%s/newapp/c%d-r%d-%s", proxy.Host, c, i, slug(link))
			if err := crane.Copy(b.env.Registry.Host+"/seed/own:latest", strings.Replace(repo, proxy.Host, b.env.Registry.Host, 1)+":latest", crane.Insecure); err != nil {
				return nil, err
			}
			idx := filepath.Join(b.dir, "branch-run.idx")
			if err := copyFile(index, idx); err != nil {
				return nil, err
			}
			env, err := b.freshRunner()
			if err != nil {
				return nil, err
			}
			r, err := b.measureRunner(ctx, proxy, env, func(addr string) (string, []string) { return ct.cmd(addr, repo, idx) })
			if err != nil {
				return nil, err
			}
			runs[c] = append(runs[c], r)
			logf("new-branch/%s %-42s run %d: %.1fs, steps %d/%d cached, %.1f MB pulled", link, ct.name, i+1, r.Wall, r.StepsCached, r.StepsTotal, float64(r.BytesDown)/1e6)
		}
	}
	names := make([]string, len(contenders))
	for c, ct := range contenders {
		names[c] = ct.name
	}
	return compare("new-branch", link, names, runs, 0), nil
}

// branchContender is one way to build the branch: cmd gives the command
// and its arguments for a builder's address, the repository and the index
// file (no command: strata on its own builder, see bed.measureRunner).
type branchContender struct {
	name string
	cmd  func(addr, repo, index string) (string, []string)
}

// branchRegistry fills the registry once per benchmark run: the variants
// are built and pushed by plain BuildKit, the oldest first (the one the
// new build shares is the oldest), then copied under
// branchRepos repositories of branchTags tags each. It returns every image
// but the build's own :latest.
func (b *bed) branchRegistry(ctx context.Context, cfg config) ([]string, error) {
	if b.branchImages != nil {
		return b.branchImages, nil
	}
	reg := b.env.Registry.Host
	built := make([]string, len(branchVariants))
	for v, lock := range branchVariants {
		dir := filepath.Join(b.dir, fmt.Sprintf("branch-variant-%d", v))
		if err := writeApp(dir, reg+"/busybox:latest", cfg, lock, fmt.Sprintf("main %d\n", v)); err != nil {
			return nil, err
		}
		built[v] = fmt.Sprintf("%s/seed/variant%d:v1", reg, v)
		// Pushed by plain BuildKit with inline cache, as docker buildx
		// build --cache-to type=inline does: the history records nothing
		// about what each COPY copied, so the images tie on text.
		out, err := exec.CommandContext(ctx, filepath.Join(b.env.BinDir, "buildctl"), "--addr", b.env.Builder.Addr(), "build", "--progress", "quiet",
			"--frontend", "dockerfile.v0", "--local", "context="+dir, "--local", "dockerfile="+dir,
			"--output", "type=image,name="+built[v]+",push=true", "--export-cache", "type=inline").CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("building variant %d: %v\n%s", v, err, out)
		}
	}
	if err := crane.Copy(built[1], reg+"/seed/own:latest", crane.Insecure); err != nil {
		return nil, err
	}
	var imgs []string
	for r := range branchRepos {
		for t := range branchTags {
			ref := fmt.Sprintf("%s/branch/svc%02d:t%d", reg, r, t)
			src := built[2+(r*branchTags+t)%(len(built)-2)]
			if r == 7 && t == 3 {
				ref, src = fmt.Sprintf("%s/branch/svc%02d:feature-deps-upgrade", reg, r), built[0]
			}
			if err := crane.Copy(src, ref, crane.Insecure); err != nil {
				return nil, err
			}
			imgs = append(imgs, ref)
		}
	}
	b.branchImages = imgs
	return imgs, nil
}

// writeApp writes the application context (appDockerfile) with a lockfile
// and one source file, and commits it: the context is a git checkout, as
// in CI, and each version a new commit.
func writeApp(dir, base string, cfg config, lock, src string) error {
	return writeAppDockerfile(dir, appDockerfile, base, cfg, lock, src)
}

// writeAppDockerfile writes the application with the Dockerfile df
// (formatted with the base image, the dependency step's count of files
// and its seconds of waiting) in a new
// commit.
func writeAppDockerfile(dir, df, base string, cfg config, lock, src string) error {
	files := map[string]string{
		"Dockerfile":    fmt.Sprintf(df, base, max(1, cfg.DepsMB/10), cfg.DepsSeconds),
		".dockerignore": ".git\n",
		"lock.txt":      lock,
		"src/main.txt":  src,
	}
	for p, c := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(c), 0o644); err != nil {
			return err
		}
	}
	return commit(dir, src)
}

// commit commits everything in dir, making it a git checkout first.
func commit(dir, msg string) error {
	for _, args := range [][]string{{"init", "-q"}, {"add", "-A"}, {"commit", "-q", "--allow-empty", "-m", msg}} {
		if args[0] == "init" {
			if _, err := os.Stat(filepath.Join(dir, ".git")); err == nil {
				continue
			}
		}
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=bench", "-c", "user.email=bench@example.com", "-c", "commit.gpgsign=false"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

func copyFile(from, to string) error {
	dt, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, dt, 0o644)
}
