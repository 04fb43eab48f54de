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

// Limit is a scenario's physical limit on one link: pulling what the
// changed steps need to run, then building only the steps whose inputs
// changed while the new bytes go up the link, then pushing the last
// layer, which cannot start before the last step ends:
//
//	pull/link + max(build, new bytes/link) + last layer alone
type Limit struct {
	Scenario string  `json:"scenario"`
	Link     string  `json:"link"`
	Seconds  float64 `json:"seconds"`
	// BuildSeconds is how long the changed steps ran, in the run of the
	// contender that cached the most steps (the fastest of those).
	BuildSeconds float64 `json:"buildSeconds"`
	// PushBytes is the least any contender pushed: the new bytes.
	PushBytes float64 `json:"pushBytes"`
	// PullBytes is the least that a contender caching the most steps
	// pulled: what the changed steps need under them on a fresh runner.
	PullBytes float64 `json:"pullBytes"`
	// TailSeconds is pushing the last layer and a manifest alone on the
	// link, where the scenario measured it (else 0).
	TailSeconds    float64 `json:"tailSeconds"`
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
			pulled := r.BytesDown.Median
			switch {
			case cached > most:
				most, l.BuildSeconds, l.PullBytes = cached, build, pulled
			case cached == most:
				l.BuildSeconds, l.PullBytes = min(l.BuildSeconds, build), min(l.PullBytes, pulled)
			}
			if pushed := r.BytesUp.Median; pushed > 0 && (l.PushBytes < 0 || pushed < l.PushBytes) {
				l.PushBytes = pushed
			}
			if r.LastLayerAlone != nil && r.LastLayerAlone.Median > 0 {
				l.TailSeconds = r.LastLayerAlone.Median
			}
		}
		if most < 0 || l.PushBytes < 0 || mbps <= 0 {
			continue
		}
		l.Seconds = l.PullBytes/1e6/mbps + max(l.BuildSeconds, l.PushBytes/1e6/mbps) + l.TailSeconds
		for _, i := range by[sc] {
			results[i].RatioToLimit = results[i].Wall.Median / l.Seconds
		}
		out = append(out, l)
	}
	return out
}
