package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"unicode/utf8"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Step is one layer-producing step of an image, normalised.
type Step struct {
	// Token is what the trie matches on: Text, preceded by the ENV, USER
	// and WORKDIR settings made since the previous layer (they change what
	// the step does without making a layer of their own).
	Token string
	// Text is the instruction as BuildKit writes it into the history,
	// without the " # buildkit" marker, e.g. "RUN /bin/sh -c make".
	Text string
	// Sources is the content digest of a COPY or ADD step's sources when
	// the image records it (strata's history comment, or the legacy
	// builder's file:<sha256>); for a small COPY layer of an image that
	// records nothing, the digest of its files' contents (FilesPrefix);
	// empty when unknown.
	Sources string
	// Files is the FilesHash of what a Dockerfile's COPY step takes from the
	// context, compared with the Sources of indexed images that have only
	// that. It is not stored in the index.
	Files string `json:"-"`
	// TextOnly marks a Dockerfile step whose text does not pin what it
	// does (a RUN with bind mounts): it can match by text, never exactly.
	// It is not stored in the index.
	TextOnly bool `json:"-"`
}

// Limits on outside input: longer history text is shortened to a prefix and
// a digest of the whole, so tokens stay small and still tell texts apart.
const (
	maxTextLen  = 8 << 10
	keepTextLen = 512
)

// SourcesMarker prefixes the content digest of a COPY or ADD step's sources
// in a history entry's comment: "buildkit.dockerfile.v0 strata.sources=sha256:...".
// With it a later plan matches COPY steps by content, not only by text.
const SourcesMarker = "strata.sources="

// tokenSep joins a step's context settings to its text inside a token.
const tokenSep = "\x1f"

// ErrHistory is returned for an image whose history cannot be read as
// steps. The crawler skips such images with a warning.
type ErrHistory struct{ Reason string }

func (e *ErrHistory) Error() string { return "image history: " + e.Reason }

// NormalizeHistory turns an image config's history into one Step per
// layer. layers is the number of layers of the image (len(rootfs.diff_ids));
// a history that does not line up with them is an error, as is a history
// with layers but no entries. Pass layers < 0 to skip the check.
func NormalizeHistory(history []v1.History, layers int) ([]Step, error) {
	if len(history) == 0 && layers > 0 {
		return nil, &ErrHistory{Reason: fmt.Sprintf("no history for %d layers", layers)}
	}
	steps := make([]Step, 0, max(layers, 0))
	var context []string
	for _, h := range history {
		text, sources := NormalizeCreatedBy(h.CreatedBy)
		if h.EmptyLayer {
			if isContext(text) {
				context = append(context, text)
			}
			continue
		}
		if s := commentSources(h.Comment); s != "" {
			sources = s
		}
		token := text
		if len(context) > 0 {
			token = strings.Join(context, tokenSep) + tokenSep + text
			context = context[:0]
		}
		steps = append(steps, Step{Token: token, Text: text, Sources: sources})
	}
	if layers >= 0 && len(steps) != layers {
		return nil, &ErrHistory{Reason: fmt.Sprintf("%d history entries make layers, the image has %d", len(steps), layers)}
	}
	return steps, nil
}

// isContext reports whether a layerless instruction changes what later
// steps do, so it belongs to the next step's token. ARG and SHELL need not:
// BuildKit writes their effect into the RUN text itself.
func isContext(text string) bool {
	for _, p := range []string{"ENV ", "USER ", "WORKDIR "} {
		if strings.HasPrefix(text, p) {
			return true
		}
	}
	return false
}

