package main

import (
	"fmt"
	"html"
	"strings"
)

func table(rep Report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| scenario | link | contender | wall s (median, min–max) | ratio | × limit | after last step s | steps cached | MB pulled | MB pushed | blob uploads |\n")
	fmt.Fprintf(&b, "|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rep.Results {
		ratio := ""
		if r.Ratio > 0 {
			ratio = fmt.Sprintf("%.2f×", r.Ratio)
		}
		cached := ""
		if len(r.Runs) > 0 {
			cached = fmt.Sprintf("%d/%d", r.Runs[0].StepsCached, r.Runs[0].StepsTotal)
		}
		limit := ""
		if r.RatioToLimit > 0 {
			limit = fmt.Sprintf("%.2f×", r.RatioToLimit)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %.1f (%.1f–%.1f) | %s | %s | %.1f | %s | %.1f | %.1f | %.0f |\n",
			r.Scenario, r.Link, r.Contender, r.Wall.Median, r.Wall.Min, r.Wall.Max, ratio, limit, r.Tail.Median, cached, r.BytesDown.Median/1e6, r.BytesUp.Median/1e6, r.Uploads.Median)
	}
	return b.String()
}

// scenarioDocs describe each scenario in docs/benchmarks.md.
var scenarioDocs = map[string]string{
	"one-source-file-changed":       "v1 of an application (a system-package step, `WORKDIR`, a %[2]d MB dependency step from a lockfile that first waits %[4]d s as an install waits on its downloads, the source COPY and a build step) is pushed; v2 differs by one source line. The context is a git checkout and each version a new commit. v1 is pushed by plain BuildKit (`buildctl` with inline cache, as `docker buildx build --cache-to type=inline` does) or by strata, each on its own runner. Each contender builds and pushes v2 on a fresh runner: a fresh buildkitd and an empty HOME (no index file, nothing remembered); `strata, no flags` has no cache flag at all; `own builder` is strata's own buildkitd, started from an empty directory (its start counted), with lazy pulls (`STRATA_BUILDER_SNAPSHOTTER=stargz`, eStargz layers mounted and read as the steps read them) or without (the default). The ratio compares with BuildKit with no cache on the same link.",
	"one-change-after-new-lockfile": "The one-change application after a change of its lockfile: v1 is pushed, then v1 again with a new lockfile in a new commit (its %[2]d MB, %[4]d s dependency step runs again), then v2 differs by one source line in the next commit. Every build runs on a fresh runner (a fresh buildkitd, an empty HOME); each contender pushes all three itself. v2 can reuse the dependency step only if the image (or cache) the second push wrote records it: strata's own builder with lazy pulls (`STRATA_BUILDER_SNAPSHOTTER=stargz`) shows BuildKit leaving out the record of a step that ran over lazily pulled layers, which is why lazy pulls are not the default. The ratio compares with BuildKit's registry cache `mode=max` on the same link.",
	"multi-stage-one-change":        "The one-change application built in a builder stage (`FROM ... AS build`: the system-package step, `WORKDIR`, the %[2]d MB dependency step, the source COPY and the build step), with only the build output copied into the image (`COPY --from=build`): the dependency step is in no image's inline cache. v2 differs by one source line in a new commit; each contender builds and pushes it on a fresh runner. BuildKit's pipelines: a registry cache with `mode=max` at `REPO:buildcache` (v1 also with inline cache, as `docker buildx build --cache-to type=registry,ref=REPO:buildcache,mode=max --cache-to type=inline` writes), or inline cache from `:latest`; strata with no flag at all after a v1 strata pushed (which wrote `REPO:buildcache` by default) or after BuildKit's v1 with `mode=max`. The ratio compares with BuildKit's registry cache `mode=max` on the same link.",
	"new-branch":                    "A registry of 40 repositories with 5 tags each (200 images built by plain BuildKit with inline cache, shared base and dependency layers; four lockfiles behind the same Dockerfile text, so the images tie on text). A branch upgrades its dependencies to the lockfile of an image that only another repository's feature branch has (the oldest of the four); the branch's own repository has an older `:latest`, so BuildKit importing it runs the %[2]d MB dependency step (%[4]d s of waiting, as an install waits on its downloads). Each contender builds and pushes the branch on a fresh runner (fresh builder, empty HOME); strata has only its index of the registry (refreshed before, as CI does on a schedule), on the test bed's builder and on its own (started from an empty directory, its start counted). The ratio compares with BuildKit importing inline cache from `REPO:latest` on the same link.",
	"streamed-push":                 "Four heavy steps, each writing %[1]d MB (half random) with %[3]d rounds of hashing, then a small step, built on a fresh builder and pushed into a new repository (so strata uploads each layer while it compresses it). Each tool writes its default compression (strata eStargz, `buildctl` gzip) unless the table names one. `build only` is the same build with no push; the ratio compares with `buildctl push=true` on the same link. *After last step* is the time from the last Dockerfile step's end to the command's end.",
}

