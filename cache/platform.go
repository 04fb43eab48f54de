package cache

import (
	"fmt"

	"github.com/containerd/platforms"
	"github.com/docker/go-units"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// Platform is the normalised os/arch[/variant] (arm64/v8 is arm64), as
// both sides of a match write it: Image.Platform and the planned stages.
func Platform(os, arch, variant string) string {
	if os == "" || arch == "" {
		return ""
	}
	return platforms.Format(platforms.Normalize(ocispecs.Platform{OS: os, Architecture: arch, Variant: variant}))
}

// HumanBytes formats a byte count as docker does (kB, MB, GB; powers of 1000).
func HumanBytes(n int64) string {
	if n < 1000 {
		return fmt.Sprintf("%d B", n)
	}
	return units.CustomSize("%.1f %s", float64(n), 1000, sizeUnits)
}

var sizeUnits = []string{"B", "kB", "MB", "GB", "TB"}
