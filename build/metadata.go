package build

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/strata-build/strata/errs"
)

// Metadata is what --metadata-file holds: BuildKit's exporter response, with
// values that are base64-encoded JSON decoded as docker buildx does, plus a
// "strata" object with strata's own measurements.
func (r *Result) Metadata() map[string]any {
	m := make(map[string]any, len(r.ExporterResponse)+1)
	for k, v := range r.ExporterResponse {
		m[k] = decodeExporterValue(v)
	}
	st := map[string]any{
		"version": 1,
		"timings": r.Timings,
		"steps":   r.Steps,
		"pulled":  r.Pulled,
	}
	if r.Push != nil {
		st["push"] = r.Push
	}
	if r.AutoCache != nil {
		st["autoCache"] = r.AutoCache
	}
	if r.CacheSource != "" {
		st["cacheSource"] = r.CacheSource
	}
	m["strata"] = st
	return m
}

func decodeExporterValue(v string) any {
	dt, err := base64.StdEncoding.DecodeString(v)
	if err != nil || len(dt) == 0 || !json.Valid(dt) {
		return v
	}
	var raw json.RawMessage = dt
	return raw
}

// WriteMetadata writes r's metadata as indented JSON to path, atomically.
func WriteMetadata(path string, r *Result) error {
	dt, err := json.MarshalIndent(r.Metadata(), "", "  ")
	if err != nil {
		return err
	}
	return writeFile(path, "metadata file", append(dt, '\n'))
}

// WriteImageID writes the image ID to path, as docker buildx build
// --iidfile does: the digest of the image's config, else of its manifest.
func WriteImageID(path string, r *Result) error {
	id := cmp.Or(r.ExporterResponse["containerimage.config.digest"], r.ExporterResponse["containerimage.digest"])
	if id == "" {
		return errs.WithHint(errs.Inputf("--iidfile %s: the build exported no image", path), "pass -t or --output type=image|oci|docker")
	}
	return writeFile(path, "--iidfile", []byte(id))
}

// writeFile replaces path with data, whole or not at all.
func writeFile(path, what string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".strata-*")
	if err != nil {
		return errs.WithHint(errs.Inputf("%s %s: %v", what, path, err), "pass a path in a writable directory")
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("%s %s: %w", what, path, err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// CheckOutputFile reports an input error, before anything is built, when
// the file flag names ("" for none) cannot be written: its directory does
// not exist, or it is a directory itself.
func CheckOutputFile(flag, path string) error {
	if path == "" {
		return nil
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return errs.WithHint(errs.Inputf("%s %s is a directory", flag, path), "name a file")
	}
	dir := filepath.Dir(path)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return errs.WithHint(errs.Inputf("%s %s: directory %s does not exist", flag, path, dir), "create it, or name a file in a directory that exists")
	}
	return nil
}
