package eval

import (
	"math"
	"math/rand/v2"
	"testing"
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

func randProblem(rng *rand.Rand, n, dim, classes int) ([]float64, []int) {
	x := make([]float64, n*dim)
	for i := range x {
		x[i] = rng.NormFloat64()
	}
	y := make([]int, n)
	for i := range y {
		y[i] = rng.IntN(classes)
	}
	return x, y
}

func TestLogRegGradientMatchesFiniteDifferences(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	n, dim, classes := 13, 5, 4
	x, y := randProblem(rng, n, dim, classes)
	lambda := 0.07
	theta := make([]float64, classes*dim+classes)
	for i := range theta {
		theta[i] = 0.5 * rng.NormFloat64()
	}
	p := &logRegProblem{x: x, y: y, n: n, dim: dim, classes: classes, lambda: lambda,
		logits: make([]float64, n*classes), lastG: make([]float64, len(theta))}
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
	x, y := randProblem(rng, n, dim, classes)
	lambda := 0.1
	c, stats, err := TrainLogReg(x, y, dim, classes, LogRegConfig{Lambda: lambda, GradTol: 1e-10, MaxIter: 1000})
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
	x := make([]float64, n*dim)
	y := make([]int, n)
	for i := 0; i < n; i++ {
		y[i] = i % classes
		for j := 0; j < dim; j++ {
			x[i*dim+j] = 0.3 * rng.NormFloat64()
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
	x := []float64{1, 2, 3, 4}
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
