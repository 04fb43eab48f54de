package build

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/strata-build/strata/cache/plan"
)

// The solve starts before the cache choice is made only where nothing it
// sets up depends on the choice, and no terminal display would be torn by
// its notes.
func TestStartsBeforeChoice(t *testing.T) {
	file, err := os.Create(filepath.Join(t.TempDir(), "progress"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	pending := Pending(make(chan Choice))
	for _, tc := range []struct {
		name     string
		pending  *PendingChoice
		progress string
		out      io.Writer
		lazy     bool
		want     bool
	}{
		{"no choice", nil, "plain", &bytes.Buffer{}, false, false},
		{"plain", pending, "plain", &bytes.Buffer{}, false, true},
		{"rawjson", pending, "rawjson", &bytes.Buffer{}, false, true},
		{"quiet", pending, "quiet", &bytes.Buffer{}, false, true},
		{"auto into a file", pending, "auto", file, false, true},
		{"auto into a buffer", pending, "", &bytes.Buffer{}, false, true},
		{"tty", pending, "tty", &bytes.Buffer{}, false, false},
		{"lazy builder", pending, "plain", &bytes.Buffer{}, true, false},
	} {
		opt := Options{Pending: tc.pending, Progress: tc.progress}
		if got := startsBeforeChoice(opt, tc.out, tc.lazy); got != tc.want {
			t.Errorf("%s: startsBeforeChoice = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// The imports, the line cached through and the stage come from the choice
// once it is made; a solve whose context ends first stops waiting.
func TestPendingChoice(t *testing.T) {
	ch := make(chan Choice, 1)
	p := Pending(ch)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := lateImports(ctx, p); !errors.Is(err, context.Canceled) {
		t.Fatalf("waiting with an ended context: %v", err)
	}
	stage := &plan.Stage{}
	ch <- Choice{Imports: []AutoImport{{Ref: "r.example/app@sha256:1"}}, CachedThrough: 5, Stage: stage}
	imports, err := lateImports(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if len(imports) != 1 || imports[0].Type != "registry" || imports[0].Attrs["ref"] != "r.example/app@sha256:1" {
		t.Errorf("imports %v, want the one registry ref", imports)
	}
	for noCache, want := range map[bool]int{false: 5, true: 0} {
		got, err := streamLate(p, noCache)(context.Background())
		if err != nil || got.CachedThrough != want || len(got.Imports) != 1 {
			t.Errorf("no-cache %v: %+v, %v; want cached through %d", noCache, got, err, want)
		}
	}
	if p.Wait().Stage != stage {
		t.Error("the stage planned is lost")
	}
}
