// Package stream pushes the image of a BuildKit build while the build
// still runs: each layer is read as soon as BuildKit has made it,
// compressed on every core and uploaded, so that by the time the build
// ends little but the manifest is left to push.
//
// Push reads top to bottom as its phases (push.go): prepare the prefixes,
// and the target (target.go: the client-side store, the converter and the
// pushers; the platforms of one build share one); open the session; solve the
// build and, beside it, the chain of prefixes and, once the main export
// has written the image, its finish and the push of its content (finish.go);
// tag. A layer's bytes come from one of three sources (the client-side
// store, the export's transfer through the session, buildkitd's content
// store) and go through one conversion lifecycle (convert.go).
package stream
