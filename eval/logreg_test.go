package eval

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/simclr-go/simclr/engine"
	"github.com/simclr-go/simclr/engine/dnnl"
	"gonum.org/v1/gonum/optimize"
)

// naiveLoss is the oracle objective written with plain loops.
func naiveLoss(x []float64, y []int, dim, classes int, lambda float64, theta []float64) float64 {
	n := len(y)
	loss := 0.0
	for i := 0; i < n; i++ {
		z := make([]float64, classes)
		for k := 0; k < classes; k++ {
			z[k] = theta[classes*dim+k]
			for j := 0; j < dim; j++ {
				z[k] += theta[k*dim+j] * x[i*dim+j]
			}
		}
		s := 0.0
		for _, v := range z {
			s += math.Exp(v)
		}
		loss += math.Log(s) - z[y[i]]
	}
	reg := 0.0
	for _, v := range theta[:classes*dim] {
		reg += v * v
	}
	return loss/float64(n) + 0.5*lambda*reg
}

// randProblem returns features as float64 for the oracles and the same
// values as float32 (they are float32-exact) for the code under test.
func randProblem(rng *rand.Rand, n, dim, classes int) ([]float64, []float32, []int) {
	x := make([]float64, n*dim)
	x32 := make([]float32, n*dim)
	for i := range x {
		x32[i] = float32(rng.NormFloat64())
		x[i] = float64(x32[i])
	}
	y := make([]int, n)
	for i := range y {
		y[i] = rng.IntN(classes)
	}
	return x, x32, y
}

func TestLogRegGradientMatchesFiniteDifferences(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	n, dim, classes := 13, 5, 4
	x, x32, y := randProblem(rng, n, dim, classes)
	lambda := 0.07
	theta := make([]float64, classes*dim+classes)
	for i := range theta {
		theta[i] = 0.5 * rng.NormFloat64()
	}
	p := newLogRegProblem(x32, y, nil, dim, classes, lambda, 0, nil)
	p.eval(theta)
	if want := naiveLoss(x, y, dim, classes, lambda, theta); math.Abs(p.lastF-want) > 1e-12 {
		t.Fatalf("loss %v, oracle %v", p.lastF, want)
	}
	g := append([]float64(nil), p.lastG...)
	const h = 1e-6
	for i := range theta {
		tp := append([]float64(nil), theta...)
		tm := append([]float64(nil), theta...)
		tp[i] += h
		tm[i] -= h
		fd := (naiveLoss(x, y, dim, classes, lambda, tp) - naiveLoss(x, y, dim, classes, lambda, tm)) / (2 * h)
		if math.Abs(fd-g[i]) > 1e-7 {
			t.Errorf("grad[%d] = %v, finite difference %v", i, g[i], fd)
		}
	}
}

// TestLogRegMatchesGradientDescentOracle checks the L-BFGS solution of a
// strongly convex problem against plain gradient descent run to convergence
// on the naive objective.
func TestLogRegMatchesGradientDescentOracle(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	n, dim, classes := 60, 4, 3
	x, x32, y := randProblem(rng, n, dim, classes)
	lambda := 0.1
	c, stats, err := TrainLogReg(x32, y, dim, classes, LogRegConfig{Lambda: lambda, GradTol: 1e-10, RelTol: -1, MaxIter: 1000})
	if err != nil {
		t.Fatal(err)
	}
	// Oracle: gradient descent with a central-difference gradient of the
	// naive loss (independent of the analytic gradient code).
	theta := make([]float64, classes*dim+classes)
	g := make([]float64, len(theta))
	for it := 0; it < 3000; it++ {
		for i := range theta {
			old := theta[i]
			theta[i] = old + 1e-6
			fp := naiveLoss(x, y, dim, classes, lambda, theta)
			theta[i] = old - 1e-6
			fm := naiveLoss(x, y, dim, classes, lambda, theta)
			theta[i] = old
			g[i] = (fp - fm) / 2e-6
		}
		for i := range theta {
			theta[i] -= 0.5 * g[i]
		}
	}
	for i := 0; i < classes*dim; i++ {
		if math.Abs(c.W[i]-theta[i]) > 1e-5 {
			t.Errorf("W[%d] = %v, oracle %v", i, c.W[i], theta[i])
		}
	}
	// Softmax ignores a common shift of the biases; compare centred biases.
	mb, mo := 0.0, 0.0
	for k := 0; k < classes; k++ {
		mb += c.B[k] / float64(classes)
		mo += theta[classes*dim+k] / float64(classes)
	}
	for k := 0; k < classes; k++ {
		if math.Abs((c.B[k]-mb)-(theta[classes*dim+k]-mo)) > 1e-5 {
			t.Errorf("B[%d] = %v, oracle %v", k, c.B[k], theta[classes*dim+k])
		}
	}
	if want := naiveLoss(x, y, dim, classes, lambda, theta); math.Abs(stats.Loss-want) > 1e-9 {
		t.Errorf("final loss %v, oracle %v", stats.Loss, want)
	}
}

