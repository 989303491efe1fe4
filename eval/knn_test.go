package eval

import (
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"

	"github.com/simclr-go/simclr/engine"
)

// knnOracle is the brute-force float64 kNN: normalise, sort every training
// sample by cosine similarity (ties to the lower index), vote with
// exp(sim/τ), rank classes (ties to the lower class).
func knnOracle(tr []float32, trl []int, te []float32, tel []int, dim, k int, tau float64, classes int) (float64, float64) {
	norm := func(x []float32) [][]float64 {
		out := make([][]float64, len(x)/dim)
		for i := range out {
			var ss float64
			for _, v := range x[i*dim : (i+1)*dim] {
				ss += float64(v) * float64(v)
			}
			n := math.Max(math.Sqrt(ss), 1e-12)
			out[i] = make([]float64, dim)
			for j := range out[i] {
				out[i][j] = float64(x[i*dim+j]) / n
			}
		}
		return out
	}
	a, b := norm(tr), norm(te)
	k = min(k, len(a))
	var h1, h5 int
	for q, qv := range b {
		sims := make([]float64, len(a))
		idx := make([]int, len(a))
		for i, av := range a {
			for j := range av {
				sims[i] += av[j] * qv[j]
			}
			idx[i] = i
		}
		sort.SliceStable(idx, func(x, y int) bool { return sims[idx[x]] > sims[idx[y]] })
		score := make([]float64, classes)
		for _, i := range idx[:k] {
			score[trl[i]] += math.Exp(sims[i] / tau)
		}
		ord := make([]int, classes)
		for c := range ord {
			ord[c] = c
		}
		sort.SliceStable(ord, func(x, y int) bool { return score[ord[x]] > score[ord[y]] })
		if ord[0] == tel[q] {
			h1++
		}
		for _, c := range ord[:min(5, classes)] {
			if c == tel[q] {
				h5++
			}
		}
	}
	return float64(h1) / float64(len(b)), float64(h5) / float64(len(b))
}

// clustered makes n samples of dim features around one centre per class.
func clustered(rng *rand.Rand, centres [][]float64, n, dim int, noise float64) ([]float32, []int) {
	x := make([]float32, n*dim)
	y := make([]int, n)
	for i := range y {
		c := rng.IntN(len(centres))
		y[i] = c
		for j := 0; j < dim; j++ {
			x[i*dim+j] = float32(centres[c][j] + noise*rng.NormFloat64())
		}
	}
	return x, y
}

func TestKNNMatchesBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		nTrain, nTest, dim, k, classes int
		noise, tau                     float64
	}{
		{300, 120, 16, 20, 7, 1.5, 0.1},
		{50, 31, 5, 200, 3, 2, 0.5}, // k > nTrain: capped
		{1200, 700, 9, 1, 12, 1, 0.07},
	} {
		centres := make([][]float64, tc.classes)
		for c := range centres {
			centres[c] = make([]float64, tc.dim)
			for j := range centres[c] {
				centres[c][j] = rng.NormFloat64()
			}
		}
		tr, trl := clustered(rng, centres, tc.nTrain, tc.dim, tc.noise)
		te, tel := clustered(rng, centres, tc.nTest, tc.dim, tc.noise)
		w1, w5 := knnOracle(tr, trl, te, tel, tc.dim, tc.k, tc.tau, tc.classes)
		g1, g5, err := KNN(tr, trl, te, tel, tc.dim, tc.k, tc.tau, tc.classes)
		if err != nil {
			t.Fatal(err)
		}
		if g1 != w1 || g5 != w5 {
			t.Errorf("%+v: top1/top5 = %v/%v, oracle %v/%v", tc, g1, g5, w1, w5)
		}
		if w1 <= 1.0/float64(tc.classes) || w1 == 1 {
			t.Errorf("%+v: oracle top-1 %v: the case does not discriminate", tc, w1)
		}
		r1, r5, err := KNNWith(engine.Reference(), tr, trl, te, tel, tc.dim, tc.k, tc.tau, tc.classes)
		if err != nil || r1 != w1 || r5 != w5 {
			t.Errorf("%+v: with the reference backend %v/%v (%v), oracle %v/%v", tc, r1, r5, err, w1, w5)
		}
	}
}

// Blocks smaller than the data exercise the blocked top-k merge.
func TestKNNBlocked(t *testing.T) {
	defer func(a, b int) { knnTestBlock, knnTrainBlock = a, b }(knnTestBlock, knnTrainBlock)
	knnTestBlock, knnTrainBlock = 7, 13
	rng := rand.New(rand.NewPCG(3, 4))
	centres := [][]float64{{1, 0, 0, 1}, {0, 1, 0, -1}, {0, 0, 1, 0}, {-1, -1, 0, 0}}
	tr, trl := clustered(rng, centres, 100, 4, 0.8)
	te, tel := clustered(rng, centres, 40, 4, 0.8)
	w1, w5 := knnOracle(tr, trl, te, tel, 4, 10, 0.1, 4)
	g1, g5, err := KNN(tr, trl, te, tel, 4, 10, 0.1, 4)
	if err != nil || g1 != w1 || g5 != w5 {
		t.Errorf("blocked: %v/%v (%v), oracle %v/%v", g1, g5, err, w1, w5)
	}
}

func TestKNNErrors(t *testing.T) {
	x := []float32{1, 0, 0, 1}
	for _, tc := range []struct {
		name string
		f    func() error
		want string
	}{
		{"label range", func() error { _, _, err := KNN(x, []int{0, 2}, x, []int{0, 1}, 2, 1, 0.1, 2); return err }, "outside [0, 2)"},
		{"length", func() error { _, _, err := KNN(x, []int{0}, x, []int{0, 1}, 2, 1, 0.1, 2); return err }, "want 1 samples x 2 dims"},
		{"k", func() error { _, _, err := KNN(x, []int{0, 1}, x, []int{0, 1}, 2, 0, 0.1, 2); return err }, "k = 0"},
		{"tau", func() error { _, _, err := KNN(x, []int{0, 1}, x, []int{0, 1}, 2, 1, 0, 2); return err }, "temperature"},
		{"nan", func() error {
			_, _, err := KNN([]float32{1, float32(math.NaN()), 0, 1}, []int{0, 1}, x, []int{0, 1}, 2, 1, 0.1, 2)
			return err
		}, "NaN"},
		{"empty", func() error { _, _, err := KNN(x, []int{0, 1}, nil, nil, 2, 1, 0.1, 2); return err }, "no test samples"},
	} {
		err := tc.f()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
}

// BenchmarkKNN: a CIFAR-10-sized monitor at 1/5 scale (10k bank, 2k
// queries, 128-d, k=200).
func BenchmarkKNN(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 6))
	centres := make([][]float64, 10)
	for c := range centres {
		centres[c] = make([]float64, 128)
		for j := range centres[c] {
			centres[c][j] = rng.NormFloat64()
		}
	}
	tr, trl := clustered(rng, centres, 10000, 128, 3)
	te, tel := clustered(rng, centres, 2000, 128, 3)
	for b.Loop() {
		if _, _, err := KNN(tr, trl, te, tel, 128, 200, 0.1, 10); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(2*10000*2000*128/1e9*float64(b.N)/b.Elapsed().Seconds(), "GFLOP/s")
}
