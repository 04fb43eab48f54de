package build

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strconv"

	"github.com/moby/buildkit/client"
	"golang.org/x/term"
)

// exports turns outputs into BuildKit's export entries by docker buildx's
// rules (its build.CreateExports): local writes a directory; tar, and oci
// and docker unless tar=false, write a file, or standard output for dest
// "-" (also for no dest, but for docker); registry is image with push=true.
// A file is created only when BuildKit sends its first bytes, so exports
// can check outputs without writing anything.
func exports(outputs []Output) ([]client.ExportEntry, error) {
	var entries []client.ExportEntry
	stdoutUsed := false
	for _, o := range outputs {
		e, err := export(o, &stdoutUsed)
		if err != nil {
			return nil, err
		}
		entries = append(entries, e)
	}
	return entries, nil
}

func export(o Output, stdoutUsed *bool) (client.ExportEntry, error) {
	if o.Type == "" {
		return client.ExportEntry{}, errors.New("type is required for output")
	}
	e := client.ExportEntry{Type: o.Type, Attrs: map[string]string{}}
	maps.Copy(e.Attrs, o.Attrs)
	toDir, toFile := false, false
	switch e.Type {
	case client.ExporterLocal:
		toDir = true
	case client.ExporterTar:
		toFile = true
	case client.ExporterOCI, client.ExporterDocker:
		tar, err := strconv.ParseBool(e.Attrs["tar"])
		if err != nil {
			tar = true
		}
		toFile, toDir = tar, !tar
	case "registry":
		e.Type = client.ExporterImage
		e.Attrs["push"] = "true"
		if _, ok := e.Attrs["unpack"]; !ok {
			e.Attrs["unpack"] = "false" // nothing to unpack when only pushing
		}
	}
	var err error
	switch {
	case toDir:
		e.OutputDir, err = exportDir(e.Type, o.Dest)
	case toFile:
		e.Output, err = exportFile(e.Type, o.Dest, stdoutUsed)
	}
	return e, err
}

// exportDir checks the directory an exporter writes.
func exportDir(typ, dest string) (string, error) {
	if dest == "" {
		return "", fmt.Errorf("dest is required for %s exporter", typ)
	}
	if dest == "-" {
		return "", fmt.Errorf("dest cannot be stdout for %s exporter", typ)
	}
	fi, err := os.Stat(dest)
	if err != nil && !os.IsNotExist(err) {
		return "", fmt.Errorf("invalid destination directory: %s: %w", dest, err)
	}
	if err == nil && !fi.IsDir() {
		return "", fmt.Errorf("destination directory %s is a file", dest)
	}
	return dest, nil
}

// exportFile checks the file an exporter writes and returns its writer;
// nil for a docker export with no dest.
func exportFile(typ, dest string, stdoutUsed *bool) (func(map[string]string) (io.WriteCloser, error), error) {
	if dest == "" && typ != client.ExporterDocker {
		dest = "-"
	}
	switch dest {
	case "":
		return nil, nil
	case "-":
		if *stdoutUsed {
			return nil, errors.New("multiple outputs configured to write to stdout")
		}
		if term.IsTerminal(int(os.Stdout.Fd())) {
			return nil, fmt.Errorf("dest file is required for %s exporter. refusing to write to console", typ)
		}
		*stdoutUsed = true
		return func(map[string]string) (io.WriteCloser, error) { return os.Stdout, nil }, nil
	}
	fi, err := os.Stat(dest)
	if err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("invalid destination file: %s: %w", dest, err)
	}
	if err == nil && fi.IsDir() {
		return nil, fmt.Errorf("destination file %s is a directory", dest)
	}
	return func(map[string]string) (io.WriteCloser, error) { return &lazyFile{path: dest}, nil }, nil
}

// lazyFile creates its file, and the directories above it, at the first
// write.
type lazyFile struct {
	path string
	f    *os.File
}

func (w *lazyFile) Write(p []byte) (int, error) {
	if w.f == nil {
		if err := os.MkdirAll(filepath.Dir(w.path), 0o755); err != nil {
			return 0, err
		}
		f, err := os.Create(w.path)
		if err != nil {
			return 0, err
		}
		w.f = f
	}
	return w.f.Write(p)
}

func (w *lazyFile) Close() error {
	if w.f == nil {
		return nil
	}
	return w.f.Close()
}
