package eval

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/optimize"
)

// Standardizer maps each feature to zero mean and unit variance using
// statistics of the training set (the test set is transformed with the
// training statistics, never its own).
type Standardizer struct {
	Mean  []float64
	Scale []float64 // 1/std; 1 for constant features
}

// FitStandardizer computes per-feature mean and standard deviation of x
// (n rows of dim features).
func FitStandardizer(x []float32, n, dim int) *Standardizer {
	s := &Standardizer{Mean: make([]float64, dim), Scale: make([]float64, dim)}
	for i := 0; i < n; i++ {
		row := x[i*dim : (i+1)*dim]
		for j, v := range row {
			s.Mean[j] += float64(v)
		}
	}
	for j := range s.Mean {
		s.Mean[j] /= float64(n)
	}
	vr := make([]float64, dim)
	for i := 0; i < n; i++ {
		row := x[i*dim : (i+1)*dim]
		for j, v := range row {
			d := float64(v) - s.Mean[j]
			vr[j] += d * d
		}
	}
	for j := range vr {
		sd := math.Sqrt(vr[j] / float64(n))
		if sd < 1e-8 {
			s.Scale[j] = 1 // constant feature: centring alone makes it 0
		} else {
			s.Scale[j] = 1 / sd
		}
	}
	return s
}

// Apply returns the standardised rows of x as float64.
func (s *Standardizer) Apply(x []float32, n int) []float64 {
	dim := len(s.Mean)
	out := make([]float64, n*dim)
	for i := 0; i < n; i++ {
		for j := 0; j < dim; j++ {
			out[i*dim+j] = (float64(x[i*dim+j]) - s.Mean[j]) * s.Scale[j]
		}
	}
	return out
}

// LinearClassifier is a multinomial logistic-regression model:
// logits = W x + B with W [Classes, Dim] row-major.
type LinearClassifier struct {
	Dim, Classes int
	W            []float64
	B            []float64
}

// Logits returns the [n, Classes] scores of n rows of x.
func (c *LinearClassifier) Logits(x []float64, n int) []float64 {
	out := make([]float64, n*c.Classes)
	for i := 0; i < n; i++ {
		copy(out[i*c.Classes:], c.B)
	}
	blas64.Gemm(blas.NoTrans, blas.Trans, 1,
		blas64.General{Rows: n, Cols: c.Dim, Stride: c.Dim, Data: x},
		blas64.General{Rows: c.Classes, Cols: c.Dim, Stride: c.Dim, Data: c.W},
		1, blas64.General{Rows: n, Cols: c.Classes, Stride: c.Classes, Data: out})
	return out
}

// LogRegConfig controls TrainLogReg.
type LogRegConfig struct {
	// Lambda is the L2 strength on W (not on the bias): the objective is
	// mean cross-entropy + Lambda/2 * ||W||².
	Lambda float64
	// MaxIter bounds L-BFGS major iterations (each is about one pass over
	// the data). 0 means 500.
	MaxIter int
	// GradTol stops when the largest gradient component is below it.
	// 0 means 1e-6.
	GradTol float64
	// Init warm-starts from a previous solution of the same shape.
	Init *LinearClassifier
}

// LogRegStats describe how an optimisation ended.
type LogRegStats struct {
	Iterations int
	Loss       float64
	Status     string
}

// logRegProblem evaluates the objective and its gradient together; L-BFGS
// asks for both at the same point, so the gradient is cached.
type logRegProblem struct {
	x       []float64 // [n, dim]
	y       []int
	n, dim  int
	classes int
	lambda  float64

	logits []float64 // [n, classes] scratch
	lastX  []float64
	lastF  float64
	lastG  []float64
}

