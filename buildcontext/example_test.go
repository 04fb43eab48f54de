package buildcontext_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/strata-build/strata/buildcontext"
)

// List the files BuildKit receives from a context with a .dockerignore.
func ExampleOpen() {
	dir, _ := os.MkdirTemp("", "ctx")
	defer os.RemoveAll(dir)
	for name, body := range map[string]string{
		"Dockerfile":          "FROM scratch\n",
		".dockerignore":       "# comment\n//node_modules\n*.log\n!keep.log\n",
		"main.go":             "package main\n",
		"debug.log":           "x\n",
		"keep.log":            "x\n",
		"node_modules/a/b.js": "x\n",
	} {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(body), 0o644)
	}
	c, err := buildcontext.Open(dir, "")
	if err != nil {
		fmt.Println(err)
		return
	}
	files, _ := c.Files()
	fmt.Println(filepath.Base(c.IgnoreFile()), c.Patterns())
	fmt.Println(files)
	// Output:
	// .dockerignore [node_modules *.log !keep.log]
	// [.dockerignore Dockerfile keep.log main.go]
}
