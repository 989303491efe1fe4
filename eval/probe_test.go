package eval

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// blobs draws n points from classes isotropic Gaussians (sigma) around
// random means; it returns the features and the means.
func blobs(rng *rand.Rand, n, dim, classes int, sigma float64, means [][]float64) ([]float32, []int) {
	x := make([]float32, n*dim)
	y := make([]int, n)
	for i := 0; i < n; i++ {
		y[i] = rng.IntN(classes)
		for j := 0; j < dim; j++ {
			x[i*dim+j] = float32(means[y[i]][j] + sigma*rng.NormFloat64())
		}
	}
	return x, y
}

// TestLinearProbeNearBayes compares the probe with the Bayes-optimal rule of
// the generating model (nearest mean, since covariances are equal and
// isotropic), which no classifier can beat on average.
func TestLinearProbeNearBayes(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	dim, classes := 8, 4
	means := make([][]float64, classes)
	for k := range means {
		means[k] = make([]float64, dim)
		for j := range means[k] {
			means[k][j] = rng.NormFloat64()
		}
	}
	trX, trY := blobs(rng, 2000, dim, classes, 1.0, means)
	teX, teY := blobs(rng, 2000, dim, classes, 1.0, means)
	res, err := LinearProbe(trX, trY, teX, teY, dim, classes, ProbeConfig{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	bayes := 0
	for i, l := range teY {
		best, bd := -1, 0.0
		for k := range means {
			d := 0.0
			for j := 0; j < dim; j++ {
				e := float64(teX[i*dim+j]) - means[k][j]
				d += e * e
			}
			if best < 0 || d < bd {
				best, bd = k, d
			}
		}
		if best == l {
			bayes++
		}
	}
	bayesAcc := float64(bayes) / float64(len(teY))
	t.Logf("probe top1 %.4f (lambda %g, grid %v), Bayes rule %.4f", res.Top1, res.Lambda, res.Grid, bayesAcc)
	if res.Top1 < bayesAcc-0.03 {
		t.Errorf("probe top1 %.4f is more than 3 points below the Bayes rule %.4f", res.Top1, bayesAcc)
	}
	if len(res.Grid) != len(DefaultLambdas) || !slices.Contains(DefaultLambdas, res.Lambda) {
		t.Errorf("grid %v / lambda %g not from DefaultLambdas", res.Grid, res.Lambda)
	}
	if res.Top5 != 1 {
		t.Errorf("top5 with 4 classes = %v, want 1", res.Top5)
	}
}

// TestLinearProbeRejectsBadInput checks the errors for inconsistent input.
func TestLinearProbeRejectsBadInput(t *testing.T) {
	x := []float32{1, 2, 3, 4, 5, 6}
	if _, err := LinearProbe(x, []int{0, 1, 0}, x, []int{0, 1, 5}, 2, 2, ProbeConfig{}); err == nil {
		t.Error("test label outside the classes: no error")
	}
	if _, err := LinearProbe(x, []int{0, 1}, x, []int{0, 1, 1}, 2, 2, ProbeConfig{}); err == nil {
		t.Error("feature/label count mismatch: no error")
	}
	if _, err := LinearProbe(x, []int{0, 1, 0}, x, []int{0, 1, 1}, 2, 2, ProbeConfig{ValFraction: 1.5}); err == nil {
		t.Error("validation fraction 1.5: no error")
	}
}

func TestStratifiedSplit(t *testing.T) {
	labels := make([]int, 1000)
	for i := range labels {
		labels[i] = (i * 7) % 5
	}
	tr, va := StratifiedSplit(labels, 5, 0.1, 42)
	if len(va) != 100 || len(tr) != 900 {
		t.Fatalf("split sizes %d/%d, want 900/100", len(tr), len(va))
	}
	per := make([]int, 5)
	for _, i := range va {
		per[labels[i]]++
	}
	for k, c := range per {
		if c != 20 {
			t.Errorf("class %d has %d validation items, want 20", k, c)
		}
	}
	all := append(append([]int(nil), tr...), va...)
	slices.Sort(all)
	for i, v := range all {
		if v != i {
			t.Fatalf("split is not a partition of 0..999 (at %d: %d)", i, v)
		}
	}
	tr2, va2 := StratifiedSplit(labels, 5, 0.1, 42)
	if !slices.Equal(tr, tr2) || !slices.Equal(va, va2) {
		t.Error("same seed gave a different split")
	}
	_, va3 := StratifiedSplit(labels, 5, 0.1, 43)
	if slices.Equal(va, va3) {
		t.Error("different seeds gave the same split")
	}
}
