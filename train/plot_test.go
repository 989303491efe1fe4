package train

import (
	"bytes"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPlotFromMetrics(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	for s := 1; s <= 30; s++ {
		fmt.Fprintf(&b, `{"type":"step","step":%d,"epoch":%d,"loss":%g,"lr":%g}`+"\n", s, (s-1)/10+1, 6-0.1*float64(s), 0.01*float64(s))
		if s%10 == 0 {
			fmt.Fprintf(&b, `{"type":"epoch","step":%d,"epoch":%d,"loss":%g,"knn_top1":%g}`+"\n", s, s/10, 5-0.5*float64(s/10), 0.3+0.1*float64(s/10))
		}
	}
	b.WriteString(`{"type":"step","st`) // a line cut by a crash
	os.WriteFile(filepath.Join(dir, "metrics.jsonl"), []byte(b.String()), 0o644)
	if err := Plot(dir); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"loss.png", "lr.png", "knn.png"} {
		raw, err := os.ReadFile(filepath.Join(dir, "plots", name))
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if img.Bounds().Dx() < 300 {
			t.Errorf("%s: %v", name, img.Bounds())
		}
	}
	// A malformed line in the middle is an error naming the file and line.
	os.WriteFile(filepath.Join(dir, "metrics.jsonl"), []byte("{\"type\":\"step\"}\nnot json\n{}\n"), 0o644)
	if err := Plot(dir); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("malformed metrics: %v", err)
	}
	if err := Plot(t.TempDir()); err == nil {
		t.Error("a directory without metrics.jsonl plotted")
	}
}
