package cache_test

import (
	"fmt"
	"time"

	"github.com/strata-build/strata/cache"
)

func step(text string) cache.Step { return cache.Step{Token: text, Text: text} }

func ExampleIndex_Longest() {
	x := cache.NewIndex()
	x.Put(&cache.Image{
		Ref: "registry.example.com/app:v1", Digest: "sha256:0a", Platform: "linux/amd64", Indexed: time.Now(),
		Steps:  []cache.Step{step("RAW base"), step("WORKDIR /src"), step("COPY go.mod ."), step("RUN /bin/sh -c go mod download")},
		Layers: make([]cache.Layer, 4),
	})
	// The platform counts as the first token: 1 + the steps shared.
	fmt.Println(x.Longest("linux/amd64", []string{"RAW base", "WORKDIR /src", "COPY go.mod .", "RUN /bin/sh -c go build"}))
	fmt.Println(x.Longest("linux/arm64", []string{"RAW base"}))
	// Output:
	// 4
	// 0
}

func ExampleNormalizeCreatedBy() {
	for _, createdBy := range []string{
		"RUN |1 VERSION=1.2 /bin/sh -c make # buildkit",
		"/bin/sh -c #(nop) COPY file:4d8e1f in /app ",
		"/bin/sh -c apt-get update",
	} {
		text, sources := cache.NormalizeCreatedBy(createdBy)
		fmt.Printf("%q %q\n", text, sources)
	}
	// Output:
	// "RUN |1 VERSION=1.2 /bin/sh -c make" ""
	// "COPY /app" "file:4d8e1f"
	// "RUN /bin/sh -c apt-get update" ""
}
