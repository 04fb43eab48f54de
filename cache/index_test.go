package cache

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var t0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

func testImage(ref, platform string, tokens ...string) *Image {
	m := &Image{Ref: ref, Digest: fakeDigest(ref + platform), Platform: platform, InlineCache: true, Pushed: t0, Indexed: t0}
	for i, tok := range tokens {
		m.Steps = append(m.Steps, Step{Token: tok, Text: tokenText(tok)})
		m.Layers = append(m.Layers, Layer{Digest: fakeDigest(fmt.Sprint(ref, i)), DiffID: fakeDigest(fmt.Sprint("diff", tok)), Size: int64(10 * (i + 1))})
	}
	return m
}

func TestIndexLongestAndMatches(t *testing.T) {
	x := NewIndex()
	x.Put(testImage("r/a:1", "linux/amd64", "base", "RUN a", "RUN b", "RUN c"))
	x.Put(testImage("r/a:2", "linux/amd64", "base", "RUN a", "RUN b2"))
	x.Put(testImage("r/a:3", "linux/amd64", "base", "RUN a", "RUN b", "RUN c")) // same key as r/a:1
	x.Put(testImage("r/b:1", "linux/arm64", "base", "RUN a", "RUN b", "RUN c"))
	for _, tc := range []struct {
		platform string
		tokens   []string
		want     int
	}{
		{"linux/amd64", []string{"base", "RUN a", "RUN b", "RUN c", "RUN d"}, 4 + 1},
		{"linux/amd64", []string{"base", "RUN a", "RUN x"}, 2 + 1},
		{"linux/amd64", []string{"other"}, 1},
		{"linux/amd64", nil, 1},
		{"linux/s390x", []string{"base"}, 0},
		{"linux/arm64", []string{"base", "RUN a", "RUN b2"}, 2 + 1},
	} {
		if got := x.Longest(tc.platform, tc.tokens); got != tc.want {
			t.Errorf("Longest(%s, %q) = %d, want %d", tc.platform, tc.tokens, got, tc.want)
		}
	}
	ms := x.Matches("linux/amd64", []string{"base", "RUN a", "RUN b", "RUN x"}, 1, 10, nil)
	got := map[string]int{}
	for _, m := range ms {
		got[m.Image.Ref] = m.Steps
	}
	if want := map[string]int{"r/a:1": 3, "r/a:3": 3, "r/a:2": 2}; !reflect.DeepEqual(got, want) {
		t.Errorf("Matches = %v, want %v", got, want)
	}
	if ms := x.Matches("linux/amd64", []string{"base", "RUN a", "RUN b"}, 3, 10, nil); len(ms) != 2 {
		t.Errorf("minSteps 3: %d matches", len(ms))
	}
	if ms := x.Matches("linux/amd64", []string{"base", "RUN a"}, 1, 10, func(m *Image) bool { return m.Ref == "r/a:2" }); len(ms) != 1 {
		t.Errorf("keep: %v", ms)
	}
}

func TestIndexReplaceDeleteMerge(t *testing.T) {
	x := NewIndex()
	a := testImage("r/a:1", "linux/amd64", "base", "RUN a")
	x.Put(a)
	older := testImage("r/a:1", "linux/amd64", "base", "RUN old")
	older.Indexed = t0.Add(-time.Hour)
	if x.Put(older) {
		t.Error("an older entry replaced a newer one")
	}
	x.Delete("r/a:1", t0.Add(time.Hour))
	if _, ok := x.Get("r/a:1", "linux/amd64"); ok || x.Len() != 0 || x.Longest("linux/amd64", []string{"base"}) != 0 {
		t.Error("deleted image still found")
	}
	// A stale copy of the index cannot bring the image back.
	stale := NewIndex()
	stale.Put(a)
	if n := x.Merge(stale); n != 0 || x.Len() != 0 {
		t.Errorf("stale merge changed %d entries", n)
	}
	// A newer push of the tag does.
	again := testImage("r/a:1", "linux/amd64", "base", "RUN new")
	again.Indexed = t0.Add(2 * time.Hour)
	fresh := NewIndex()
	fresh.Put(again)
	if n := x.Merge(fresh); n != 1 || x.Longest("linux/amd64", []string{"base", "RUN new"}) != 3 {
		t.Errorf("fresh merge changed %d entries", n)
	}
	x.Delete("r/a:1", t0.Add(3*time.Hour))
	x.Prune(t0.Add(4 * time.Hour))
	if len(x.all()) != 0 {
		t.Errorf("tombstone not pruned: %v", x.all())
	}
	snap := x.Snapshot()
	x.Put(testImage("r/b:1", "linux/amd64", "x"))
	if ch := x.ChangedSince(snap); len(ch.all()) != 1 {
		t.Errorf("ChangedSince: %d", len(ch.all()))
	}
}