func TestLogRegSeparatesSeparableData(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	n, dim, classes := 300, 6, 5
	x := make([]float32, n*dim)
	y := make([]int, n)
	for i := 0; i < n; i++ {
		y[i] = i % classes
		for j := 0; j < dim; j++ {
			x[i*dim+j] = float32(0.3 * rng.NormFloat64())
		}
		x[i*dim+y[i]] += 3 // class k lives along axis k
	}
	c, _, err := TrainLogReg(x, y, dim, classes, LogRegConfig{Lambda: 1e-4})
	if err != nil {
		t.Fatal(err)
	}
	top1, top5 := TopK(c.Logits(x, n), y, classes)
	if top1 != 1 || top5 != 1 {
		t.Fatalf("separable data: top1 %v top5 %v, want 1", top1, top5)
	}
}

func TestLogRegBadInput(t *testing.T) {
	x := []float32{1, 2, 3, 4}
	cases := []struct {
		name string
		y    []int
		dim  int
		cls  int
		l    float64
	}{
		{"no rows", nil, 2, 2, 0},
		{"one class", []int{0, 0}, 2, 1, 0},
		{"size mismatch", []int{0, 1, 0}, 2, 2, 0},
		{"label out of range", []int{0, 2}, 2, 2, 0},
		{"negative lambda", []int{0, 1}, 2, 2, -1},
	}
	for _, c := range cases {
		if _, _, err := TrainLogReg(x, c.y, c.dim, c.cls, LogRegConfig{Lambda: c.l}); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
}

func TestTopKTies(t *testing.T) {
	// Constant scores must not count as correct for every label.
	scores := make([]float64, 4*10)
	labels := []int{0, 3, 7, 9}
	top1, top5 := TopK(scores, labels, 10)
	if top1 != 0.25 || top5 != 0.5 {
		t.Fatalf("constant scores: top1 %v top5 %v, want 0.25 0.5", top1, top5)
	}
	// Label ranked 5th (4 strictly higher) is in top-5 but not top-1.
	row := []float64{9, 8, 7, 6, 5, 4, 3, 2, 1, 0}
	if a, b := TopK(row, []int{4}, 10); a != 0 || b != 1 {
		t.Fatalf("5th place: top1 %v top5 %v", a, b)
	}
	if a, b := TopK(row, []int{5}, 10); a != 0 || b != 0 {
		t.Fatalf("6th place: top1 %v top5 %v", a, b)
	}
}

// gatherF64 returns the rows idx of x (all rows when idx is nil) and their labels.
func gatherF64(x []float64, y []int, idx []int, dim int) ([]float64, []int) {
	if idx == nil {
		return x, y
	}
	var ox []float64
	var oy []int
	for _, i := range idx {
		ox = append(ox, x[i*dim:(i+1)*dim]...)
		oy = append(oy, y[i])
	}
	return ox, oy
}

// TestLogRegShardsAndSubsetMatchOracle covers what the small FD test does
// not: several parallel shards and a row subset (the validation split).
func TestLogRegShardsAndSubsetMatchOracle(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	n, dim, classes := 2*shardRows+1500, 4, 3
	x, x32, y := randProblem(rng, n, dim, classes)
	var idx []int
	for i := 0; i < n; i++ {
		if i%7 != 3 {
			idx = append(idx, i)
		}
	}
	theta := make([]float64, classes*dim+classes)
	for i := range theta {
		theta[i] = 0.3 * rng.NormFloat64()
	}
	lambda := 0.05
	for _, rows := range [][]int{nil, idx} {
		sx, sy := gatherF64(x, y, rows, dim)
		want := naiveLoss(sx, sy, dim, classes, lambda, theta)
		var ref []float64
		for _, workers := range []int{1, 3} {
			p := newLogRegProblem(x32, y, rows, dim, classes, lambda, workers, nil)
			p.eval(theta)
			if math.Abs(p.lastF-want) > 1e-12 {
				t.Fatalf("subset %v workers %d: loss %v, oracle %v", rows != nil, workers, p.lastF, want)
			}
			if ref == nil {
				ref = append([]float64(nil), p.lastG...)
				for i := range theta {
					tp := append([]float64(nil), theta...)
					tm := append([]float64(nil), theta...)
					tp[i] += 1e-6
					tm[i] -= 1e-6
					fd := (naiveLoss(sx, sy, dim, classes, lambda, tp) - naiveLoss(sx, sy, dim, classes, lambda, tm)) / 2e-6
					if math.Abs(fd-ref[i]) > 1e-7 {
						t.Errorf("subset %v: grad[%d] = %v, finite difference %v", rows != nil, i, ref[i], fd)
					}
				}
			} else if !slices.Equal(ref, p.lastG) {
				t.Errorf("subset %v: gradient with %d workers differs from 1 worker", rows != nil, workers)
			}
		}
	}
}

// backends are the float32 product backends available in this build: the
// plain-Go reference always, oneDNN when compiled in.
func backends(t testing.TB) map[string]engine.Backend {
	m := map[string]engine.Backend{"reference": engine.Reference()}
	if dnnl.Available() {
		b, err := dnnl.New(0)
		if err != nil {
			t.Fatal(err)
		}
		m["dnnl"] = b
	}
	return m
}

// TestLogRegBackendMatchesFloat64 checks the float32 backend path against the
// float64 path (itself checked by finite differences above): the objective
// and gradient agree to float32 precision, and the fitted models predict the
// same classes.
func TestLogRegBackendMatchesFloat64(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	n, dim, classes := 3000, 16, 5
	x32, y := learnableProblem(rng, n, dim, classes, 0)
	theta := make([]float64, classes*dim+classes)
	for i := range theta {
		theta[i] = 0.2 * rng.NormFloat64()
	}
	p64 := newLogRegProblem(x32, y, nil, dim, classes, 1e-3, 0, nil)
	p64.eval(theta)
	c64, s64, err := TrainLogReg(x32, y, dim, classes, LogRegConfig{Lambda: 1e-3})
	if err != nil {
		t.Fatal(err)
	}
	pred64 := argmaxRows(c64.Logits(x32, n), classes)
	for name, be := range backends(t) {
		p := newLogRegProblem(x32, y, nil, dim, classes, 1e-3, 0, be)
		p.eval(theta)
		if math.Abs(p.lastF-p64.lastF) > 1e-5*p64.lastF {
			t.Errorf("%s: loss %v, float64 %v", name, p.lastF, p64.lastF)
		}
		gmax := 0.0
		for _, v := range p64.lastG {
			gmax = math.Max(gmax, math.Abs(v))
		}
		for i, v := range p.lastG {
			if math.Abs(v-p64.lastG[i]) > 1e-5*gmax {
				t.Errorf("%s: grad[%d] = %v, float64 %v", name, i, v, p64.lastG[i])
			}
		}
		c, s, err := TrainLogReg(x32, y, dim, classes, LogRegConfig{Lambda: 1e-3, Backend: be})
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(s.Loss-s64.Loss) > 1e-5*s64.Loss {
			t.Errorf("%s: final loss %v, float64 %v", name, s.Loss, s64.Loss)
		}
		diff := 0
		for i, k := range argmaxRows(c.Logits(x32, n), classes) {
			if k != pred64[i] {
				diff++
			}
		}
		if diff > n/200 {
			t.Errorf("%s: %d of %d predictions differ from the float64 fit", name, diff, n)
		}
	}
}

// learnableProblem draws features whose neighbours correlate (corr in
// [0,1): each is corr times the previous plus fresh noise, which makes the
// problem ill-conditioned like real embeddings) and labels from the argmax of
// a random linear map plus noise.
func learnableProblem(rng *rand.Rand, n, dim, classes int, corr float64) ([]float32, []int) {
	x := make([]float32, n*dim)
	for i := 0; i < n; i++ {
		prev := 0.0
		for j := 0; j < dim; j++ {
			prev = corr*prev + math.Sqrt(1-corr*corr)*rng.NormFloat64()
			x[i*dim+j] = float32(prev)
		}
	}
	wt := make([]float64, classes*dim)
	for i := range wt {
		wt[i] = rng.NormFloat64()
	}
	y := make([]int, n)
	for i := range y {
		best, bv := 0, math.Inf(-1)
		for k := 0; k < classes; k++ {
			v := 2 * rng.NormFloat64()
			for j := 0; j < dim; j++ {
				v += wt[k*dim+j] * float64(x[i*dim+j])
			}
			if v > bv {
				best, bv = k, v
			}
		}
		y[i] = best
	}
	return x, y
}

func argmaxRows(z []float64, classes int) []int {
	out := make([]int, len(z)/classes)
	for i := range out {
		row := z[i*classes : (i+1)*classes]
		for k, v := range row {
			if v > row[out[i]] {
				out[i] = k
			}
		}
	}
	return out
}

// TestLogRegStoppingRules checks that the default rules end the fit well
// before the iteration cap at the optimum the strict settings reach, and
// that a warm start at the optimum costs almost nothing.
func TestLogRegStoppingRules(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	n, dim, classes := 3000, 24, 5
	x32, y := learnableProblem(rng, n, dim, classes, 0.95)
	strict, ss, err := TrainLogReg(x32, y, dim, classes, LogRegConfig{Lambda: 1e-4, GradTol: 1e-9, RelTol: -1, MaxIter: 2000})
	if err != nil {
		t.Fatal(err)
	}
	def, ds, err := TrainLogReg(x32, y, dim, classes, LogRegConfig{Lambda: 1e-4})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("strict: %d iterations (%s), default: %d (%s)", ss.Iterations, ss.Status, ds.Iterations, ds.Status)
	if ds.Iterations >= ss.Iterations || ds.Iterations >= 500 {
		t.Errorf("default rules took %d iterations, strict %d", ds.Iterations, ss.Iterations)
	}
	if ds.Loss-ss.Loss > 1e-6*ss.Loss {
		t.Errorf("default rules stopped at loss %v, optimum %v", ds.Loss, ss.Loss)
	}
	p1 := argmaxRows(strict.Logits(x32, n), classes)
	for i, k := range argmaxRows(def.Logits(x32, n), classes) {
		if k != p1[i] {
			t.Errorf("row %d: default fit predicts %d, converged fit %d", i, k, p1[i])
		}
	}
	_, ws, err := TrainLogReg(x32, y, dim, classes, LogRegConfig{Lambda: 1e-4, Init: strict})
	if err != nil {
		t.Fatal(err)
	}
	if ws.Evaluations > 2 {
		t.Errorf("warm start at the optimum took %d evaluations", ws.Evaluations)
	}
}

func TestRelConverge(t *testing.T) {
	r := &relConverge{tol: 1e-3, window: 2}
	r.Init(0)
	for i, c := range []struct {
		f    float64
		want optimize.Status
	}{
		{10, optimize.NotTerminated}, {9, optimize.NotTerminated}, {8.99, optimize.NotTerminated},
		{8.985, optimize.NotTerminated},       // 9 -> 8.985 over 2 steps: 0.015 > 1e-3*8.985
		{8.984, optimize.FunctionConvergence}, // 8.99 -> 8.984: 0.006 < 0.008984
	} {
		if got := r.Converged(&optimize.Location{F: c.f}); got != c.want {
			t.Errorf("step %d (f=%v): %v, want %v", i, c.f, got, c.want)
		}
	}
}
