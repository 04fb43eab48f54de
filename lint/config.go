package lint

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/strata-build/strata/errs"
)

// ConfigName is the file FindConfig looks for.
const ConfigName = ".strata.yaml"

// Config holds rule settings, read from .strata.yaml.
type Config struct {
	// FailLevel is the lowest severity that makes a run fail.
	FailLevel Severity `yaml:"failLevel"`
	// Rules turns rules off ("off") or sets their severity ("error",
	// "warning", "info"); keys are rule names, BuildKit's included.
	Rules map[string]string `yaml:"rules"`
	// VolatileArgs are extra ARG/ENV names (path.Match patterns, case
	// insensitive) whose value changes every build.
	VolatileArgs []string `yaml:"volatileArgs"`
	// MaxFileSize is the size in bytes above which a copied file is reported
	// by ContextLeaksIntoCopy; 0 means the default.
	MaxFileSize int64 `yaml:"maxFileSize"`
	// BuildKitChecks runs BuildKit's own build checks too (default true).
	BuildKitChecks *bool `yaml:"buildkitChecks"`
}

// DefaultMaxFileSize is the default ContextLeaksIntoCopy size threshold.
const DefaultMaxFileSize = 50 << 20

// DefaultVolatileArgs returns the ARG and ENV names (path.Match patterns)
// taken to change every build.
func DefaultVolatileArgs() []string { return append([]string(nil), defaultVolatileArgs...) }

var defaultVolatileArgs = []string{
	"GIT_SHA", "GIT_SHA1", "GIT_HASH", "GIT_COMMIT", "GIT_COMMIT_SHA", "GIT_COMMIT_HASH", "GIT_REF", "GIT_HEAD", "GIT_REV", "COMMIT", "COMMIT_SHA", "COMMIT_HASH", "*_COMMIT_SHA", "SHA", "SOURCE_COMMIT",
	"REVISION", "GIT_REVISION", "VCS_REF", "SOURCE_VERSION",
	"BUILD_NUMBER", "BUILD_ID", "BUILD_DATE", "BUILD_TIME", "BUILD_TIMESTAMP", "BUILD_VERSION", "BUILDTIME", "TIMESTAMP", "DATE",
	"VERSION", "APP_VERSION", "RELEASE", "RELEASE_VERSION", "IMAGE_VERSION", "IMAGE_TAG", "TAG",
	"BRANCH", "GIT_BRANCH", "BRANCH_NAME", "CACHEBUST", "CACHE_BUST",
	"CI_*", "GITHUB_SHA", "GITHUB_REF", "GITHUB_REF_NAME", "GITHUB_RUN_*", "GITLAB_*", "BUILDKITE_*", "CIRCLE_*", "TRAVIS_*", "DRONE_*", "BITBUCKET_*", "JENKINS_*",
}

// DefaultConfig returns the settings used when no config file is found.
func DefaultConfig() *Config {
	return &Config{FailLevel: SeverityWarning}
}

// LoadConfig reads a config file.
func LoadConfig(file string) (*Config, error) {
	dt, err := os.ReadFile(file)
	if err != nil {
		return nil, errs.Inputf("config %s: %v", file, err)
	}
	return ParseConfig(file, dt)
}

// ParseConfig reads config bytes; name is used in errors.
func ParseConfig(name string, dt []byte) (*Config, error) {
	cfg := DefaultConfig()
	dec := yaml.NewDecoder(strings.NewReader(string(dt)))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, errs.Inputf("config %s: %v", name, err)
	}
	known := map[string]bool{}
	for _, r := range Rules() {
		known[r.Name] = true
	}
	for _, r := range BuildKitRules() {
		known[r.Name] = true
	}
	for rule, v := range cfg.Rules {
		if !known[rule] {
			return nil, errs.Inputf("config %s: unknown rule %q", name, rule)
		}
		switch strings.ToLower(v) {
		case "off", "on", "false", "true", "error", "warning", "info":
		default:
			return nil, errs.Inputf("config %s: rule %s: %q is not off, on, error, warning or info", name, rule, v)
		}
	}
	for _, p := range cfg.VolatileArgs {
		if _, err := path.Match(p, ""); err != nil {
			return nil, errs.Inputf("config %s: volatileArgs: bad pattern %q", name, p)
		}
	}
	return cfg, nil
}

// FindConfig looks for .strata.yaml in dir and its parents; "" if none.
func FindConfig(dir string) string {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return ""
	}
	for {
		p := filepath.Join(dir, ConfigName)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p
		} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return ""
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// ResolveConfig loads the config at file; when file is "", the one
// FindConfig finds from dir up; when there is none, the defaults.
func ResolveConfig(file, dir string) (*Config, error) {
	if file == "" {
		file = FindConfig(dir)
	}
	if file == "" {
		return DefaultConfig(), nil
	}
	return LoadConfig(file)
}

// Volatile reports whether an ARG or ENV named name changes every build.
func (c *Config) Volatile(name string) bool {
	up := strings.ToUpper(name)
	for _, list := range [][]string{defaultVolatileArgs, c.VolatileArgs} {
		for _, p := range list {
			if ok, _ := path.Match(strings.ToUpper(p), up); ok {
				return true
			}
		}
	}
	return false
}

func (c *Config) maxFileSize() int64 {
	if c.MaxFileSize > 0 {
		return c.MaxFileSize
	}
	return DefaultMaxFileSize
}

func (c *Config) buildKitChecks() bool { return c.BuildKitChecks == nil || *c.BuildKitChecks }

// Enabled reports whether a rule is on.
func (c *Config) Enabled(rule string) bool {
	v := strings.ToLower(c.Rules[rule])
	return v != "off" && v != "false"
}

// apply sets the configured severity; false when the rule is off.
func (c *Config) apply(f *Finding) bool {
	v, ok := c.Rules[f.Rule]
	if !ok {
		return true
	}
	switch strings.ToLower(v) {
	case "off", "false":
		return false
	case "on", "true":
		return true
	}
	if s, err := ParseSeverity(v); err == nil {
		f.Severity = s
	}
	return true
}

func (c *Config) String() string {
	return fmt.Sprintf("failLevel=%s rules=%v", c.FailLevel, c.Rules)
}
