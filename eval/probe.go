package eval

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"

	"github.com/simclr-go/simclr/engine"
)

// DefaultLambdas is the L2 grid searched by LinearProbe. Features are
// standardised first, so one grid suits every encoder width.
var DefaultLambdas = []float64{1e-1, 1e-2, 1e-3, 1e-4, 1e-5}

// ProbeConfig controls LinearProbe.
type ProbeConfig struct {
	Lambdas     []float64 // L2 grid; nil means DefaultLambdas
	ValFraction float64   // share of train held out to pick lambda; 0 means 0.1
	Seed        uint64    // seeds the validation split
	MaxIter     int       // L-BFGS iterations per fit; 0 means 500
	// Backend, when set, does the objective's matrix products in float32
	// (see LogRegConfig.Backend); nil: float64 Go.
	Backend engine.Backend
}

// LambdaScore is the validation accuracy of one grid point.
type LambdaScore struct {
	Lambda     float64 `json:"lambda"`
	ValTop1    float64 `json:"val_top1"`
	Iterations int     `json:"iterations"` // L-BFGS iterations of this fit
}

// ProbeResult is the outcome of LinearProbe.
type ProbeResult struct {
	Top1, Top5 float64
	Lambda     float64       // chosen L2 strength
	Grid       []LambdaScore // validation accuracy per lambda
	TrainTop1  float64       // accuracy of the final model on all of train
	Iterations int           // L-BFGS iterations of the final fit
	// Evaluations counts objective+gradient passes over the data in all
	// fits, the measure of the probe's cost.
	Evaluations int
	Classifier  *LinearClassifier
	Standard    *Standardizer
}

// Protocol describes the procedure in one line, for reports.
func (r *ProbeResult) Protocol(valFraction float64) string {
	var g []string
	for _, s := range r.Grid {
		g = append(g, fmt.Sprintf("%g:%.4f", s.Lambda, s.ValTop1))
	}
	return fmt.Sprintf("multinomial logistic regression (preconditioned L-BFGS, full batch) on standardised features; "+
		"L2 lambda=%g chosen on a %.0f%% stratified validation split of train (val top1 %s; warm-started from strong to weak L2), "+
		"then refit on all of train (%d iterations, %d passes over the data in all)",
		r.Lambda, 100*valFraction, strings.Join(g, " "), r.Iterations, r.Evaluations)
}

// LinearProbe trains a linear classifier on frozen features: it standardises
// them with train statistics, picks the L2 strength with the best accuracy on
// a seeded, class-stratified validation split of train, refits on all of
// train with it, and reports test top-1/top-5.
func LinearProbe(trainX []float32, trainY []int, testX []float32, testY []int, dim, classes int, cfg ProbeConfig) (*ProbeResult, error) {
	if err := checkFeatures("train", trainX, trainY, dim, classes); err != nil {
		return nil, err
	}
	if err := checkFeatures("test", testX, testY, dim, classes); err != nil {
		return nil, err
	}
	if cfg.Lambdas == nil {
		cfg.Lambdas = DefaultLambdas
	}
	if len(cfg.Lambdas) == 0 {
		return nil, errors.New("linear probe: empty L2 grid")
	}
	if cfg.ValFraction == 0 {
		cfg.ValFraction = 0.1
	}
	if cfg.ValFraction <= 0 || cfg.ValFraction >= 1 {
		return nil, fmt.Errorf("linear probe: validation fraction %g outside (0,1)", cfg.ValFraction)
	}
	// Standardise once, with statistics of all of train: they use no labels,
	// so the validation rows leak nothing that decides lambda.
	n := len(trainY)
	st := FitStandardizer(trainX, n, dim)
	xs := st.Apply(trainX, n)
	res := &ProbeResult{Standard: st}
	// One preconditioner spectrum for every fit (see TrainLogReg).
	var spec *FeatureSpectrum
	if dim <= MaxPreconditionDim {
		var err error
		if spec, err = NewFeatureSpectrum(xs, n, dim, nil); err != nil {
			return nil, fmt.Errorf("linear probe: %w", err)
		}
	}
	lambda := cfg.Lambdas[0]
	var warm *LinearClassifier // the validation fit at the chosen lambda
	if len(cfg.Lambdas) > 1 {
		fit, val := StratifiedSplit(trainY, classes, cfg.ValFraction, cfg.Seed)
		if len(fit) == 0 || len(val) == 0 {
			return nil, fmt.Errorf("linear probe: %d training rows are too few for a %g validation split", n, cfg.ValFraction)
		}
		vx, vy := gatherRows(xs, trainY, val, dim)
		// Strong to weak regularisation, each fit warm-started from the last:
		// the path is smooth, so each fit starts close to its optimum.
		order := append([]float64(nil), cfg.Lambdas...)
		sort.Sort(sort.Reverse(sort.Float64Slice(order)))
		var prev *LinearClassifier
		best := -1.0
		for _, l := range order {
			c, stats, err := TrainLogReg(xs, trainY, dim, classes, LogRegConfig{Lambda: l, MaxIter: cfg.MaxIter, Rows: fit, Init: prev, Backend: cfg.Backend, Spectrum: spec})
			if err != nil {
				return nil, fmt.Errorf("linear probe: lambda %g: %w", l, err)
			}
			prev = c
			res.Evaluations += stats.Evaluations
			t1, _ := TopK(c.Logits(vx, len(vy)), vy, classes)
			res.Grid = append(res.Grid, LambdaScore{Lambda: l, ValTop1: t1, Iterations: stats.Iterations})
			if t1 > best { // ties keep the stronger regulariser
				best, lambda, warm = t1, l, c
			}
		}
	}
	// The refit on all of train starts from the validation fit at the chosen
	// lambda (90% of the same rows): a few iterations finish it.
	c, stats, err := TrainLogReg(xs, trainY, dim, classes, LogRegConfig{Lambda: lambda, MaxIter: cfg.MaxIter, Init: warm, Backend: cfg.Backend, Spectrum: spec})
	if err != nil {
		return nil, fmt.Errorf("linear probe: final fit: %w", err)
	}
	res.Evaluations += stats.Evaluations
	res.TrainTop1, _ = TopK(c.Logits(xs, n), trainY, classes)
	xs = nil
	ts := st.Apply(testX, len(testY))
	res.Top1, res.Top5 = TopK(c.Logits(ts, len(testY)), testY, classes)
	res.Lambda, res.Iterations, res.Classifier = lambda, stats.Iterations, c
	return res, nil
}

