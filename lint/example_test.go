package lint_test

import (
	"fmt"
	"os"

	"github.com/strata-build/strata/lint"
)

// Lint Dockerfile bytes without a build context, as a frontend does, and
// print each finding with its rule, severity and lines.
func ExampleLint() {
	dockerfile := []byte(`FROM debian:bookworm
ARG GIT_SHA
RUN apt-get update
RUN apt-get install -y curl
LABEL revision=$GIT_SHA
`)
	res, err := lint.Lint("Dockerfile", dockerfile, lint.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, f := range res.Findings {
		fmt.Printf("%s %s lines %d-%d fixable=%v\n", f.Rule, f.Severity, f.Start.Line, f.End.Line, f.Fixable)
	}
	// Output:
	// VolatileArgBeforeRun warning lines 2-2 fixable=true
	// PackageIndexUpdateSeparated warning lines 3-3 fixable=true
	// PackageIndexUpdateSeparated warning lines 4-4 fixable=false
	// StableStepAfterVolatileStep info lines 4-4 fixable=false
}

// Apply the fixes and print the rewritten Dockerfile.
func ExampleResult_Fix() {
	res, _ := lint.Lint("Dockerfile", []byte("FROM alpine\nRUN apk update\nRUN apk add curl\n"), lint.Options{})
	fixed := res.Fix()
	os.Stdout.Write(fixed.Dockerfile)
	// Output:
	// FROM alpine
	// RUN apk update && apk add curl
}

// Show what --fix would write, as --diff does; Write would write it.
func ExampleResult_Rewrite() {
	res, _ := lint.Lint("Dockerfile", []byte("FROM alpine\nRUN apk update\nRUN apk add curl\n"), lint.Options{})
	fmt.Print(res.Rewrite().Diff())
	// Output:
	// --- a/Dockerfile
	// +++ b/Dockerfile
	// @@ -1,3 +1,2 @@
	//  FROM alpine
	// -RUN apk update
	// -RUN apk add curl
	// +RUN apk update && apk add curl
}
