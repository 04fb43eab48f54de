package build_test

import (
	"fmt"

	"github.com/strata-build/strata/build"
)

// Parse flag values as docker buildx build reads them; a value buildx
// refuses gets buildx's error. Parsing reads the syntax only: where an
// output writes (type=local needs a dest) is checked by Options.Validate.
func ExampleParseOutput() {
	for _, v := range []string{"type=image,name=registry.example.com/app:v1,push=true", "out", "type=local"} {
		o, err := build.ParseOutput(v)
		fmt.Printf("%+v %v\n", o, err)
	}
	_, err := build.ParseOutput("dest=out,tar=false")
	fmt.Println(err)
	s, _ := build.ParseSecret("type=env,id=token,src=GITHUB_TOKEN")
	fmt.Printf("%+v\n", s)
	fmt.Printf("%+v\n", build.ParseSSH("deploy=/run/agent.sock"))
	// Output:
	// {Type:image Dest: Attrs:map[name:registry.example.com/app:v1 push:true]} <nil>
	// {Type:local Dest:out Attrs:map[]} <nil>
	// {Type:local Dest: Attrs:map[]} <nil>
	// type is required for output
	// {ID:token Src: Env:GITHUB_TOKEN}
	// {ID:deploy Paths:[/run/agent.sock]}
}
