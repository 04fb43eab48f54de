package lint

import (
	"reflect"
	"testing"
)

func strp(s string) *string { return &s }

func TestBakeHCL(t *testing.T) {
	src := `# comment
variable "TAG" {
  default = "latest"
}
variable "DIR" { default = "services" }
variable "FROM_ENV" {}

group "default" {
  targets = ["api", "web"]
}

/* a block comment with target "x" { context = "nope" } inside */
target "_common" {
  context = "."
  labels = {
    "org.opencontainers.image.source" = "https://example.com/${TAG}"
  }
  platforms = ["linux/amd64", "linux/arm64"]
}

target "api" {
  inherits   = ["_common"]
  dockerfile = "${DIR}/api/Dockerfile" // trailing comment
  args = {
    GO_VERSION = "1.26"
    TAG        = TAG
    COMPUTED   = upper("x")
  }
  tags = ["example/api:${TAG}"]
  secret = [{ id = "npm", src = "~/.npmrc" }]
  attest = <<-EOT
    type=provenance,mode=max
  EOT
}

target "web" {
  context    = FROM_ENV
  dockerfile = notequal("a", "b") ? "x" : "y"
  cache-from = ["type=gha"]
}

target "escaped" {
  context    = "dir with \"quotes\" and $${literal}"
  dockerfile = "%{ if true }x%{ endif }"
}
`
	got := bakeHCL([]byte(src))
	want := map[string]*bakeTarget{
		"_common": {Context: strp(".")},
		"api":     {Dockerfile: strp("services/api/Dockerfile"), Inherits: []string{"_common"}, Args: map[string]string{"GO_VERSION": "1.26", "TAG": "latest"}},
		"web":     {},
		"escaped": {Context: strp(`dir with "quotes" and ${literal}`)},
	}
	if !reflect.DeepEqual(got, want) {
		for k, v := range got {
			t.Logf("%s: context=%v dockerfile=%v inherits=%v args=%v", k, deref(v.Context), deref(v.Dockerfile), v.Inherits, v.Args)
		}
		t.Errorf("bakeHCL differs from %v", want)
	}
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

func FuzzBakeHCL(f *testing.F) {
	for _, s := range []string{
		`target "a" { context = "." dockerfile = "x/Dockerfile" }`,
		"target \"a\" {\n context = \"${V}\"\n args = { A = \"1\", B = [1, 2] }\n}\nvariable \"V\" { default = \"d\" }\n",
		"target \"a\" {\n x = <<EOT\nbody\nEOT\n}\n",
		`[ ) ] { : } "${"`,
		"target a {\n context = f(\"(\", [\"]\"])\n}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, dt []byte) {
		bakeHCL(dt) // must return, without panicking
	})
}

// FuzzBuildFiles feeds outside input to the compose, bake (JSON) and
// workflow readers.
func FuzzBuildFiles(f *testing.F) {
	for _, s := range []string{
		"services:\n  web:\n    build:\n      context: ..\n      dockerfile: docker/Dockerfile\n      args: [A=1]\n",
		"services:\n  web:\n    build: ${DIR:-./web}\n",
		`{"target": {"a": {"context": ".", "dockerfile": "Dockerfile", "inherits": ["b"]}, "b": {"inherits": ["a"]}}}`,
		"jobs:\n  b:\n    steps:\n      - uses: docker/build-push-action@v6\n        with: {context: ., file: x/Dockerfile}\n      - run: docker build -f a/Dockerfile --build-arg X=1 .\n",
		"{\"build\": {\"dockerfile\": \"Dockerfile\", \"context\": \"..\",}} // x\n",
		"steps:\n  publish:\n    image: woodpeckerci/plugin-docker-buildx:6\n    settings: {dockerfile: d/Dockerfile, build_args: [A=1]}\n",
		"steps:\n- name: b\n  image: plugins/docker\n  settings: {context: web, build_args: {A: 1}}\n- name: c\n  commands: [docker build .]\n",
	} {
		f.Add([]byte(s))
	}
	root := f.TempDir()
	f.Fuzz(func(t *testing.T, dt []byte) {
		composeBuilds(root, root+"/compose.yaml", dt)
		bakeBuilds(root, root+"/docker-bake.json", dt)
		workflowBuilds(root, root+"/.github/workflows/ci.yml", dt)
		pipelineBuilds(root, root+"/.woodpecker.yml", dt)
		devcontainerBuilds(root, root+"/.devcontainer/devcontainer.json", dt)
	})
}
