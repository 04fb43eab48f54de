package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/moby/buildkit/frontend/dockerui"

	"github.com/strata-build/strata/lint"
)

// buildKitFindings runs BuildKit's own DockerfileLint and returns
// "Rule:line" for each warning of a rule strata reimplements.
func buildKitFindings(t testing.TB, dt []byte, known map[string]bool) ([]string, error) {
	sm := llb.NewSourceMap(nil, "Dockerfile", "Dockerfile", dt)
	sm.Definition = &llb.Definition{}
	res, err := dockerfile2llb.DockerfileLint(context.Background(), dt, dockerfile2llb.ConvertOpt{
		Config: dockerui.Config{}, MetaResolver: offlineResolver{}, SourceMap: sm,
	})
	if err != nil {
		return nil, err
	}
	if res.Error != nil {
		return nil, fmt.Errorf("%s", res.Error.Message)
	}
	var out []string
	for _, w := range res.Warnings {
		if !known[w.RuleName] {
			continue
		}
		line := 0
		if w.Location != nil && len(w.Location.Ranges) > 0 {
			line = int(w.Location.Ranges[0].Start.Line)
		}
		out = append(out, fmt.Sprintf("%s:%d", w.RuleName, line))
	}
	slices.Sort(out)
	return out, nil
}

// TestBuildKitChecksMatchDockerfileLint checks that the BuildKit checks
// strata runs without dockerfile2llb give the same warnings, on the same
// lines, as BuildKit's own DockerfileLint, over the golden cases and a
// generated corpus.
func TestBuildKitChecksMatchDockerfileLint(t *testing.T) {
	known := map[string]bool{}
	for _, r := range lint.BuildKitRules() {
		known[r.Name] = true
	}
	// InvalidDefaultArgInFrom always comes with a build error in
	// DockerfileLint, so it is never compared here; see the lint tests.
	// CopyIgnoredFile needs the context, which DockerfileLint reads through
	// a client; it is compared by the golden cases instead.
	delete(known, "CopyIgnoredFile")
	inputs := map[string][]byte{}
	files, _ := filepath.Glob("../lint/testdata/*/*/Dockerfile")
	for _, f := range files {
		dt, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		inputs[f] = dt
	}
	for i, dt := range lintCorpus(300, 7) {
		inputs[fmt.Sprintf("corpus/%d", i)] = dt
	}
	for i, src := range []string{
		"FROM alpine\nEXPOSE 80/TCP 8080:80 127.0.0.1:53:53/udp 443\n",
		"FROM --platform=linux/amd64 alpine AS build\nFROM --platform=linux/arm64 alpine AS arm64build\nFROM --platform=$BUILDPLATFORM alpine\n",
		"ARG TAG\nFROM alpine:$TAG\nARG IMG=\nFROM ${IMG}\n",
		"ARG VARIANT=alpine\nFROM node:22-${VARIANT} AS Builder\nFROM $NOPE\n",
		"FROM alpine\nARG PORT=8080\nEXPOSE $PORT/UDP\n",
		"FROM alpine AS context\nFROM alpine as build\nFROM alpine${SUFFIX}\nFROM --platform=$TARGETPLATFORM alpine\n",
		"ARG TAG=3\nFROM --platform=${TARGETPLATFORM} alpine:$TAG\nRUN echo\n",
		"FROM alpine\nWORKDIR \"/app\"\nFROM alpine\nWORKDIR \"app\"\nFROM alpine\nARG DIR=/srv\nWORKDIR $DIR\n",
		// The platform arguments BuildKit defines by itself name stages.
		"FROM alpine AS build_amd64\nFROM alpine AS build_arm64\nFROM build_${TARGETARCH}${TARGETVARIANT}\n",
		"FROM alpine AS binary-linux\nFROM binary-$TARGETOS AS binary\nFROM scratch\nCOPY --from=binary /x /x\n",
		"ARG TARGETARCH\nFROM alpine AS build-amd64\nFROM build-${TARGETARCH}\n",
	} {
		inputs[fmt.Sprintf("case/%d", i)] = []byte(src)
	}
	seen := map[string]int{}
	compared := 0
	defer func() {
		t.Logf("compared %d Dockerfiles; warnings per rule: %v", compared, seen)
		for rule := range known {
			if seen[rule] == 0 && rule != "InvalidDefinitionDescription" && rule != "NoEmptyContinuation" && rule != "InvalidDefaultArgInFrom" {
				t.Errorf("no input exercises %s", rule)
			}
		}
	}()
	for name, dt := range inputs {
		if strings.Contains(string(dt), "hadolint ignore") {
			continue // strata reads hadolint's comments, BuildKit does not
		}
		want, err := buildKitFindings(t, dt, known)
		if err != nil {
			continue // BuildKit refuses it; strata's parse errors are tested elsewhere
		}
		res, err := lint.Lint("Dockerfile", dt, lint.Options{})
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		var got []string
		for _, f := range res.Findings {
			if f.BuildKit && known[f.Rule] {
				got = append(got, fmt.Sprintf("%s:%d", f.Rule, f.Start.Line))
			}
		}
		slices.Sort(got)
		compared++
		for _, w := range want {
			rule, _, _ := strings.Cut(w, ":")
			seen[rule]++
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s:\nstrata   %v\nbuildkit %v\n%s", name, got, want, dt)
		}
	}
}
