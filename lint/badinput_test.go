package lint

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-build/strata/errs"
)

func TestBadInput(t *testing.T) {
	size := 10 << 20
	if testing.Short() {
		size = 1 << 20
	}
	big := bytes.Repeat([]byte("RUN echo hello world && apt-get install -y curl\n"), size/48)
	tests := []struct {
		name     string
		dt       []byte
		parseErr bool
		line     int
	}{
		{"empty", nil, true, 0},
		{"only comments", []byte("# nothing\n"), true, 0},
		{"binary", []byte{0, 1, 2, 0xff, 0xfe, '\n', 'F', 'R', 'O', 'M'}, true, 1},
		{"invalid utf-8 in RUN", []byte("FROM alpine\nRUN echo \xff\xfe\xfd > /x\n"), false, 0},
		{"unterminated heredoc", []byte("FROM alpine\nRUN <<EOF\necho hi\n"), true, 2},
		{"unknown instruction", []byte("FROM alpine\nFOO bar\n"), true, 2},
		{"instruction before FROM", []byte("RUN echo\n"), true, 1},
		{"10 MB", append([]byte("FROM debian\n"), big...), false, 0},
		{"10 MB single line", append([]byte("FROM debian\nRUN echo "), bytes.Repeat([]byte("a"), 10<<20)...), true, 0},
		{"bad shell", []byte("FROM alpine\nRUN if then fi (( ]]\n"), false, 0},
		{"bad mount", []byte("FROM alpine\nRUN --mount=type=nope echo\n"), true, 2},
		{"heredoc COPY", []byte("FROM alpine\nCOPY <<EOF /x\nhello\nEOF\n"), false, 0},
		{"nested sh -c", []byte("FROM alpine\nRUN sh -c 'sh -c \"sh -c \\\"sh -c date > /x\\\"\"'\n"), false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Lint("Dockerfile", tt.dt, Options{})
			if !tt.parseErr {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if res == nil {
					t.Fatal("nil result")
				}
				return
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("want a ParseError, got %v", err)
			}
			if !errors.Is(err, errs.ErrInput) || errs.Code(err) != errs.ExitUsage {
				t.Errorf("parse errors must exit 2, got %d", errs.Code(err))
			}
			if pe.File != "Dockerfile" || tt.line > 0 && pe.Line != tt.line {
				t.Errorf("error %q: want file Dockerfile line %d", err, tt.line)
			}
			if len(err.Error()) > 400 {
				t.Errorf("error too long: %d bytes", len(err.Error()))
			}
		})
	}
}

func TestUnreadableContext(t *testing.T) {
	_, err := Lint("Dockerfile", []byte("FROM alpine\nCOPY . /\n"), Options{ContextDir: filepath.Join(t.TempDir(), "missing")})
	if err == nil || errs.Code(err) != errs.ExitUsage {
		t.Errorf("missing context: want an input error, got %v", err)
	}
	if os.Geteuid() == 0 {
		return
	}
	dir := t.TempDir()
	locked := filepath.Join(dir, "locked")
	if err := os.Mkdir(locked, 0); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(locked, 0o755)
	_, err = Lint("Dockerfile", []byte("FROM alpine\nCOPY . /\n"), Options{ContextDir: dir})
	if err == nil || !strings.Contains(err.Error(), "locked") {
		t.Errorf("unreadable directory: want an error naming it, got %v", err)
	}
}
