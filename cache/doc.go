// Package cache is strata's index of the images already in a registry, the
// ground its cache planning stands on: the index types (Index, Image,
// Layer, Step), history normalisation, the trie that finds the images
// sharing the longest prefix of steps with a query, and the index file
// format (Encode, Decode).
//
// Both sides of a match are turned into the same step tokens: the history
// of every indexed image (NormalizeHistory) and the stages of a Dockerfile
// after build-arg and variable expansion (package plan). The tokens of
// every indexed image go into a trie (Index); Index.Matches finds the
// images sharing the longest prefix of steps with a stage.
//
// The packages beside it do one job each:
//
//   - crawl reads images from registries into an index (Refresh,
//     AddImage) and holds the registry options (Option, WithKeychain, ...);
//   - store keeps an index in a local file or in the registry itself
//     (Store, FileStore, RegistryStore, OpenStore);
//   - plan turns a Dockerfile into steps and ranks the indexed images as
//     cache sources for each stage (Planner, Plan, Import).
//
// The index only chooses which refs BuildKit imports cache from; BuildKit
// decides every cache hit by its own keys, so a wrong match costs time,
// never a wrong build.
package cache
