package plan

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/strata-build/strata/cache"
)

// WriteText prints the plan for people: per stage its steps, the ranked
// candidates with how each step matched, then the chosen cache imports.
func (p *Plan) WriteText(w io.Writer, imports int) error {
	var b strings.Builder
	for i, sp := range p.Stages {
		if i > 0 {
			b.WriteByte('\n')
		}
		base := sp.Base
		if sp.BaseDigest != "" {
			base += " (" + shortDigest(sp.BaseDigest) + ")"
		}
		fmt.Fprintf(&b, "stage %s  %s  FROM %s\n", sp.Stage, sp.Platform, base)
		if sp.Skipped != "" {
			fmt.Fprintf(&b, "  not planned: %s\n", sp.Skipped)
			continue
		}
		if len(sp.Steps) == 0 {
			b.WriteString("  no steps of its own\n")
			continue
		}
		for j, s := range sp.Steps {
			fmt.Fprintf(&b, "  %3d  %s\n", sp.Lines[j], clip(s, 100))
		}
		if len(sp.Candidates) == 0 {
			b.WriteString("  no candidates: every step builds\n")
			continue
		}
		for k, c := range sp.Candidates {
			cacheNote := "inline cache"
			if !c.InlineCache {
				cacheNote = "no inline cache: BuildKit cannot import it"
			}
			fmt.Fprintf(&b, "  #%d %s  %d of %d steps (%d exact)  reusable %s  to build %s  %s\n",
				k+1, c.Ref, c.Matched, len(sp.Steps), c.Exact, cache.HumanBytes(c.BytesReusable), cache.HumanBytes(c.BytesToBuild), cacheNote)
			fmt.Fprintf(&b, "     %s  match: %s\n", shortDigest(c.Digest), strings.Join(c.Match, " "))
		}
	}
	ims := p.Imports(imports)
	b.WriteString("\ncache imports:\n")
	if len(ims) == 0 {
		b.WriteString("  none: no indexed image with inline cache shares a step\n")
	}
	for _, im := range ims {
		fmt.Fprintf(&b, "  %s\n    %s\n", im.Ref, im.Reason)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON prints the plan and its cache imports as JSON.
func (p *Plan) WriteJSON(w io.Writer, imports int) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		*Plan
		Imports []Import `json:"imports"`
	}{p, p.Imports(imports)})
}

func shortDigest(d string) string {
	if alg, hex, ok := strings.Cut(d, ":"); ok && len(hex) > 12 {
		return alg + ":" + hex[:12]
	}
	return d
}

func clip(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", "\\n")
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