// NormalizeCreatedBy returns the instruction text of a history entry's
// created_by as BuildKit writes it, and for the legacy builder's COPY and
// ADD the content digest it embeds.
//
//	RUN /bin/sh -c make # buildkit           -> RUN /bin/sh -c make
//	RUN |1 V=2 /bin/sh -c make # buildkit    -> RUN |1 V=2 /bin/sh -c make
//	COPY a b # buildkit                      -> COPY a b
//	/bin/sh -c #(nop) COPY file:ab12 in /x   -> COPY /x (sources file:ab12)
//	/bin/sh -c #(nop)  ENV A=b               -> ENV A=b
//	/bin/sh -c make                          -> RUN /bin/sh -c make
//	|1 V=2 /bin/sh -c make                   -> RUN |1 V=2 /bin/sh -c make
//	anything else                            -> RAW <text>
func NormalizeCreatedBy(createdBy string) (text, sources string) {
	s := clean(createdBy)
	if t, ok := strings.CutSuffix(s, " # buildkit"); ok {
		s = strings.TrimSpace(t)
	}
	if rest, ok := strings.CutPrefix(s, "/bin/sh -c #(nop) "); ok {
		return legacyNop(strings.TrimSpace(rest))
	}
	if strings.HasPrefix(s, "/bin/sh -c ") || legacyArgs(s) {
		return "RUN " + s, ""
	}
	if keyword(s) {
		return s, ""
	}
	if s == "" {
		return "RAW", ""
	}
	return "RAW " + s, ""
}

// clean makes outside text safe to use as a token: valid UTF-8, no
// separator characters, no surrounding space, bounded length.
func clean(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if strings.Contains(s, tokenSep) {
		s = strings.ReplaceAll(s, tokenSep, " ")
	}
	s = strings.TrimSpace(s)
	if len(s) > maxTextLen {
		sum := sha256.Sum256([]byte(s))
		cut := keepTextLen
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + " ... sha256:" + hex.EncodeToString(sum[:])
	}
	return s
}

// legacyArgs matches the legacy builder's RUN with build args: "|2 A=1 B=2 /bin/sh -c ...".
func legacyArgs(s string) bool {
	if len(s) < 3 || s[0] != '|' {
		return false
	}
	i := 1
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i > 1 && i < len(s) && s[i] == ' '
}

var keywords = []string{"RUN", "COPY", "ADD", "WORKDIR", "ENV", "USER", "ARG", "SHELL", "LABEL", "EXPOSE",
	"CMD", "ENTRYPOINT", "VOLUME", "STOPSIGNAL", "HEALTHCHECK", "MAINTAINER", "ONBUILD"}

// keyword reports whether s starts with a Dockerfile instruction and a space.
func keyword(s string) bool {
	k, _, ok := strings.Cut(s, " ")
	if !ok {
		return false
	}
	for _, w := range keywords {
		if k == w {
			return true
		}
	}
	return false
}

// legacyNop normalises the text after the legacy builder's "#(nop)".
// Its COPY and ADD read "COPY [--chown=u:g] file:<sha256> in <dst>" and
// carry the sources' digest instead of their names.
func legacyNop(s string) (text, sources string) {
	s = strings.Join(strings.Fields(s), " ")
	for _, k := range []string{"COPY ", "ADD "} {
		rest, ok := strings.CutPrefix(s, k)
		if !ok {
			continue
		}
		src, dst, ok := strings.Cut(rest, " in ")
		if !ok {
			return s, ""
		}
		var flags []string
		fields := strings.Fields(src)
		for len(fields) > 1 && strings.HasPrefix(fields[0], "--") {
			flags = append(flags, fields[0])
			fields = fields[1:]
		}
		text = strings.TrimSpace(k) + " "
		if len(flags) > 0 {
			text += strings.Join(flags, " ") + " "
		}
		return text + strings.TrimSpace(dst), strings.Join(fields, " ")
	}
	if keyword(s) {
		return s, ""
	}
	return "RAW " + s, ""
}

// commentSources returns the sources digest strata records in a history comment.
func commentSources(comment string) string {
	i := strings.Index(comment, SourcesMarker)
	if i < 0 {
		return ""
	}
	v := comment[i+len(SourcesMarker):]
	if j := strings.IndexAny(v, " \t\n"); j >= 0 {
		v = v[:j]
	}
	if len(v) > 200 {
		return ""
	}
	return v
}

// SourcesComment returns the history comment that records a COPY or ADD
// step's sources digest next to BuildKit's own comment.
func SourcesComment(buildkitComment, sources string) string {
	if sources == "" {
		return buildkitComment
	}
	if buildkitComment == "" {
		return SourcesMarker + sources
	}
	return buildkitComment + " " + SourcesMarker + sources
}

// AnnotationSourceDiffID, on a layer strata rewrote as eStargz from a gzip
// layer of a base image, is the diff_id of the layer it was rewritten from:
// the files are the same, and plans match an image's base by it.
const AnnotationSourceDiffID = "dev.strata.source.diff_id"
