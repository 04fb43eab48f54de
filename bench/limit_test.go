package main

import (
	"math"
	"testing"
	"time"
)

func TestUnionSeconds(t *testing.T) {
	t0 := time.Now()
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	spans := []stepSpan{{start: at(5), end: at(6)}, {start: at(0), end: at(2)}, {start: at(1), end: at(3)}, {start: at(2.5), end: at(2.7)}}
	if got := unionSeconds(spans); math.Abs(got-4) > 1e-9 {
		t.Errorf("union = %v, want 4 (0–3 and 5–6)", got)
	}
	if got := unionSeconds(nil); got != 0 {
		t.Errorf("union of nothing = %v", got)
	}
}

func TestLimits(t *testing.T) {
	run := func(cached int, changed float64, up, down int64) []Run {
		return []Run{{StepsCached: cached, ChangedSteps: changed, BytesUp: up, BytesDown: down, Wall: 20}}
	}
	rs := []Result{
		summarize("s", "loopback", "no cache", run(0, 10, 50e6, 1e6)),
		summarize("s", "loopback", "best cache", run(3, 2, 10e6, 80e6)),
		summarize("s", "loopback", "best cache, slower", run(3, 4, 20e6, 60e6)),
		summarize("s", "other link", "elsewhere", run(5, 1, 1e6, 1e6)),
	}
	ls := limits(rs, "loopback", 100)
	if len(ls) != 1 {
		t.Fatalf("limits = %+v", ls)
	}
	// What the best-cached contenders pulled at least (60 MB), then the
	// changed steps of the faster (2 s) while the least pushed (10 MB)
	// goes up, at 100 MB/s.
	if l := ls[0]; l.BuildSeconds != 2 || l.PushBytes != 10e6 || l.PullBytes != 60e6 || math.Abs(l.Seconds-2.6) > 1e-9 {
		t.Errorf("limit = %+v, want 0.6 s of pull + max(2 s, 0.1 s)", l)
	}
	if math.Abs(rs[0].RatioToLimit-20/2.6) > 1e-9 || rs[3].RatioToLimit != 0 {
		t.Errorf("ratios %v %v", rs[0].RatioToLimit, rs[3].RatioToLimit)
	}

	// A push slower than the build sets the limit, and the last layer,
	// pushed alone after the last step, adds to it.
	push := summarize("p", "loopback", "streamed", []Run{{ChangedSteps: 3, BytesUp: 500e6, LastLayerAlone: 0.5, Wall: 9}})
	ls = limits([]Result{push}, "loopback", 100)
	if len(ls) != 1 || math.Abs(ls[0].Seconds-5.5) > 1e-9 || ls[0].TailSeconds != 0.5 {
		t.Errorf("push limit = %+v, want max(3 s, 5 s) + 0.5 s", ls)
	}
}
