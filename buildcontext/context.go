// Package buildcontext computes the exact set of files that BuildKit receives
// from a local build context.
//
// BuildKit's Dockerfile frontend reads <Dockerfile>.dockerignore, or else
// <context>/.dockerignore, parses it with ignorefile.ReadAll and hands the
// patterns to the client, which walks the context with fsutil's FilterFS.
// This package follows the same steps with the same pattern matcher, so a
// path is in Files exactly when BuildKit's walk would send it. (The
// Dockerfile frontend further narrows the transfer to the paths its COPY
// and ADD sources name, with FollowPaths; Match gives what one source takes.)
package buildcontext

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"

	"github.com/strata-build/strata/errs"
)

// DefaultIgnoreName is the ignore file BuildKit reads at the root of the context.
const DefaultIgnoreName = ".dockerignore"

// Context is a local build context filtered by its ignore file.
type Context struct {
	dir        string // absolute, symlinks resolved like fsutil.NewFS
	ignoreFile string
	patterns   []string
	matcher    *patternmatcher.PatternMatcher

	// Exception patterns decide whether an excluded directory may be skipped
	// without looking inside; fsutil makes the same decision.
	prefixOnlyExceptions bool

	once  sync.Once
	index *index
	err   error

	memoMu sync.Mutex
	memo   map[string]string
}

// Memo returns the value f gave for key before, or calls f and keeps what
// it returns when it succeeds. Work derived from the walk (the digest of a
// COPY's sources) is done once for every user of this Context.
func (c *Context) Memo(key string, f func() (string, error)) (string, error) {
	c.memoMu.Lock()
	v, ok := c.memo[key]
	c.memoMu.Unlock()
	if ok {
		return v, nil
	}
	v, err := f()
	if err != nil {
		return "", err
	}
	c.memoMu.Lock()
	if c.memo == nil {
		c.memo = map[string]string{}
	}
	c.memo[key] = v
	c.memoMu.Unlock()
	return v, nil
}

// Open finds the ignore file for dockerfile the way BuildKit's dockerui does
// (<dockerfile>.dockerignore beside the Dockerfile first, then
// <contextDir>/.dockerignore) and prepares a walker. dockerfile may be "",
// meaning <contextDir>/Dockerfile.
func Open(contextDir, dockerfile string) (*Context, error) {
	if dockerfile == "" {
		dockerfile = filepath.Join(contextDir, "Dockerfile")
	}
	for _, name := range []string{dockerfile + ".dockerignore", filepath.Join(contextDir, DefaultIgnoreName)} {
		dt, err := os.ReadFile(name)
		if err != nil {
			if os.IsNotExist(err) || isDirErr(name) {
				continue
			}
			return nil, errs.Inputf("read ignore file %s: %v", name, err)
		}
		patterns, err := ParseIgnore(dt)
		if err != nil {
			return nil, errs.Inputf("parse ignore file %s: %v", name, err)
		}
		c, err := New(contextDir, patterns)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		c.ignoreFile = name
		return c, nil
	}
	return New(contextDir, nil)
}

func isDirErr(name string) bool {
	fi, err := os.Stat(name)
	return err == nil && fi.IsDir()
}

// New prepares a walker for contextDir with the given exclude patterns, as
// returned by ParseIgnore.
func New(contextDir string, patterns []string) (*Context, error) {
	dir, err := filepath.EvalSymlinks(contextDir)
	if err != nil {
		return nil, errs.Inputf("build context %s: %v", contextDir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, errs.Inputf("build context %s: %v", contextDir, err)
	}
	if !fi.IsDir() {
		return nil, errs.Inputf("build context %s is not a directory", contextDir)
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, errs.Inputf("build context %s: %v", contextDir, err)
	}
	c := &Context{dir: dir, patterns: patterns, prefixOnlyExceptions: true}
	if len(patterns) > 0 {
		c.matcher, err = patternmatcher.New(patterns)
		if err != nil {
			return nil, errs.Inputf("invalid ignore pattern: %v", err)
		}
		for _, p := range c.matcher.Patterns() {
			if p.Exclusion() && strings.ContainsAny(withoutTrailingGlob(p), `*[]?^\`) {
				c.prefixOnlyExceptions = false
				break
			}
		}
	}
	return c, nil
}

// ParseIgnore reads ignore-file bytes the way BuildKit does
// (ignorefile.ReadAll): "#" lines are comments, but "//" lines are patterns.
func ParseIgnore(dt []byte) ([]string, error) {
	return ignorefile.ReadAll(bytes.NewReader(dt))
}

// Dir returns the absolute context directory.
func (c *Context) Dir() string { return c.dir }

// IgnoreFile returns the path of the ignore file used, "" if none.
func (c *Context) IgnoreFile() string { return c.ignoreFile }

// Patterns returns the exclude patterns in the order they were read.
func (c *Context) Patterns() []string { return append([]string(nil), c.patterns...) }

// Allowlist reports whether the ignore file excludes everything and then
// re-includes paths with "!" lines, so only the listed paths reach the build.
func (c *Context) Allowlist() bool {
	if c.matcher == nil {
		return false
	}
	ps := c.matcher.Patterns()
	if len(ps) < 2 || ps[0].Exclusion() {
		return false
	}
	first := ps[0].String()
	return (first == "*" || first == "**") && c.matcher.Exclusions()
}

// Excluded reports whether the slash-separated relative path rel is left out
// of the context, itself or through an excluded parent that no exception
// re-includes.
func (c *Context) Excluded(rel string) (bool, error) {
	if c.matcher == nil {
		return false, nil
	}
	rel = path.Clean(strings.TrimPrefix(rel, "/"))
	if rel == "." {
		return false, nil
	}
	return c.matcher.MatchesOrParentMatches(filepath.FromSlash(rel))
}

func withoutTrailingGlob(p *patternmatcher.Pattern) string {
	s := strings.TrimSuffix(p.String(), string(filepath.Separator)+"**")
	return strings.TrimSuffix(s, string(filepath.Separator)+"*")
}
