// Package store keeps a cache.Index where every strata process finds it:
// a local file under the user cache directory (FileStore), or the registry
// itself as a small image that every CI runner and the frontend can read
// (RegistryStore). Concurrent writers never lose each other's entries.
// OpenStore picks one from the --index and --index-file flags; AddImages
// reads freshly pushed images into it.
package store
