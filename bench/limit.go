package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Limit is a scenario's physical limit on one link: building only the
// steps whose inputs changed, then pushing only the new bytes at the
// throughput measured on the link in the same run. Overlapping the push
// with the build can beat it; nothing that builds and pushes in sequence
// can.
type Limit struct {
	Scenario string  `json:"scenario"`
	Link     string  `json:"link"`
	Seconds  float64 `json:"seconds"`
	// BuildSeconds is how long the changed steps ran, in the run of the
	// contender that cached the most steps (the fastest of those).
	BuildSeconds float64 `json:"buildSeconds"`
	// PushBytes is the least any contender pushed: the new bytes.
	PushBytes      float64 `json:"pushBytes"`
	ThroughputMBps float64 `json:"throughputMBps"`
}

// throughputBlobMB is the size of the blob the link's throughput is
// measured with.
const throughputBlobMB = 32

// measureThroughput uploads one blob of random bytes to the registry at
// host (a proxy on the link) and returns megabytes per second.
func measureThroughput(ctx context.Context, host string) (float64, error) {
	dt := make([]byte, throughputBlobMB<<20)
	if _, err := rand.Read(dt); err != nil {
		return 0, err
	}
	repo, err := name.NewRepository(host+"/bench/throughput", name.Insecure)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	if err := remote.WriteLayer(repo, static.NewLayer(dt, types.OCILayer), remote.WithContext(ctx)); err != nil {
		return 0, fmt.Errorf("measuring the link's throughput: %w", err)
	}
	return float64(len(dt)) / 1e6 / time.Since(start).Seconds(), nil
}

// limits works out each scenario's limit on one link from the runs of its
// contenders, and sets every result's ratio to it.
func limits(results []Result, link string, mbps float64) []Limit {
	var order []string
	by := map[string][]int{}
	for i, r := range results {
		if r.Link != link {
			continue
		}
		if _, ok := by[r.Scenario]; !ok {
			order = append(order, r.Scenario)
		}
		by[r.Scenario] = append(by[r.Scenario], i)
	}
	var out []Limit
	for _, sc := range order {
		l := Limit{Scenario: sc, Link: link, ThroughputMBps: mbps, BuildSeconds: -1, PushBytes: -1}
		most := -1
		for _, i := range by[sc] {
			r := results[i]
			if len(r.Runs) == 0 {
				continue
			}
			cached := r.Runs[0].StepsCached
			build := stat(r.Runs, func(r Run) float64 { return r.ChangedSteps }).Median
			if cached > most || cached == most && build < l.BuildSeconds {
				most, l.BuildSeconds = cached, build
			}
			if pushed := r.BytesUp.Median; pushed > 0 && (l.PushBytes < 0 || pushed < l.PushBytes) {
				l.PushBytes = pushed
			}
		}
		if most < 0 || l.PushBytes < 0 || mbps <= 0 {
			continue
		}
		l.Seconds = l.BuildSeconds + l.PushBytes/1e6/mbps
		for _, i := range by[sc] {
			results[i].RatioToLimit = results[i].Wall.Median / l.Seconds
		}
		out = append(out, l)
	}
	return out
}
