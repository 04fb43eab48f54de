// Package crawl reads images from registries into a cache.Index: every
// repository and tag of a registry (Refresh), or named images (AddImage),
// each platform's manifest and config turned into an index entry. For a
// small COPY layer of an image that records nothing about its sources, it
// reads the layer once and keeps the digest of its files (FilesDigest).
//
// Its options (Option) say how every cache package talks to registries:
// credentials, plain HTTP, concurrency, logging and progress. The crawler
// is silent unless given a logger (WithLogger) or a progress channel
// (WithProgress).
package crawl
