package build

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/docker/buildx/util/buildflags"

	"github.com/strata-build/strata/errs"
)

// parseCase is one value of a flag, what it parses to, or its error.
type parseCase[T any] struct {
	in   string
	want T
	err  string
}

func testParse[T any](t *testing.T, name string, parse func(string) (T, error), cases []parseCase[T]) {
	t.Helper()
	for _, tc := range cases {
		got, err := parse(tc.in)
		switch {
		case tc.err != "" && (err == nil || err.Error() != tc.err):
			t.Errorf("%s(%q) = %+v, %v; want the error %q", name, tc.in, got, err, tc.err)
		case tc.err == "" && (err != nil || !reflect.DeepEqual(got, tc.want)):
			t.Errorf("%s(%q) = %+v, %v; want %+v", name, tc.in, got, err, tc.want)
		}
	}
}

func TestParseSecret(t *testing.T) {
	testParse(t, "ParseSecret", ParseSecret, []parseCase[Secret]{
		{in: "id=token,src=/run/token", want: Secret{ID: "token", Src: "/run/token"}},
		{in: "id=token,source=/run/token", want: Secret{ID: "token", Src: "/run/token"}},
		{in: "id=tok,env=TOKEN", want: Secret{ID: "tok", Env: "TOKEN"}},
		{in: "id=tok", want: Secret{ID: "tok"}},
		{in: "type=file,id=key,src=key.pem", want: Secret{ID: "key", Src: "key.pem"}},
		{in: "type=env,id=tok,src=TOKEN", want: Secret{ID: "tok", Env: "TOKEN"}},
		{in: "type=env,id=tok,env=TOKEN,src=ignored", want: Secret{ID: "tok", Env: "TOKEN", Src: "ignored"}},
		{in: "ID=tok,SRC=f", want: Secret{ID: "tok", Src: "f"}},
		{in: `id=tok,"src=a,b"`, want: Secret{ID: "tok", Src: "a,b"}},
		{in: "id=a=b", want: Secret{ID: "a=b"}},
		{in: "src=/run/token", want: Secret{Src: "/run/token"}},
		{in: "token", err: "invalid field 'token' must be a key=value pair"},
		{in: "id=tok,type=ssh", err: `unsupported secret type "ssh"`},
		{in: "id=tok,dest=x", err: "unexpected key 'dest' in 'dest=x'"},
		{in: "id=tok,Mode=0400", err: "unexpected key 'mode' in 'Mode=0400'"},
		{in: `id="tok`, err: "failed to parse csv secret: parse error on line 1, column 4: bare \" in non-quoted-field"},
		{in: "", err: "failed to parse csv secret: EOF"},
	})
}

func TestParseSSH(t *testing.T) {
	parse := func(s string) (SSH, error) { return ParseSSH(s), nil }
	testParse(t, "ParseSSH", parse, []parseCase[SSH]{
		{in: "default", want: SSH{ID: "default"}},
		{in: "github", want: SSH{ID: "github"}},
		{in: "default=/run/agent.sock", want: SSH{ID: "default", Paths: []string{"/run/agent.sock"}}},
		{in: "deploy=~/.ssh/a,~/.ssh/b", want: SSH{ID: "deploy", Paths: []string{"~/.ssh/a", "~/.ssh/b"}}},
		{in: "=/run/agent.sock", want: SSH{Paths: []string{"/run/agent.sock"}}},
		{in: "deploy=", want: SSH{ID: "deploy", Paths: []string{""}}},
		{in: "a=b=c", want: SSH{ID: "a", Paths: []string{"b=c"}}},
		{in: "", want: SSH{}},
	})
}

func TestParseOutput(t *testing.T) {
	none := map[string]string{}
	testParse(t, "ParseOutput", ParseOutput, []parseCase[Output]{
		{in: "type=local,dest=out", want: Output{Type: "local", Dest: "out", Attrs: none}},
		{in: "out", want: Output{Type: "local", Dest: "out", Attrs: none}},
		{in: "dest=out", want: Output{Type: "local", Dest: "dest=out", Attrs: none}},
		{in: "-", want: Output{Type: "tar", Dest: "-", Attrs: none}},
		{in: "type=tar,dest=img.tar", want: Output{Type: "tar", Dest: "img.tar", Attrs: none}},
		{in: "type=oci,dest=dir,tar=false", want: Output{Type: "oci", Dest: "dir", Attrs: map[string]string{"tar": "false"}}},
		{in: "type=image,name=r/a:1,push=true", want: Output{Type: "image", Attrs: map[string]string{"name": "r/a:1", "push": "true"}}},
		{in: "type=registry,name=r/a:1", want: Output{Type: "registry", Attrs: map[string]string{"name": "r/a:1"}}},
		{in: `type=image,"name=r/a:1,r/a:2"`, want: Output{Type: "image", Attrs: map[string]string{"name": "r/a:1,r/a:2"}}},
		{in: "type=local, Dest =out,Mode=copy", want: Output{Type: "local", Dest: "out", Attrs: map[string]string{"mode": "copy"}}},
		{in: "type=", err: "type is required for output"},
		{in: "dest=out,tar=false", err: "type is required for output"},
		{in: "type=local,out", err: "invalid value out"},
		{in: `type=local,dest="out`, err: `parse error on line 1, column 17: bare " in non-quoted-field`},
		{in: "", err: "EOF"},
	})
}

