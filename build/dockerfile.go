package build

import (
	"github.com/containerd/platforms"

	"github.com/strata-build/strata/dockerfile"
)

// readDockerfile parses the Dockerfile at path once a build: the parse
// AutoCache.Choose made comes in o (see Choice.Apply), and Run, the secret
// gate, the plan of the recorded sources and the prefix solves read that
// one.
func (o *Options) readDockerfile(path string) (*dockerfile.File, error) {
	if o.parsed != nil && o.parsed.Name == path {
		return o.parsed, nil
	}
	f, err := dockerfile.ReadFile(path)
	if err != nil {
		return nil, err
	}
	o.parsed = f
	return f, nil
}

// resolveTarget reads df for a build of o's target on platform ("" the
// build platform).
func (o *Options) resolveTarget(df *dockerfile.File, platform string) (*dockerfile.Build, error) {
	args := dockerfile.Args{BuildArgs: o.BuildArgs}
	if platform != "" {
		p, err := platforms.Parse(platform)
		if err != nil {
			return nil, err
		}
		args.Platform = platforms.Normalize(p)
	}
	return df.Resolve(o.Target, args)
}

// streamTarget is the build of a streamed push (one platform at most),
// read from the Dockerfile Run parsed; nil when it did not parse or names
// no such target, which the main solve reports.
func (o *Options) streamTarget() *dockerfile.Build {
	if o.parsed == nil || len(o.Platforms) > 1 {
		return nil
	}
	platform := ""
	if len(o.Platforms) == 1 {
		platform = o.Platforms[0]
	}
	b, err := o.resolveTarget(o.parsed, platform)
	if err != nil {
		return nil
	}
	return b
}
