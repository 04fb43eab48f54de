package build

import (
	"errors"
	"fmt"
	"strings"

	"github.com/moby/buildkit/client"
	"github.com/tonistiigi/go-csvvalue"
)

// The values of --secret, --ssh and --output, parsed with docker buildx's
// syntax (its util/buildflags package): the same forms are accepted and the
// same errors name the ones that are not.

// Secret is a secret the build's RUN --mount=type=secret steps may read.
type Secret struct {
	ID  string // the id the Dockerfile's mount names
	Src string // a file that holds the value
	Env string // an environment variable that holds the value
}

// ParseSecret parses one --secret value: id=ID[,src=PATH|,env=VAR], also
// source= for src= and type=file|env (type=env with src= names a variable).
// With neither src nor env the value is the variable ID when it is set,
// else the file ID, as BuildKit decides when the build starts.
func ParseSecret(s string) (Secret, error) {
	fields, err := csvvalue.Fields(s, nil)
	if err != nil {
		return Secret{}, fmt.Errorf("failed to parse csv secret: %w", err)
	}
	var sec Secret
	var typ string
	for _, field := range fields {
		key, value, ok := strings.Cut(field, "=")
		key = strings.ToLower(key)
		if !ok {
			return Secret{}, fmt.Errorf("invalid field '%s' must be a key=value pair", field)
		}
		switch key {
		case "type":
			if value != "file" && value != "env" {
				return Secret{}, fmt.Errorf("unsupported secret type %q", value)
			}
			typ = value
		case "id":
			sec.ID = value
		case "source", "src":
			sec.Src = value
		case "env":
			sec.Env = value
		default:
			return Secret{}, fmt.Errorf("unexpected key '%s' in '%s'", key, field)
		}
	}
	if typ == "env" && sec.Env == "" {
		sec.Env, sec.Src = sec.Src, ""
	}
	return sec, nil
}

// SSH is an SSH agent the build's RUN --mount=type=ssh steps may use.
type SSH struct {
	ID    string   // the id the Dockerfile's mount names; "" or "default" for the default
	Paths []string // agent sockets or key files; none: $SSH_AUTH_SOCK
}

// ParseSSH parses one --ssh value: default, ID, or ID=PATH[,PATH...]. Every
// value has a meaning; whether its paths can be used is known when the
// build starts.
func ParseSSH(s string) SSH {
	id, paths, ok := strings.Cut(s, "=")
	out := SSH{ID: id}
	if ok {
		out.Paths = strings.Split(paths, ",")
	}
	return out
}

// Output is an extra export of the build's result.
type Output struct {
	Type  string            // local, tar, oci, docker, image or registry
	Dest  string            // the directory or file written; "-": standard output
	Attrs map[string]string // the exporter's other attributes
}

// ParseOutput parses one --output value: type=TYPE[,dest=PATH][,KEY=VALUE...],
// a bare PATH (type=local,dest=PATH) or - (type=tar to standard output).
func ParseOutput(s string) (Output, error) {
	fields, err := csvvalue.Fields(s, nil)
	if err != nil {
		return Output{}, err
	}
	out := Output{Attrs: map[string]string{}}
	if len(fields) == 1 && fields[0] == s && !strings.HasPrefix(s, "type=") {
		out.Type, out.Dest = client.ExporterLocal, s
		if s == "-" {
			out.Type = client.ExporterTar
		}
		return out, nil
	}
	for _, field := range fields {
		key, value, ok := strings.Cut(field, "=")
		if !ok {
			return Output{}, fmt.Errorf("invalid value %s", field)
		}
		switch key = strings.TrimSpace(strings.ToLower(key)); key {
		case "type":
			out.Type = value
		case "dest":
			out.Dest = value
		default:
			out.Attrs[key] = value
		}
	}
	if out.Type == "" {
		return Output{}, errors.New("type is required for output")
	}
	return out, nil
}

// ExportsImage reports whether the build writes an image (a tag, or an
// image, registry, oci or docker output), whose ID --iidfile records.
func (o Options) ExportsImage() bool {
	if len(o.Tags) > 0 {
		return true
	}
	for _, out := range o.Outputs {
		switch out.Type {
		case "image", "registry", "oci", "docker":
			return true
		}
	}
	return false
}
