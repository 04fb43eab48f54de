package plan

import (
	"bytes"
	"testing"

	"github.com/strata-build/strata/cache"
	"github.com/strata-build/strata/cache/internal/cachetest"
)

// FuzzDecode reads arbitrary index files, as a registry or a disk may
// hold them, and plans a stage against what decodes.
func FuzzDecode(f *testing.F) {
	x := cache.NewIndex()
	x.Put(cachetest.Image("r/a:1", "linux/amd64", "base", "RUN a"))
	var buf bytes.Buffer
	_ = x.Encode(&buf)
	f.Add(buf.Bytes())
	f.Add([]byte("STRATAIX\x00\x01\x00\x00\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		x, err := cache.Decode(data)
		if err != nil {
			return
		}
		_ = x.Longest("linux/amd64", []string{"base"})
		st := &Stage{Platform: "linux/amd64", Steps: []cache.Step{{Token: "base", Text: "base"}, {Token: "RUN a", Text: "RUN a"}}, BaseSteps: 1}
		sp := planStage(x, st, 5)
		_ = (&Plan{Stages: []StagePlan{sp}}).CacheImports(3)
		var out bytes.Buffer
		if err := x.Encode(&out); err != nil {
			t.Fatal(err)
		}
	})
}
