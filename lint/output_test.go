package lint

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

func sampleResults(t *testing.T) []*Result {
	t.Helper()
	dir := filepath.Join("testdata", "UnpinnedRemoteInRun", "positive")
	res, err := LintFile(filepath.Join(dir, "Dockerfile"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	res2, err := Lint("other/Dockerfile", []byte("FROM alpine\nRUN apt-get update\nRUN apt-get install -y curl\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	return []*Result{res, res2}
}

func write(t *testing.T, format string, rs []*Result) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := Write(&b, format, rs, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// The SARIF 2.1.0 schema in testdata is the OASIS schema as shipped in the
// npm package @microsoft/jest-sarif.
func TestSARIFValidatesAgainstSchema(t *testing.T) {
	f, err := os.Open("testdata/sarif-schema-2.1.0.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("sarif.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("sarif.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, rs := range [][]*Result{sampleResults(t), nil} {
		out := write(t, "sarif", rs)
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(out))
		if err != nil {
			t.Fatal(err)
		}
		if err := sch.Validate(inst); err != nil {
			t.Errorf("SARIF output does not validate: %v\n%s", err, out)
		}
	}
}

func TestJSONSchemaIsStable(t *testing.T) {
	out := write(t, "json", sampleResults(t))
	var doc struct {
		Version  int              `json:"version"`
		Findings []map[string]any `json:"findings"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Version != 2 || len(doc.Findings) == 0 {
		t.Fatalf("bad document: %s", out)
	}
	want := []string{"column", "context", "endLine", "file", "fixable", "line", "message", "rule", "severity", "url"}
	for _, f := range doc.Findings {
		if len(f) != len(want) {
			t.Errorf("finding has keys %v, want exactly %v", f, want)
		}
		for _, k := range want {
			if _, ok := f[k]; !ok {
				t.Errorf("finding lacks %q: %v", k, f)
			}
		}
	}
	for _, f := range doc.Findings {
		ctx, _ := f["context"].(map[string]any)
		if ctx == nil || ctx["reason"] != NoContextReason || ctx["dir"] != "" {
			t.Errorf("finding context %v, want none with reason %q", f["context"], NoContextReason)
		}
	}
	empty := write(t, "json", nil)
	if !strings.Contains(string(empty), `"findings": []`) || !strings.Contains(string(empty), `"files": []`) {
		t.Errorf("no findings must give an empty list, got %s", empty)
	}
}

func TestSARIFCarriesContext(t *testing.T) {
	rs := sampleResults(t)
	rs[0].ContextInfo = ContextInfo{Dir: "app", Reason: "named by compose.yaml, service web"}
	for i := range rs[0].Findings {
		rs[0].Findings[i].File = rs[0].File
	}
	var doc struct {
		Runs []struct {
			Results []struct {
				Locations []struct {
					PhysicalLocation struct {
						ArtifactLocation struct {
							URI string `json:"uri"`
						} `json:"artifactLocation"`
					} `json:"physicalLocation"`
				} `json:"locations"`
				Properties struct {
					Context ContextInfo `json:"context"`
				} `json:"properties"`
			} `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(write(t, "sarif", rs), &doc); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range doc.Runs[0].Results {
		want := ContextInfo{Reason: NoContextReason}
		if r.Locations[0].PhysicalLocation.ArtifactLocation.URI == strings.TrimPrefix(toSlash(rs[0].File), "./") {
			want = rs[0].ContextInfo
			n++
		}
		if r.Properties.Context != want {
			t.Errorf("result context %+v, want %+v", r.Properties.Context, want)
		}
	}
	if n == 0 {
		t.Error("no result of the first file")
	}
}

func TestGitHubAnnotations(t *testing.T) {
	out := string(write(t, "github", sampleResults(t)))
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.HasPrefix(l, "::warning file=") && !strings.HasPrefix(l, "::error file=") && !strings.HasPrefix(l, "::notice file=") {
			t.Errorf("not an annotation: %q", l)
		}
		if !strings.Contains(l, ",line=") {
			t.Errorf("annotation without line: %q", l)
		}
	}
}

func TestCheckstyleIsXML(t *testing.T) {
	out := write(t, "checkstyle", sampleResults(t))
	var v struct {
		Files []struct {
			Name   string `xml:"name,attr"`
			Errors []struct {
				Line int `xml:"line,attr"`
			} `xml:"error"`
		} `xml:"file"`
	}
	if err := xml.Unmarshal(out, &v); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(v.Files) != 2 || len(v.Files[0].Errors) == 0 || v.Files[0].Errors[0].Line == 0 {
		t.Errorf("unexpected checkstyle: %s", out)
	}
}

func TestTextShowsSourceAndCaret(t *testing.T) {
	out := string(write(t, "text", sampleResults(t)))
	if !strings.Contains(out, "other/Dockerfile: no build context ("+NoContextReason+")\n") ||
		!strings.Contains(out, "other/Dockerfile:2:1: warning PackageIndexUpdateSeparated:") ||
		!strings.Contains(out, "   2 | RUN apt-get update\n       | ^\n") {
		t.Errorf("text output:\n%s", out)
	}
	var b bytes.Buffer
	if err := Write(&b, "text", sampleResults(t), WriteOptions{Color: true}); err != nil || !strings.Contains(b.String(), "\x1b[") {
		t.Errorf("colour requested but not used")
	}
	if err := Write(&b, "yaml", nil, WriteOptions{}); err == nil {
		t.Error("unknown format: want error")
	}
}

// git apply takes every diff and gives the new content, with and without
// final newlines on either side.
func TestUnifiedDiffApplies(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	cases := [][2]string{
		{"FROM a\nRUN x\nCMD x", "FROM a\nRUN y\nRUN x\nCMD x"},
		{"FROM a\nCMD x", "FROM a\nRUN y\nCMD x\n"},
		{"FROM a\nCMD x\n", "FROM a\nCMD x"},
		{"node_modules", "node_modules\n# added by strata lint --fix\n.git\n"},
		{"1\n2\n3\n4\n5\n6\n7\n8\n9\n10", "0\n1\n2\n3\n4\n5\n6\n7\n8\n9\n10"},
	}
	for i, c := range cases {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "f"), []byte(c[0]), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("git", "apply", "-")
		cmd.Dir, cmd.Stdin = dir, strings.NewReader(UnifiedDiff("f", []byte(c[0]), []byte(c[1])))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("case %d: git apply: %v\n%s\n%s", i, err, out, UnifiedDiff("f", []byte(c[0]), []byte(c[1])))
			continue
		}
		if got, _ := os.ReadFile(filepath.Join(dir, "f")); string(got) != c[1] {
			t.Errorf("case %d: applied %q, want %q", i, got, c[1])
		}
	}
}

func TestUnifiedDiff(t *testing.T) {
	a := []byte("FROM a\nRUN x\nRUN y\nCOPY . .\n")
	b := []byte("FROM a\nCOPY p ./\nRUN y\nCOPY . .\nRUN x\n")
	want := "--- a/Dockerfile\n+++ b/Dockerfile\n@@ -1,4 +1,5 @@\n FROM a\n-RUN x\n+COPY p ./\n RUN y\n COPY . .\n+RUN x\n"
	if got := UnifiedDiff("Dockerfile", a, b); got != want {
		t.Errorf("diff:\n%s\nwant\n%s", got, want)
	}
	if UnifiedDiff("x", a, a) != "" {
		t.Error("equal inputs must give no diff")
	}
	// A last line with no newline after it: the diff says so, and the
	// line differs from the same line with one.
	noEOL := "--- a/Dockerfile\n+++ b/Dockerfile\n@@ -1,2 +1,3 @@\n FROM a\n-CMD x\n\\ No newline at end of file\n+RUN y\n+CMD x\n"
	if got := UnifiedDiff("Dockerfile", []byte("FROM a\nCMD x"), []byte("FROM a\nRUN y\nCMD x\n")); got != noEOL {
		t.Errorf("diff of a file with no final newline:\n%s\nwant\n%s", got, noEOL)
	}
	// An absolute path keeps its place under a/ and b/ (patch -p1 -d /).
	if got := UnifiedDiff("/srv/app/Dockerfile", a, b); !strings.HasPrefix(got, "--- a/srv/app/Dockerfile\n+++ b/srv/app/Dockerfile\n") {
		t.Errorf("diff of an absolute path:\n%s", got)
	}
}