func TestTokenRunes(t *testing.T) {
	ids := []int32{1, 2, surrogateLo - 1, surrogateLo, surrogateLo + 1, singleMax - 1, singleMax, singleMax + 1, singleMax + 1024, singleMax + 5000000}
	var keys []string
	for _, id := range ids {
		r := appendToken(nil, id)
		s := string(r)
		if !utf8.ValidString(s) || strings.ContainsRune(s, 0) || strings.ContainsRune(s, utf8.RuneError) {
			t.Fatalf("id %d: runes %U not a valid key", id, r)
		}
		if back := []rune(s); !reflect.DeepEqual(back, r) {
			t.Fatalf("id %d: %U does not survive a string", id, r)
		}
		keys = append(keys, s)
	}
	for i, a := range keys {
		for j, b := range keys {
			if i != j && strings.HasPrefix(b, a) {
				t.Errorf("encoding of %d is a prefix of %d's", ids[i], ids[j])
			}
		}
	}
}

func TestEncodeDecode(t *testing.T) {
	x := NewIndex()
	m := testImage("r/a:1", "linux/arm64/v8", "ENV A=b\x1fRUN a", "COPY x /y")
	m.Steps[1].Sources = "sha256:abc"
	m.TagDigest = fakeDigest("index")
	x.Put(m)
	x.Put(testImage("r/b:1", "linux/amd64"))
	x.Delete("r/b:1", t0.Add(time.Minute))
	var buf bytes.Buffer
	if err := x.Encode(&buf); err != nil {
		t.Fatal(err)
	}
	y, err := Decode(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(x.all(), y.all()) {
		t.Errorf("round trip:\n%+v\n%+v", x.all()[0], y.all()[0])
	}
	data := buf.Bytes()
	for _, bad := range [][]byte{nil, []byte("STRATAIX"), data[:len(data)-1], append([]byte{}, data[:len(data)-5]...)} {
		if _, err := Decode(bad); err == nil {
			t.Errorf("Decode accepted %d bytes", len(bad))
		}
	}
	other := append([]byte{}, data...)
	other[len(fileMagic)+1] = 99
	if _, err := Decode(other); err == nil || !strings.Contains(err.Error(), "version 99") {
		t.Errorf("other version: %v", err)
	}
}

func TestCacheRef(t *testing.T) {
	d := fakeDigest("x")
	for ref, want := range map[string]string{
		"127.0.0.1:5000/app:v1":           "127.0.0.1:5000/app@" + d,
		"registry/app":                    "registry/app@" + d,
		"registry/app@" + fakeDigest("y"): "registry/app@" + d,
		"localhost:5000/a/b:latest":       "localhost:5000/a/b@" + d,
	} {
		if got := (&Image{Ref: ref, Digest: d}).CacheRef(); got != want {
			t.Errorf("CacheRef(%s) = %s", ref, got)
		}
	}
}

func fakeDigest(s string) string {
	h := fmt.Sprintf("%x", []byte(s))
	for len(h) < 64 {
		h += h
	}
	return "sha256:" + h[:64]
}
