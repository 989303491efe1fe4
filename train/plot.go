package train

import (
	"bytes"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// Plot redraws RUNDIR/plots/{loss,lr,knn}.png from RUNDIR/metrics.jsonl:
// the training loss (step records, with the per-epoch mean) and the
// learning rate against the step, and the kNN top-1 accuracy against the
// epoch (epoch 0 is the random initialisation).
func Plot(rundir string) error {
	recs, err := ReadMetrics(filepath.Join(rundir, "metrics.jsonl"))
	if err != nil {
		return err
	}
	dir := filepath.Join(rundir, "plots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("plots: %w", err)
	}
	var loss, lr, knn, epochLoss plotter.XYs
	for _, r := range recs {
		switch r.Type {
		case "step":
			if r.Loss != nil {
				loss = append(loss, plotter.XY{X: float64(r.Step), Y: *r.Loss})
			}
			if r.LR != nil {
				lr = append(lr, plotter.XY{X: float64(r.Step), Y: *r.LR})
			}
		case "epoch":
			if r.KNNTop1 != nil {
				knn = append(knn, plotter.XY{X: float64(r.Epoch), Y: 100 * *r.KNNTop1})
			}
			if r.Loss != nil {
				epochLoss = append(epochLoss, plotter.XY{X: float64(r.Step), Y: *r.Loss})
			}
		}
	}
	write := func(name string, p *plot.Plot) error {
		b, err := renderPNG(name, p)
		if err != nil {
			return err
		}
		if err := writeFileAtomic(filepath.Join(dir, name), b); err != nil {
			return fmt.Errorf("plot %s: %w", name, err)
		}
		return nil
	}

	p := newPlot("NT-Xent loss", "step", "loss")
	if err := addLine(p, loss, "step", color.RGBA{R: 31, G: 119, B: 180, A: 255}, false); err != nil {
		return err
	}
	if err := addLine(p, epochLoss, "epoch mean", color.RGBA{R: 214, G: 39, B: 40, A: 255}, true); err != nil {
		return err
	}
	if err := write("loss.png", p); err != nil {
		return err
	}

	p = newPlot("learning rate", "step", "lr")
	if err := addLine(p, lr, "", color.RGBA{R: 44, G: 160, B: 44, A: 255}, false); err != nil {
		return err
	}
	if err := write("lr.png", p); err != nil {
		return err
	}

	p = newPlot("kNN top-1 (k-NN monitor)", "epoch", "top-1 accuracy (%)")
	if err := addLine(p, knn, "", color.RGBA{R: 148, G: 103, B: 189, A: 255}, true); err != nil {
		return err
	}
	if len(knn) == 0 {
		p.Title.Text += ": not measured"
	}
	return write("knn.png", p)
}

// renderPNG draws p as a PNG. gonum panics on some inputs (an axis range
// it cannot tick); a panic becomes an error naming the plot, so that a plot
// never crashes a run or hides its error.
func renderPNG(name string, p *plot.Plot) (b []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			b, err = nil, fmt.Errorf("plot %s: drawing failed: %v", name, r)
		}
	}()
	padRange(&p.X)
	padRange(&p.Y)
	wt, err := p.WriterTo(6*vg.Inch, 4*vg.Inch, "png")
	if err != nil {
		return nil, fmt.Errorf("plot %s: %w", name, err)
	}
	var buf bytes.Buffer
	if _, err := wt.WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("plot %s: %w", name, err)
	}
	return buf.Bytes(), nil
}

// padRange widens a flat (or, relative to its magnitude, nearly flat)
// axis range around its middle by 10% of the value, or by 1 near zero.
// gonum pads a flat range by +-1 itself, which rounding loses at 1e16 and
// above (a diverging run's learning rate), and then panics.
func padRange(a *plot.Axis) {
	lo, hi := a.Min, a.Max
	if math.IsNaN(lo) || math.IsNaN(hi) || math.IsInf(lo, 0) || math.IsInf(hi, 0) {
		return
	}
	if hi-lo > 1e-9*math.Max(math.Abs(lo), math.Abs(hi)) {
		return
	}
	mid := lo/2 + hi/2
	pad := math.Max(math.Abs(mid)/10, 1)
	a.Min = math.Max(mid-pad, -math.MaxFloat64)
	a.Max = math.Min(mid+pad, math.MaxFloat64)
}

func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = x
	p.Y.Label.Text = y
	p.Add(plotter.NewGrid())
	p.Y.Tick.Marker = preciseTicks{}
	return p
}

// preciseTicks are gonum's default ticks labelled with enough digits that
// neighbouring labels differ (the default rounds 2.75 and 2.8 alike).
type preciseTicks struct{}

func (preciseTicks) Ticks(lo, hi float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = strconv.FormatFloat(ts[i].Value, 'g', 5, 64)
		}
	}
	return ts
}

func addLine(p *plot.Plot, xys plotter.XYs, legend string, c color.Color, points bool) error {
	if len(xys) == 0 {
		return nil
	}
	l, err := plotter.NewLine(xys)
	if err != nil {
		return fmt.Errorf("plot %s: %w", p.Title.Text, err)
	}
	l.Color = c
	l.Width = vg.Points(1.2)
	p.Add(l)
	if points {
		s, err := plotter.NewScatter(xys)
		if err != nil {
			return fmt.Errorf("plot %s: %w", p.Title.Text, err)
		}
		s.Color = c
		p.Add(s)
	}
	if legend != "" {
		p.Legend.Add(legend, l)
		p.Legend.Top = true
	}
	return nil
}