// markdown renders docs/benchmarks.md: how it was run, a table per
// scenario, and an inline SVG bar chart of the median wall times.
func markdown(rep Report, results string) string {
	var b strings.Builder
	b.WriteString("# Benchmarks\n\n")
	fmt.Fprintf(&b, "Generated by `go run ./bench` (`make bench` runs it with the defaults); raw figures in `%s`.\n", results)
	fmt.Fprintf(&b, "Run on %s on a 2-core machine: %d runs per contender (medians, with min–max), each on a fresh buildkitd (empty cache, like a new CI runner), with the registry behind a counting proxy; the limited link is %g MB/s each way. Ratios compare medians measured in the same run. *× limit* compares with the scenario's physical limit on the link: pulling what the changed steps need (the least a contender that cached the most pulled), then the larger of the time the steps whose inputs changed took to run (in the run of the contender that cached the most) and the new bytes (the least any contender pushed) going up the link, then pushing the last layer alone where that was measured; throughput is that of a %[4]d MB upload measured on the link in the same run. No contender can beat it.\n",
		rep.Date.Format("2006-01-02"), rep.Config.Runs, rep.Config.Bandwidth, throughputBlobMB)
	if rep.Config.Compression != "" {
		fmt.Fprintf(&b, "\nEvery contender compresses the layers it creates with %s (`-compression %s`).\n", rep.Config.Compression, rep.Config.Compression)
	}
	var order []string
	by := map[string]Report{}
	for _, r := range rep.Results {
		if _, ok := by[r.Scenario]; !ok {
			order = append(order, r.Scenario)
		}
		sub := by[r.Scenario]
		sub.Results = append(sub.Results, r)
		by[r.Scenario] = sub
	}
	for _, sc := range order {
		fmt.Fprintf(&b, "\n## %s\n\n", sc)
		if d, ok := scenarioDocs[sc]; ok {
			if strings.Contains(d, "%[") {
				d = fmt.Sprintf(d, rep.Config.StepMB, rep.Config.DepsMB, rep.Config.Work, rep.Config.DepsSeconds)
			}
			b.WriteString(d + "\n\n")
		}
		b.WriteString(table(by[sc]))
		b.WriteString("\n")
		for _, l := range rep.Limits {
			if l.Scenario == sc {
				fmt.Fprintf(&b, "Physical limit on %s: %.1f s (%.1f MB pulled for the changed steps, then the changed steps' %.1f s while %.1f MB new go up, then %.2f s for the last layer alone; at the %.0f MB/s measured on the link).\n",
					l.Link, l.Seconds, l.PullBytes/1e6, l.BuildSeconds, l.PushBytes/1e6, l.TailSeconds, l.ThroughputMBps)
			}
		}
		writeLastLayerAlone(&b, by[sc].Results)
		b.WriteString("\n")
		b.WriteString(chart(by[sc].Results))
	}
	return b.String()
}

func chart(rs []Result) string {
	const barH, gap, left, width = 18, 6, 330, 420
	max := 0.0
	for _, r := range rs {
		if r.Wall.Max > max {
			max = r.Wall.Max
		}
	}
	if max == 0 {
		return ""
	}
	h := len(rs)*(barH+gap) + 30
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", left+width+80, h)
	for i, r := range rs {
		y := 10 + i*(barH+gap)
		w := int(r.Wall.Median / max * width)
		color := "#8a8a8a"
		if strings.HasPrefix(r.Contender, "strata") {
			color = "#2f6fb3"
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", left-6, y+13, html.EscapeString(r.Link+" · "+r.Contender))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s"/>`+"\n", left, y, w, barH, color)
		fmt.Fprintf(&b, `<text x="%d" y="%d">%.1f s</text>`+"\n", left+w+4, y+13, r.Wall.Median)
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// writeLastLayerAlone compares each contender's time after the last step
// with pushing the last layer and a manifest alone on the same link.
func writeLastLayerAlone(b *strings.Builder, rs []Result) {
	for _, r := range rs {
		if r.LastLayerAlone == nil || r.LastLayerAlone.Median <= 0 {
			continue
		}
		alone := r.LastLayerAlone.Median
		fmt.Fprintf(b, "On %s, pushing the last layer of over 1 MB (%.1f MB) with a config and a manifest alone took %.2f s (median); after the last step, %s took %.2f× that", r.Link, r.Runs[0].LastLayerAloneMB, alone, r.Contender, r.Tail.Median/alone)
		for _, o := range rs {
			if o.Link == r.Link && o.Contender != r.Contender && o.Tail.Median > 0.1 {
				fmt.Fprintf(b, ", %s %.2f×", o.Contender, o.Tail.Median/alone)
			}
		}
		b.WriteString(".\n")
	}
}