// The exports follow buildx's rules for where each exporter writes, and
// check them without writing anything.
func TestExports(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tarFile := filepath.Join(dir, "sub", "img.tar")
	got, err := exports([]Output{
		{Type: "local", Dest: dir},
		{Type: "tar", Dest: tarFile},
		{Type: "oci", Dest: dir, Attrs: map[string]string{"tar": "false"}},
		{Type: "registry", Attrs: map[string]string{"name": "r/a:1"}},
		{Type: "docker"},
		{Type: "tar"}, // standard output: not a terminal under go test
	})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].OutputDir != dir || got[2].OutputDir != dir || got[1].Output == nil || got[3].Output != nil || got[4].Output != nil || got[5].Output == nil {
		t.Errorf("destinations: %+v", got)
	}
	if a := got[3].Attrs; got[3].Type != "image" || a["push"] != "true" || a["unpack"] != "false" || a["name"] != "r/a:1" {
		t.Errorf("registry export = %+v, want an image pushed and not unpacked", got[3])
	}
	if _, err := os.Stat(filepath.Dir(tarFile)); !os.IsNotExist(err) {
		t.Errorf("exports wrote before the build: %v", err)
	}
	w, err := got[1].Output(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("tar")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if dt, err := os.ReadFile(tarFile); err != nil || string(dt) != "tar" {
		t.Errorf("tar file = %q, %v", dt, err)
	}

	for _, tc := range []struct {
		outs []Output
		err  string
	}{
		{[]Output{{Type: "local"}}, "dest is required for local exporter"},
		{[]Output{{Type: "oci", Attrs: map[string]string{"tar": "false"}}}, "dest is required for oci exporter"},
		{[]Output{{Type: "local", Dest: "-"}}, "dest cannot be stdout for local exporter"},
		{[]Output{{Type: "local", Dest: file}}, "destination directory " + file + " is a file"},
		{[]Output{{Type: "tar", Dest: dir}}, "destination file " + dir + " is a directory"},
		{[]Output{{Type: "tar"}, {Type: "oci", Dest: "-"}}, "multiple outputs configured to write to stdout"},
		{[]Output{{Dest: dir}}, "type is required for output"},
	} {
		if _, err := exports(tc.outs); err == nil || err.Error() != tc.err {
			t.Errorf("exports(%+v) = %v, want %q", tc.outs, err, tc.err)
		}
	}
}

// Options that no builder could build are usage errors before a builder
// is contacted.
func TestValidateEntries(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		opt  Options
		want string
	}{
		{Options{Secrets: []Secret{{Src: "f"}}}, "--secret: secret missing ID"},
		{Options{SSH: []SSH{{ID: "default"}, {}}}, `--ssh: duplicate agent ID "default"`},
		{Options{Outputs: []Output{{Type: "local"}}}, "--output: dest is required for local exporter"},
		{Options{CacheFrom: []string{"type=registry,x"}}, `"x" is not KEY=VALUE`},
		{Options{Compression: "brotli"}, "--compression=brotli"},
	} {
		tc.opt.ContextDir = dir
		err := tc.opt.Validate()
		if !errors.Is(err, errs.ErrUsage) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want a usage error naming %q", tc.opt, err, tc.want)
		}
	}
	ok := Options{ContextDir: dir, Secrets: []Secret{{ID: "a"}}, SSH: []SSH{{ID: "default"}, {ID: "deploy"}}, Outputs: []Output{{Type: "local", Dest: dir}}}
	if err := ok.Validate(); err != nil {
		t.Errorf("Validate(%+v) = %v", ok, err)
	}
}

// FuzzEntriesAsBuildx parses arbitrary flag values with ParseSecret,
// ParseSSH and ParseOutput and with docker buildx's own parser: both
// accept the same values, read them the same way and refuse the rest with
// the same error.
func FuzzEntriesAsBuildx(f *testing.F) {
	for _, s := range []string{"id=a,src=b", "type=env,id=a,src=B", "default=/a,/b", "type=local,dest=out", "out", "-",
		"type=image,name=r/a:1,push=true", `type=local,"dest=a,b"`, "x", "a=b=c", `"`, ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if s == "" {
			return // buildx skips empty values before parsing
		}
		sec, err := ParseSecret(s)
		bs, berr := buildflags.ParseSecretSpecs([]string{s})
		if !sameError(err, berr) || err == nil && (Secret{ID: bs[0].ID, Src: bs[0].FilePath, Env: bs[0].Env}) != sec {
			t.Fatalf("ParseSecret(%q) = %+v, %v; buildx: %+v, %v", s, sec, err, bs, berr)
		}
		ssh := ParseSSH(s)
		bh, _ := buildflags.ParseSSHSpecs([]string{s})
		if ssh.ID != bh[0].ID || !reflect.DeepEqual(ssh.Paths, bh[0].Paths) {
			t.Fatalf("ParseSSH(%q) = %+v; buildx: %+v", s, ssh, bh[0])
		}
		out, err := ParseOutput(s)
		bo, berr := buildflags.ParseExports([]string{s})
		if !sameError(err, berr) || err == nil && !reflect.DeepEqual(out, Output{Type: bo[0].Type, Dest: bo[0].Destination, Attrs: bo[0].Attrs}) {
			t.Fatalf("ParseOutput(%q) = %+v, %v; buildx: %+v, %v", s, out, err, bo, berr)
		}
	})
}

func sameError(a, b error) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Error() == b.Error()
}
