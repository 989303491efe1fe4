package train

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg/draw"
)

// TestPlotFlatHugeSeries: a flat series at >= 1e16 (the learning rate of a
// diverging run with --lr 1e30) made gonum panic with "illegal range",
// because its padding of a flat axis (+-1) is lost to rounding there. Every
// flat or tiny-range series must plot.
func TestPlotFlatHugeSeries(t *testing.T) {
	for _, v := range []float64{1e16, 1e30, -3e300, 1.7976931348623157e308, 5e-324, 0, 0.3} {
		dir := t.TempDir()
		var b strings.Builder
		for s := 1; s <= 3; s++ {
			fmt.Fprintf(&b, `{"type":"step","step":%d,"epoch":1,"loss":%g,"lr":%g}`+"\n", s, v, v)
		}
		fmt.Fprintf(&b, `{"type":"epoch","step":3,"epoch":1,"loss":%g,"knn_top1":0.5}`+"\n", v)
		os.WriteFile(filepath.Join(dir, "metrics.jsonl"), []byte(b.String()), 0o644)
		if err := Plot(dir); err != nil {
			t.Errorf("value %g: %v", v, err)
		}
		for _, name := range []string{"loss.png", "lr.png", "knn.png"} {
			if _, err := os.Stat(filepath.Join(dir, "plots", name)); err != nil {
				t.Errorf("value %g: %v", v, err)
			}
		}
	}
}

// TestRenderPlotRecoversPanics: a panic inside gonum while drawing becomes
// an error naming the plot, never a crash of the run.
func TestRenderPlotRecoversPanics(t *testing.T) {
	p := newPlot("boom", "x", "y")
	p.Add(panicPlotter{})
	_, err := renderPNG("boom.png", p)
	if err == nil || !strings.Contains(err.Error(), "boom.png") || !strings.Contains(err.Error(), "kaboom") {
		t.Errorf("error %v, want one naming the plot and the panic", err)
	}
}

type panicPlotter struct{}

func (panicPlotter) Plot(draw.Canvas, *plot.Plot) { panic("kaboom") }
