package cache

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestNormalizeCreatedBy(t *testing.T) {
	for _, tc := range []struct{ in, text, sources string }{
		// BuildKit v0.33 (dockerfile2llb commitToHistory)
		{"RUN /bin/sh -c make # buildkit", "RUN /bin/sh -c make", ""},
		{"RUN |2 A=1 B=2 /bin/sh -c echo $A # buildkit", "RUN |2 A=1 B=2 /bin/sh -c echo $A", ""},
		{"RUN /bin/sh -c echo exec > /exec # buildkit", "RUN /bin/sh -c echo exec > /exec", ""},
		{"COPY main.txt . # buildkit", "COPY main.txt .", ""},
		{"COPY --chown=65534:65534 --chmod=0644 dir/ /data/ # buildkit", "COPY --chown=65534:65534 --chmod=0644 dir/ /data/", ""},
		{"ADD add.txt /added.txt # buildkit", "ADD add.txt /added.txt", ""},
		{"WORKDIR /app", "WORKDIR /app", ""},
		{"ENV E=x", "ENV E=x", ""},
		{"ARG A=1", "ARG A=1", ""},
		{`CMD ["cat" "/ab"]`, `CMD ["cat" "/ab"]`, ""},
		// the legacy builder
		{"/bin/sh -c #(nop) COPY file:4d8e1f0c5a in /app ", "COPY /app", "file:4d8e1f0c5a"},
		{"/bin/sh -c #(nop) COPY --chown=1000:1000 dir:77aa in /src", "COPY --chown=1000:1000 /src", "dir:77aa"},
		{"/bin/sh -c #(nop) ADD file:b4f3 in / ", "ADD /", "file:b4f3"},
		{"/bin/sh -c #(nop)  ENV PATH=/usr/local/bin:/usr/bin", "ENV PATH=/usr/local/bin:/usr/bin", ""},
		{"/bin/sh -c #(nop) WORKDIR /go", "WORKDIR /go", ""},
		{`/bin/sh -c #(nop)  CMD ["sh"]`, `CMD ["sh"]`, ""},
		{"/bin/sh -c #(nop) something odd", "RAW something odd", ""},
		{"/bin/sh -c apt-get update && apt-get install -y git", "RUN /bin/sh -c apt-get update && apt-get install -y git", ""},
		{"|1 VERSION=1.2 /bin/sh -c make", "RUN |1 VERSION=1.2 /bin/sh -c make", ""},
		// foreign builders and junk
		{"busybox-static root filesystem", "RAW busybox-static root filesystem", ""},
		{"bazel build //app:image", "RAW bazel build //app:image", ""},
		{"", "RAW", ""},
		{"   ", "RAW", ""},
		{"|x not args", "RAW |x not args", ""},
		{"RUN\x1fhidden", "RUN hidden", ""},
	} {
		text, sources := NormalizeCreatedBy(tc.in)
		if text != tc.text || sources != tc.sources {
			t.Errorf("NormalizeCreatedBy(%q) = %q, %q; want %q, %q", tc.in, text, sources, tc.text, tc.sources)
		}
	}
}

func TestNormalizeCreatedByBounds(t *testing.T) {
	huge := "RUN /bin/sh -c " + strings.Repeat("x", 1<<20)
	a, _ := NormalizeCreatedBy(huge)
	b, _ := NormalizeCreatedBy(huge + "y")
	if len(a) > keepTextLen+100 || a == b {
		t.Errorf("huge text: len %d, distinct %v", len(a), a != b)
	}
	bad, _ := NormalizeCreatedBy("RUN \xff\xfe /bin/sh")
	if !utf8.ValidString(bad) {
		t.Errorf("invalid UTF-8 kept: %q", bad)
	}
}

func TestNormalizeHistory(t *testing.T) {
	h := []v1.History{
		{CreatedBy: "busybox-static root filesystem"},
		{CreatedBy: "ARG A=1", Comment: "buildkit.dockerfile.v0", EmptyLayer: true},
		{CreatedBy: "ENV E=x", Comment: "buildkit.dockerfile.v0", EmptyLayer: true},
		{CreatedBy: "LABEL a=b", Comment: "buildkit.dockerfile.v0", EmptyLayer: true},
		{CreatedBy: "RUN |1 A=1 /bin/sh -c make # buildkit", Comment: "buildkit.dockerfile.v0"},
		{CreatedBy: "WORKDIR /", Comment: "buildkit.dockerfile.v0", EmptyLayer: true},
		{CreatedBy: "COPY a /b # buildkit", Comment: SourcesComment("buildkit.dockerfile.v0", "sha256:abc")},
		{CreatedBy: `CMD ["x"]`, EmptyLayer: true},
	}
	steps, err := NormalizeHistory(h, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := []Step{
		{Token: "RAW busybox-static root filesystem", Text: "RAW busybox-static root filesystem"},
		{Token: "ENV E=x\x1fRUN |1 A=1 /bin/sh -c make", Text: "RUN |1 A=1 /bin/sh -c make"},
		{Token: "WORKDIR /\x1fCOPY a /b", Text: "COPY a /b", Sources: "sha256:abc"},
	}
	for i := range want {
		if steps[i] != want[i] {
			t.Errorf("step %d = %+v, want %+v", i, steps[i], want[i])
		}
		if tokenText(steps[i].Token) != steps[i].Text {
			t.Errorf("tokenText(%q) = %q", steps[i].Token, tokenText(steps[i].Token))
		}
	}

	var he *ErrHistory
	if _, err := NormalizeHistory(nil, 2); !errors.As(err, &he) {
		t.Errorf("no history: %v", err)
	}
	if _, err := NormalizeHistory(h, 4); !errors.As(err, &he) {
		t.Errorf("misaligned history: %v", err)
	}
	if steps, err := NormalizeHistory(nil, 0); err != nil || len(steps) != 0 {
		t.Errorf("empty image: %v %v", steps, err)
	}
}

func FuzzNormalizeHistory(f *testing.F) {
	f.Add("RUN |2 A=1 B=2 /bin/sh -c echo hi # buildkit", "buildkit.dockerfile.v0", false, "ENV A=b", true)
	f.Add("/bin/sh -c #(nop) COPY file:abc in /x ", "", false, "/bin/sh -c #(nop)  CMD [\"sh\"]", true)
	f.Add("COPY a b # buildkit", "strata.sources=sha256:00", false, "WORKDIR /", true)
	f.Fuzz(func(t *testing.T, a, ca string, ea bool, b string, eb bool) {
		h := []v1.History{{CreatedBy: a, Comment: ca, EmptyLayer: ea}, {CreatedBy: b, EmptyLayer: eb}}
		n := 0
		for _, e := range h {
			if !e.EmptyLayer {
				n++
			}
		}
		steps, err := NormalizeHistory(h, n)
		if err != nil {
			t.Fatalf("aligned history rejected: %v", err)
		}
		if len(steps) != n {
			t.Fatalf("%d steps for %d layers", len(steps), n)
		}
		for _, s := range steps {
			if !utf8.ValidString(s.Token) || s.Token == "" || len(s.Text) > maxTextLen+100 {
				t.Fatalf("bad token %q", s.Token)
			}
			if tokenText(s.Token) != s.Text {
				t.Fatalf("token %q does not end in its text %q", s.Token, s.Text)
			}
			again, _ := NormalizeCreatedBy(s.Text)
			if s.Text != "RAW" && again != s.Text && again != "RAW "+s.Text && !strings.HasPrefix(s.Text, "RAW ") {
				t.Fatalf("not stable: %q -> %q", s.Text, again)
			}
		}
	})
}
