package lint

import (
	"errors"
	"testing"

	"github.com/strata-build/strata/errs"
)

// FuzzParseConfig feeds arbitrary bytes as .strata.yaml: ParseConfig never
// panics, refuses with an input error (exit 2) or returns a config whose
// every setting the linter can use.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("failLevel: error\nrules:\n  CacheMountMissing: off\n  FromAsCasing: error\nvolatileArgs: [MY_*]\nmaxFileSize: 1000\nbuildkitChecks: false\n"))
	f.Add([]byte("rules: {SourceCopiedBeforeDependencyInstall: info}\n"))
	f.Add([]byte("failLevel: none\n"))
	f.Add([]byte("volatileArgs: ['[']\n"))
	f.Add([]byte("unknown: 1\n"))
	f.Add([]byte("rules: [a, b]\n"))
	f.Add([]byte("maxFileSize: -5\n---\nfailLevel: info\n"))
	f.Add([]byte{0xff, 0xfe, 0x00})
	f.Fuzz(func(t *testing.T, dt []byte) {
		cfg, err := ParseConfig(".strata.yaml", dt)
		if err != nil {
			if !errors.Is(err, errs.ErrInput) {
				t.Fatalf("not an input error: %v", err)
			}
			return
		}
		if cfg.maxFileSize() <= 0 {
			t.Fatalf("max file size %d", cfg.maxFileSize())
		}
		for _, r := range Rules() {
			fd := Finding{Rule: r.Name, Severity: r.Severity}
			if cfg.apply(&fd) != cfg.Enabled(r.Name) {
				t.Fatalf("rule %s: apply and Enabled disagree", r.Name)
			}
			if _, err := ParseSeverity(fd.Severity.String()); err != nil {
				t.Fatalf("rule %s: severity %v: %v", r.Name, fd.Severity, err)
			}
		}
		for _, p := range cfg.VolatileArgs {
			_ = cfg.Volatile(p)
		}
		_ = cfg.String()
		if _, err := Lint("Dockerfile", []byte("FROM alpine AS b\nARG GIT_SHA\nRUN npm ci\nCOPY . .\n"), Options{Config: cfg}); err != nil {
			t.Fatalf("a config ParseConfig accepted breaks linting: %v", err)
		}
	})
}
