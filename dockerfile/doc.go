// Package dockerfile is one Dockerfile as a build reads it: parsed once
// with BuildKit's own parser and instructions (Parse, ReadFile), then
// resolved for a target (File.Resolve) into what that build needs: the
// stage the target names, each stage's base after ARG expansion, the
// stages reached through FROM, COPY --from and RUN --mount from=, the
// target's base image and the prefixes of the target stage.
//
// Stage names are matched by the rule of BuildKit's converter
// (dockerfile2llb): names are lower-case, a name given to --target,
// COPY --from or RUN --mount from= is lower-cased to match it and the last
// stage of that name wins; FROM looks a name up as written, among the
// stages before it; COPY --from also takes a stage's index.
//
// The cache planner, the secret gate of strata build and the prefix
// solves of a streamed push all read this one model, so they agree on
// which stages a build needs.
package dockerfile
