package eval

import (
	"errors"
	"fmt"
	"math"
	"runtime"

	"github.com/simclr-go/simclr/engine"
	"github.com/simclr-go/simclr/internal/par"
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

// Apply returns the standardised rows of x. They are float32 like the
// features: half the memory of float64, and standardised values need no
// more than float32's 7 digits.
func (s *Standardizer) Apply(x []float32, n int) []float32 {
	dim := len(s.Mean)
	out := make([]float32, n*dim)
	for i := 0; i < n; i++ {
		for j := 0; j < dim; j++ {
			out[i*dim+j] = float32((float64(x[i*dim+j]) - s.Mean[j]) * s.Scale[j])
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
func (c *LinearClassifier) Logits(x []float32, n int) []float64 {
	out := make([]float64, n*c.Classes)
	for i := 0; i < n; i++ {
		copy(out[i*c.Classes:], c.B)
	}
	// In chunks, so the float64 copy of x stays small.
	const chunk = 4096
	buf := make([]float64, min(n, chunk)*c.Dim)
	for lo := 0; lo < n; lo += chunk {
		hi := min(n, lo+chunk)
		xb := buf[:(hi-lo)*c.Dim]
		for i, v := range x[lo*c.Dim : hi*c.Dim] {
			xb[i] = float64(v)
		}
		blas64.Gemm(blas.NoTrans, blas.Trans, 1,
			blas64.General{Rows: hi - lo, Cols: c.Dim, Stride: c.Dim, Data: xb},
			blas64.General{Rows: c.Classes, Cols: c.Dim, Stride: c.Dim, Data: c.W},
			1, blas64.General{Rows: hi - lo, Cols: c.Classes, Stride: c.Classes, Data: out[lo*c.Classes : hi*c.Classes]})
	}
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
	// GradTol stops when the largest gradient component (in the
	// optimiser's coordinates, see Spectrum) is below it. 0 means 1e-5.
	GradTol float64
	// RelTol stops when the objective fell by less than RelTol·|f| over the
	// last 10 iterations: by then the predictions no longer change. 0 means
	// 1e-7; negative disables the rule.
	RelTol float64
	// Rows restricts the fit to these rows of x (the fit part of a
	// validation split, say); nil means all rows.
	Rows []int
	// Workers evaluating the objective; 0 means GOMAXPROCS. The result does
	// not depend on it.
	Workers int
	// Backend, when set, does the two matrix products of each pass in
	// float32 (oneDNN: about 3x less CPU than gonum's float64 ones); the
	// softmax, the sums and L-BFGS stay in float64. nil: float64 gonum.
	Backend engine.Backend
	// Init warm-starts from a previous solution of the same shape.
	Init *LinearClassifier
	// Spectrum of the features, for preconditioning; nil means computed
	// from the fit's rows when dim <= MaxPreconditionDim. Pass it to share
	// one across fits of the same features.
	Spectrum *FeatureSpectrum
	// NoPrecondition runs L-BFGS on W itself. The optimum is the same;
	// on correlated features it takes many more passes.
	NoPrecondition bool
}

// LogRegStats describe how an optimisation ended.
type LogRegStats struct {
	Iterations  int
	Evaluations int // objective+gradient passes over the data
	Loss        float64
	Status      string
}

// shardRows is the granularity of the parallel softmax. Shards, not
// workers, own the partial sums, and they are added in shard order, so the
// result is the same for any number of workers.
const shardRows = 2048

// forShards calls f(shard, lo, hi) for each shardRows-sized range of [0, n)
// on up to workers goroutines (0: GOMAXPROCS).
func forShards(n, workers int, f func(shard, lo, hi int)) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	par.Each((n+shardRows-1)/shardRows, workers, func(sh int) {
		f(sh, sh*shardRows, min(n, (sh+1)*shardRows))
	})
}

// logRegProblem evaluates the objective and its gradient together (L-BFGS
// asks for both at the same point, so they are cached). Each evaluation is
// two matrix products over the fit's rows, Z = X Wᵀ and ∇W = Gᵀ X, around a
// row-parallel softmax.
type logRegProblem struct {
	y       []int // labels of all rows of x
	idx     []int // rows in the fit; nil: all
	n, dim  int   // n rows in the fit
	classes int
	lambda  float64
	workers int

	partG [][]float64 // per-shard bias-gradient sums [classes]
	partF []float64   // per-shard loss sums
	evals int

	// float64 path (gonum): the fit's rows and Z, then (p - onehot)/n.
	x64, z64 []float64
	// Backend path (float32): the same, as tensors.
	be      engine.Backend
	z32     []float32
	w32     []float32
	gw32    []float32
	tx, tz  *engine.Tensor
	tw, tgw *engine.Tensor

	lastX []float64
	lastF float64
	lastG []float64
}

func newLogRegProblem(x []float32, y []int, idx []int, dim, classes int, lambda float64, workers int, be engine.Backend) *logRegProblem {
	n := len(y)
	if idx != nil {
		n = len(idx)
	}
	shards := (n + shardRows - 1) / shardRows
	p := &logRegProblem{y: y, idx: idx, n: n, dim: dim, classes: classes, lambda: lambda, workers: workers,
		partG: make([][]float64, shards), partF: make([]float64, shards),
		lastG: make([]float64, classes*dim+classes)}
	for i := range p.partG {
		p.partG[i] = make([]float64, classes)
	}
	row := func(r int) []float32 {
		if idx != nil {
			r = idx[r]
		}
		return x[r*dim : (r+1)*dim]
	}
	if be == nil {
		p.x64, p.z64 = make([]float64, n*dim), make([]float64, n*classes)
		for r := 0; r < n; r++ {
			dst := p.x64[r*dim : (r+1)*dim]
			for j, v := range row(r) {
				dst[j] = float64(v)
			}
		}
		return p
	}
	p.be = be
	x32 := x
	if idx != nil {
		x32 = make([]float32, n*dim)
		for r := 0; r < n; r++ {
			copy(x32[r*dim:(r+1)*dim], row(r))
		}
	}
	p.z32, p.w32, p.gw32 = make([]float32, n*classes), make([]float32, classes*dim), make([]float32, classes*dim)
	p.tx, p.tz = engine.FromData(x32, n, dim), engine.FromData(p.z32, n, classes)
	p.tw, p.tgw = engine.FromData(p.w32, classes, dim), engine.FromData(p.gw32, classes, dim)
	return p
}

// label returns the label of row r of the fit.
func (p *logRegProblem) label(r int) int {
	if p.idx != nil {
		return p.y[p.idx[r]]
	}
	return p.y[r]
}

// softmaxGrad turns the logits of row r into (softmax - onehot(y))·inv in
// place and returns the row's cross-entropy.
func softmaxGrad(row []float64, y int, inv float64) float64 {
	m := row[0]
	for _, v := range row[1:] {
		m = max(m, v)
	}
	zy := row[y]
	sum := 0.0
	for k, v := range row {
		e := math.Exp(v - m)
		row[k] = e
		sum += e
	}
	sc := inv / sum
	for k := range row {
		row[k] *= sc
	}
	row[y] -= inv
	return m + math.Log(sum) - zy // logsumexp - z_y
}

func (p *logRegProblem) eval(theta []float64) {
	if p.lastX != nil && equalSlices(p.lastX, theta) {
		return
	}
	p.evals++
	c, d := p.classes, p.dim
	w, b := theta[:c*d], theta[c*d:]
	inv := 1 / float64(p.n)
	gw, gb := p.lastG[:c*d], p.lastG[c*d:]
	if p.be != nil {
		p.evalBackend(w, b, gw, inv)
	} else {
		p.evalGo(w, b, gw, inv)
	}
	loss := 0.0
	clear(gb)
	for sh, g := range p.partG {
		loss += p.partF[sh]
		for k, v := range g {
			gb[k] += v
		}
	}
	reg := 0.0
	for i, v := range w {
		reg += v * v
		gw[i] += p.lambda * v
	}
	p.lastF = loss*inv + 0.5*p.lambda*reg
	if p.lastX == nil {
		p.lastX = make([]float64, len(theta))
	}
	copy(p.lastX, theta)
}

// softmaxRows turns rows [lo, hi) of logits z (without the bias b) into
// (softmax - onehot)/n in place, returning the loss and bias-gradient sums
// in shard sh's slots.
func (p *logRegProblem) softmaxRows(sh, lo, hi int, b []float64, inv float64, get func(r int, row []float64), put func(r int, row []float64)) {
	c := p.classes
	gb := p.partG[sh]
	clear(gb)
	row := make([]float64, c)
	loss := 0.0
	for r := lo; r < hi; r++ {
		get(r, row)
		for k := range row {
			row[k] += b[k]
		}
		loss += softmaxGrad(row, p.label(r), inv)
		for k, v := range row {
			gb[k] += v
		}
		put(r, row)
	}
	p.partF[sh] = loss
}

// evalGo is the float64 path: gonum products, exact enough for the
// finite-difference and convergence checks.
func (p *logRegProblem) evalGo(w, b, gw []float64, inv float64) {
	c, d, n := p.classes, p.dim, p.n
	blas64.Gemm(blas.NoTrans, blas.Trans, 1,
		blas64.General{Rows: n, Cols: d, Stride: d, Data: p.x64},
		blas64.General{Rows: c, Cols: d, Stride: d, Data: w},
		0, blas64.General{Rows: n, Cols: c, Stride: c, Data: p.z64})
	forShards(n, p.workers, func(sh, lo, hi int) {
		p.softmaxRows(sh, lo, hi, b, inv,
			func(r int, row []float64) { copy(row, p.z64[r*c:(r+1)*c]) },
			func(r int, row []float64) { copy(p.z64[r*c:(r+1)*c], row) })
	})
	blas64.Gemm(blas.Trans, blas.NoTrans, 1,
		blas64.General{Rows: n, Cols: c, Stride: c, Data: p.z64},
		blas64.General{Rows: n, Cols: d, Stride: d, Data: p.x64},
		0, blas64.General{Rows: c, Cols: d, Stride: d, Data: gw})
}

// evalBackend does both products in float32 on the backend; the softmax
// and all sums over rows outside them are float64.
func (p *logRegProblem) evalBackend(w, b, gw []float64, inv float64) {
	c := p.classes
	for i, v := range w {
		p.w32[i] = float32(v)
	}
	p.be.MatMul(p.tz, p.tx, p.tw, false, true, 1, 0)
	forShards(p.n, p.workers, func(sh, lo, hi int) {
		p.softmaxRows(sh, lo, hi, b, inv,
			func(r int, row []float64) {
				for k, v := range p.z32[r*c : (r+1)*c] {
					row[k] = float64(v)
				}
			},
			func(r int, row []float64) {
				for k, v := range row {
					p.z32[r*c+k] = float32(v)
				}
			})
	})
	p.be.MatMul(p.tgw, p.tz, p.tx, true, false, 1, 0)
	for i, v := range p.gw32 {
		gw[i] = float64(v)
	}
}

func equalSlices(a, b []float64) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// relConverge stops L-BFGS once the objective has fallen by less than
// tol·|f| over the last `window` iterations.
type relConverge struct {
	tol    float64
	window int
	hist   []float64
}

func (r *relConverge) Init(int) { r.hist = r.hist[:0] }

func (r *relConverge) Converged(loc *optimize.Location) optimize.Status {
	r.hist = append(r.hist, loc.F)
	if len(r.hist) <= r.window {
		return optimize.NotTerminated
	}
	old := r.hist[len(r.hist)-1-r.window]
	if old-loc.F <= r.tol*math.Abs(loc.F) {
		return optimize.FunctionConvergence
	}
	return optimize.NotTerminated
}

// TrainLogReg fits a multinomial logistic regression to the rows of x
// (n = len(y) rows of dim features, typically standardised; cfg.Rows picks
// a subset) with labels y in [0, classes) by L-BFGS on the full batch.
func TrainLogReg(x []float32, y []int, dim, classes int, cfg LogRegConfig) (*LinearClassifier, LogRegStats, error) {
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
	case cfg.Rows != nil && len(cfg.Rows) == 0:
		return nil, LogRegStats{}, errors.New("logistic regression: empty row subset")
	}
	for _, i := range cfg.Rows {
		if i < 0 || i >= n {
			return nil, LogRegStats{}, fmt.Errorf("logistic regression: row %d of the subset outside [0,%d)", i, n)
		}
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
		cfg.GradTol = 1e-5
	}
	if cfg.RelTol == 0 {
		cfg.RelTol = 1e-7
	}
	np := classes*dim + classes
	p := newLogRegProblem(x, y, cfg.Rows, dim, classes, cfg.Lambda, cfg.Workers, cfg.Backend)
	theta := make([]float64, np)
	if cfg.Init != nil {
		if cfg.Init.Dim != dim || cfg.Init.Classes != classes {
			return nil, LogRegStats{}, fmt.Errorf("logistic regression: warm start is %dx%d, problem is %dx%d", cfg.Init.Classes, cfg.Init.Dim, classes, dim)
		}
		copy(theta, cfg.Init.W)
		copy(theta[classes*dim:], cfg.Init.B)
	}
	// L-BFGS works on θ = [U, b] with W = U M (M = I without a
	// preconditioner); the objective is unchanged.
	var pc *precond
	if !cfg.NoPrecondition {
		spec := cfg.Spectrum
		if spec == nil && dim <= MaxPreconditionDim {
			var err error
			if spec, err = NewFeatureSpectrum(x, n, dim, cfg.Rows); err != nil {
				return nil, LogRegStats{}, fmt.Errorf("logistic regression: %w", err)
			}
		}
		if spec != nil {
			if spec.Dim != dim {
				return nil, LogRegStats{}, fmt.Errorf("logistic regression: feature spectrum is %d-d, features %d-d", spec.Dim, dim)
			}
			pc = newPrecond(spec, cfg.Lambda, classes)
			if cfg.Init != nil {
				pc.apply(theta[:classes*dim], cfg.Init.W, pc.mInv)
			}
		}
	}
	wb := make([]float64, np) // [W, b] at the point being evaluated
	at := func(t []float64) {
		if pc == nil {
			p.eval(t)
			return
		}
		pc.apply(wb[:classes*dim], t[:classes*dim], pc.m)
		copy(wb[classes*dim:], t[classes*dim:])
		p.eval(wb)
	}
	prob := optimize.Problem{
		Func: func(t []float64) float64 { at(t); return p.lastF },
		Grad: func(g, t []float64) {
			at(t)
			copy(g, p.lastG)
			if pc != nil {
				pc.apply(g[:classes*dim], p.lastG[:classes*dim], pc.m)
			}
		},
	}
	var conv optimize.Converger = optimize.NeverTerminate{}
	if cfg.RelTol > 0 {
		conv = &relConverge{tol: cfg.RelTol, window: 10}
	}
	settings := &optimize.Settings{
		GradientThreshold: cfg.GradTol,
		MajorIterations:   cfg.MaxIter,
		Converger:         conv,
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
	if pc != nil {
		pc.apply(c.W, res.X[:classes*dim], pc.m)
	}
	return c, LogRegStats{Iterations: res.Stats.MajorIterations, Evaluations: p.evals, Loss: res.F, Status: res.Status.String()}, nil
}
