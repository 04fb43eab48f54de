// Package plan chooses cache sources for Dockerfile builds from a
// cache.Index.
//
// It turns each stage a build needs (as package dockerfile reads the
// Dockerfile for the target) into the step tokens the index holds, by
// BuildKit's own conversion (DockerfileStages), with the content digest
// of what each COPY takes from the build context; Planner.Plan finds the indexed images sharing the
// longest prefix of steps with each stage and ranks them (Candidate), and
// Plan.Imports picks the refs BuildKit imports cache from (Import).
// RecordSources writes the sources digests into the history of the images
// strata builds, so the next plan matches their COPY steps by content.
package plan
