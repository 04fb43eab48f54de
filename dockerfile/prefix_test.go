package dockerfile

import (
	"strings"
	"testing"
)

// Prefixes end after a step's last line: an escaped line, a heredoc.
func TestPrefixesSkipAndEscapes(t *testing.T) {
	df := "# escape=`\r\nFROM busybox AS build\r\nRUN a `\r\n  b\r\nWORKDIR /app\r\nCOPY lock ./\r\nRUN <<EOF\r\nb\r\nEOF\r\nCOPY . .\r\nRUN c\r\nFROM build\r\nRUN d\r\nRUN e\r\n"
	b := resolve(t, df, "Build", Args{})
	for _, tc := range []struct {
		skip func(*Step) bool
		want []string // the last line of each prefix
	}{
		{nil, []string{"  b", "COPY lock ./", "EOF", "COPY . ."}},
		{func(s *Step) bool { return s.Start <= 4 }, []string{"COPY lock ./", "EOF", "COPY . ."}},
		{func(s *Step) bool { return strings.EqualFold(s.Command.Name(), "copy") }, []string{"  b", "EOF"}},
		{func(*Step) bool { return true }, nil},
	} {
		var got []string
		for _, pf := range b.Prefixes(tc.skip) {
			p := pf.Dockerfile
			if !strings.HasSuffix(string(p), "\r\n") {
				t.Errorf("prefix cut inside a line: %q", p)
			}
			lines := strings.Split(strings.TrimSuffix(string(p), "\r\n"), "\r\n")
			got = append(got, lines[len(lines)-1])
		}
		if strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("prefixes end with %q, want %q", got, tc.want)
		}
	}
}