func checkFeatures(what string, x []float32, y []int, dim, classes int) error {
	if len(y) == 0 {
		return fmt.Errorf("%s set is empty", what)
	}
	if len(x) != len(y)*dim {
		return fmt.Errorf("%s features: %d values for %d labels of dim %d", what, len(x), len(y), dim)
	}
	for i, l := range y {
		if l < 0 || l >= classes {
			return fmt.Errorf("%s label %d of item %d is outside [0,%d)", what, l, i, classes)
		}
	}
	return nil
}

func gatherRows(x []float32, y []int, idx []int, dim int) ([]float32, []int) {
	ox := make([]float32, 0, len(idx)*dim)
	oy := make([]int, 0, len(idx))
	for _, i := range idx {
		ox = append(ox, x[i*dim:(i+1)*dim]...)
		oy = append(oy, y[i])
	}
	return ox, oy
}

// StratifiedSplit holds out about frac of each class (at least one item
// of every class with two or more) as validation, chosen reproducibly from
// seed. Both index lists are in ascending order.
func StratifiedSplit(labels []int, classes int, frac float64, seed uint64) (train, val []int) {
	rng := rand.New(rand.NewPCG(seed, 0x5eed5))
	for _, idx := range byClass(labels, classes) {
		rng.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
		k := int(frac*float64(len(idx)) + 0.5)
		if k == 0 && len(idx) >= 2 {
			k = 1
		}
		val = append(val, idx[:k]...)
		train = append(train, idx[k:]...)
	}
	sort.Ints(train)
	sort.Ints(val)
	return train, val
}

func byClass(labels []int, classes int) [][]int {
	out := make([][]int, classes)
	for i, l := range labels {
		if l >= 0 && l < classes {
			out[l] = append(out[l], i)
		}
	}
	return out
}

// TopK returns top-1 and top-5 accuracy of row-major scores [n, classes].
// A label counts as within the top k when fewer than k classes rank above
// it; ties rank the lower class index first (as argmax does), so constant
// scores are not rewarded. With fewer than 5 classes top-5 is 1.
func TopK(scores []float64, labels []int, classes int) (top1, top5 float64) {
	if len(labels) == 0 {
		return 0, 0
	}
	var h1, h5 int
	for i, l := range labels {
		row := scores[i*classes : (i+1)*classes]
		higher := 0
		for k, v := range row {
			if v > row[l] || (v == row[l] && k < l) {
				higher++
			}
		}
		if higher < 1 {
			h1++
		}
		if higher < 5 {
			h5++
		}
	}
	n := float64(len(labels))
	return float64(h1) / n, float64(h5) / n
}