func (p *logRegProblem) eval(theta []float64) {
	if p.lastX != nil && equalSlices(p.lastX, theta) {
		return
	}
	c, d, n := p.classes, p.dim, p.n
	w, b := theta[:c*d], theta[c*d:]
	for i := 0; i < n; i++ {
		copy(p.logits[i*c:(i+1)*c], b)
	}
	blas64.Gemm(blas.NoTrans, blas.Trans, 1,
		blas64.General{Rows: n, Cols: d, Stride: d, Data: p.x},
		blas64.General{Rows: c, Cols: d, Stride: d, Data: w},
		1, blas64.General{Rows: n, Cols: c, Stride: c, Data: p.logits})
	// Turn logits into (softmax - onehot)/n in place, accumulating the loss.
	loss := 0.0
	gb := p.lastG[c*d:]
	clear(gb)
	inv := 1 / float64(n)
	for i := 0; i < n; i++ {
		row := p.logits[i*c : (i+1)*c]
		m := row[0]
		for _, v := range row[1:] {
			m = math.Max(m, v)
		}
		zy := row[p.y[i]]
		s := 0.0
		for k, v := range row {
			e := math.Exp(v - m)
			row[k] = e
			s += e
		}
		loss += m + math.Log(s) - zy // logsumexp - z_y
		for k := range row {
			row[k] /= s
		}
		row[p.y[i]] -= 1
		for k := range row {
			row[k] *= inv
			gb[k] += row[k]
		}
	}
	loss *= inv
	gw := p.lastG[:c*d]
	copy(gw, w)
	reg := 0.0
	for _, v := range w {
		reg += v * v
	}
	// gw = lambda*w + G^T X
	blas64.Gemm(blas.Trans, blas.NoTrans, 1,
		blas64.General{Rows: n, Cols: c, Stride: c, Data: p.logits},
		blas64.General{Rows: n, Cols: d, Stride: d, Data: p.x},
		p.lambda, blas64.General{Rows: c, Cols: d, Stride: d, Data: gw})
	p.lastF = loss + 0.5*p.lambda*reg
	if p.lastX == nil {
		p.lastX = make([]float64, len(theta))
	}
	copy(p.lastX, theta)
}

func equalSlices(a, b []float64) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TrainLogReg fits a multinomial logistic regression to n rows of x
// (float64, typically standardised) with labels y in [0, classes) by
// L-BFGS on the full batch.
func TrainLogReg(x []float64, y []int, dim, classes int, cfg LogRegConfig) (*LinearClassifier, LogRegStats, error) {
	n := len(y)
	switch {
	case n == 0:
		return nil, LogRegStats{}, errors.New("logistic regression: no training rows")
	case dim <= 0 || classes < 2:
		return nil, LogRegStats{}, fmt.Errorf("logistic regression: need dim > 0 and at least 2 classes (dim %d, classes %d)", dim, classes)
	case len(x) != n*dim:
		return nil, LogRegStats{}, fmt.Errorf("logistic regression: %d values for %d rows of %d features", len(x), n, dim)
	case cfg.Lambda < 0:
		return nil, LogRegStats{}, fmt.Errorf("logistic regression: negative L2 strength %g", cfg.Lambda)
	}
	for i, l := range y {
		if l < 0 || l >= classes {
			return nil, LogRegStats{}, fmt.Errorf("logistic regression: label %d of row %d outside [0,%d)", l, i, classes)
		}
	}
	if cfg.MaxIter == 0 {
		cfg.MaxIter = 500
	}
	if cfg.GradTol == 0 {
		cfg.GradTol = 1e-6
	}
	np := classes*dim + classes
	p := &logRegProblem{x: x, y: y, n: n, dim: dim, classes: classes, lambda: cfg.Lambda,
		logits: make([]float64, n*classes), lastG: make([]float64, np)}
	theta := make([]float64, np)
	if cfg.Init != nil {
		if cfg.Init.Dim != dim || cfg.Init.Classes != classes {
			return nil, LogRegStats{}, fmt.Errorf("logistic regression: warm start is %dx%d, problem is %dx%d", cfg.Init.Classes, cfg.Init.Dim, classes, dim)
		}
		copy(theta, cfg.Init.W)
		copy(theta[classes*dim:], cfg.Init.B)
	}
	prob := optimize.Problem{
		Func: func(t []float64) float64 { p.eval(t); return p.lastF },
		Grad: func(g, t []float64) { p.eval(t); copy(g, p.lastG) },
	}
	settings := &optimize.Settings{
		GradientThreshold: cfg.GradTol,
		MajorIterations:   cfg.MaxIter,
		Converger:         &optimize.FunctionConverge{Relative: 1e-10, Iterations: 20},
	}
	res, err := optimize.Minimize(prob, theta, settings, &optimize.LBFGS{Store: 20})
	if res == nil {
		return nil, LogRegStats{}, fmt.Errorf("logistic regression: L-BFGS: %w", err)
	}
	// Iteration limits and line-search stalls near the optimum still leave
	// a usable (best-so-far) solution; only non-finite results are fatal.
	if math.IsNaN(res.F) || math.IsInf(res.F, 0) {
		return nil, LogRegStats{}, fmt.Errorf("logistic regression: objective became %g (status %v, err %v)", res.F, res.Status, err)
	}
	c := &LinearClassifier{Dim: dim, Classes: classes,
		W: append([]float64(nil), res.X[:classes*dim]...),
		B: append([]float64(nil), res.X[classes*dim:]...)}
	return c, LogRegStats{Iterations: res.Stats.MajorIterations, Loss: res.F, Status: res.Status.String()}, nil
}
